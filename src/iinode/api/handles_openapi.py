"""The OpenAPI document's parts for ``/api/handles`` that its routes do not declare.

The GET route is a plain Starlette route (the hot read path), so its operation is
``GET_HANDLE_OPENAPI``; ``HANDLE_RECORD_SCHEMA`` is the body a PUT takes.  The app
merges both into its document.
"""

from __future__ import annotations

from typing import Any

_HANDLE_PARAM = {
    "name": "handle",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "prefix/suffix",
}


#: The OpenAPI operation of the plain GET route (merged into the document by the app).
GET_HANDLE_OPENAPI: dict[str, Any] = {
    "tags": ["handles"],
    "summary": "Resolve a handle",
    "operationId": "get_handle_api_handles__handle__get",
    "parameters": [
        _HANDLE_PARAM,
        {"name": "type", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
        {"name": "index", "in": "query", "schema": {"type": "array", "items": {"type": "integer"}}},
        {"name": "recursive", "in": "query", "schema": {"type": "boolean"}},
        {
            "name": "Authorization",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "HTTP Basic as index:handle, to read values without PUBLIC_READ",
        },
    ],
    "responses": {
        "200": {"description": "The handle's values", "content": {"application/json": {}}},
        "307": {"description": "Referral to the node that answers the handle"},
        "404": {"description": "Handle not found (responseCode 100)"},
    },
}

HANDLE_RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["values"],
    "properties": {
        "handle": {"type": "string", "description": "if present, the handle of the path"},
        "values": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "type", "data"],
                "properties": {
                    "index": {"type": "integer", "minimum": 1},
                    "type": {"type": "string"},
                    "data": {
                        "oneOf": [
                            {"type": "string"},
                            {
                                "type": "object",
                                "required": ["format", "value"],
                                "properties": {
                                    "format": {
                                        "type": "string",
                                        "enum": [
                                            "string",
                                            "base64",
                                            "hex",
                                            "admin",
                                            "vlist",
                                            "site",
                                            "key",
                                        ],
                                    },
                                    "value": {},
                                },
                            },
                        ]
                    },
                    "ttl": {"type": "integer"},
                    "timestamp": {"type": "string"},
                },
            },
        },
    },
}
