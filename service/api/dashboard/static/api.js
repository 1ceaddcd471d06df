// Talking to the mixopt API: one fetch wrapper, the optional API token, and feature detection.
//
// The dashboard reads the public /v1 API like any other client. Endpoints that a given server may not
// have yet (law fits, history, online sessions) are looked up in its OpenAPI document first, so a page
// never requests a path that cannot exist and shows an explanatory empty state instead.

export const root = document.body.dataset.root || "";
const TOKEN_KEY = "mixopt.token";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

export function getToken() {
  return localStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Query string from an object; arrays become repeated parameters, empty values are left out. */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    for (const item of Array.isArray(v) ? v : [v]) {
      if (item !== undefined && item !== null && item !== "") q.append(k, String(item));
    }
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Fetch ``path`` (relative to the server root); JSON in and out, errors as ApiError. */
export async function api(path, { method = "GET", body, params, as = "json" } = {}) {
  const headers = { accept: as === "json" ? "application/json" : "*/*" };
  if (body !== undefined) headers["content-type"] = "application/json";
  const token = getToken();
  if (token) headers.authorization = `Bearer ${token}`;
  const resp = await fetch(root + path + query(params), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!resp.ok) {
    let err = {};
    try { err = (await resp.json()).error || {}; } catch { /* not JSON: keep the status */ }
    throw new ApiError(resp.status, err.code || "http_error", err.message || resp.statusText, err.field);
  }
  if (as === "blob") return resp.blob();
  return resp.status === 204 ? null : resp.json();
}

let routes;

/** Whether the server offers ``method`` on ``template`` (path parameters written as ``{}``). */
export async function has(method, template) {
  if (!routes) {
    routes = api("/openapi.json").then(
      (doc) => new Set(Object.entries(doc.paths || {}).flatMap(([p, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{[^}]*\}/g, "{}")}`))),
      () => null, // no schema published: assume everything exists and let 404s speak
    );
  }
  const known = await routes;
  return known === null || known.has(`${method} ${template}`);
}

/** ``api`` for an optional endpoint: null when the server lacks it or answers 404. */
export async function optional(template, path, options) {
  if (!(await has((options && options.method) || "GET", template))) return null;
  try {
    return await api(path, options);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}
