// Swagger UI over this node's OpenAPI document; the bundle is served from an installed package.
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });
