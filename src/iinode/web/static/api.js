// Calls to this node's JSON APIs with the signed-in identity (HTTP Basic, as the REST API takes it).

const KEY = "iinode.console.credentials";

export function credentials() {
  const raw = sessionStorage.getItem(KEY);
  return raw ? JSON.parse(raw) : null;
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

function basic(identity, secret) {
  // RFC 7617 forbids ":" in the user-id: the identity travels percent-encoded.
  const text = `${encodeURIComponent(identity)}:${secret}`;
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return `Basic ${btoa(binary)}`;
}

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && (body.detail || body.message || body.error);
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function call(method, path, body, creds = credentials()) {
  const headers = { Accept: "application/json" };
  if (creds) headers.Authorization = basic(creds.identity, creds.secret);
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

export const get = (path) => call("GET", path);

export async function signIn(identity, secret) {
  const who = await call("GET", "/console/api/whoami", undefined, { identity, secret });
  sessionStorage.setItem(KEY, JSON.stringify({ identity, secret, admin: who.admin }));
  return who;
}
