// The console's only way to the services: the public REST API with the user's key in the Authorization
// header. The key lives in sessionStorage (gone when the tab closes), never in a URL.
const KEY = "facecodec.console.key";
const RECON = "facecodec.console.reconstructor";

export const LOGGED_OUT = "the key is no longer valid: log in again";

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  get reconstructor() { return sessionStorage.getItem(RECON) || ""; },
  me: null,
  save(key, reconstructor) {
    sessionStorage.setItem(KEY, key);
    sessionStorage.setItem(RECON, (reconstructor || "").replace(/\/+$/, ""));
  },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(RECON); this.me = null; },
};

// What the key may do, as the analyzer says (GET /v1/keys/me `holds`: implied scopes included).
export const can = (scope) => (session.me?.holds || []).includes(scope);

export const canSeePixels = () => can("faces:view_base") && !!session.reconstructor;

// An error body in the API's words: problem+json (`detail`, `title`) or FastAPI's `detail` (text or list).
async function problem(resp) {
  try {
    const body = await resp.json();
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    return body.detail || body.title || `${resp.status} ${resp.statusText}`;
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

export async function request(url, { method = "GET", json, form } = {}) {
  const headers = { Authorization: `Bearer ${session.key}` };
  let body;
  if (json !== undefined) { headers["Content-Type"] = "application/json"; body = JSON.stringify(json); }
  if (form) body = form;
  const resp = await fetch(url, { method, headers, body, cache: "no-store", credentials: "omit" });
  // Revoked or expired meanwhile (not a login attempt, which has a key but no `me` yet): back to the login
  // form; requests still in flight when that happened say the same.
  if (resp.status === 401 && (session.me || !session.key)) {
    if (session.key) {
      session.clear();
      window.dispatchEvent(new Event("facecodec:logged-out"));
    }
    throw new ApiError(401, LOGGED_OUT);
  }
  if (!resp.ok) throw new ApiError(resp.status, await problem(resp));
  if (resp.status === 204) return null;
  return (resp.headers.get("content-type") || "").includes("json") ? resp.json() : resp.blob();
}

export const api = (path, options) => request(path, options);  // the analyzer: this page's own origin
export const recon = (path, options) => request(session.reconstructor + path, options);

// Every list answer read in one place, whatever its shape: {items, next_cursor} (the API's convention),
// older {items, total, offset} / {items, next_before}, or a bare array.
export function page(body) {
  if (Array.isArray(body)) return { items: body, next: null };
  return { items: body.items || [], next: body.next_cursor ?? body.next_before ?? null, total: body.total };
}

export const list = async (path) => page(await api(path)).items;

export const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v != null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
};

// Face pixels, each one view the reconstructor audits; a face's image is fetched once per page load.
// `size` and `format` shrink list thumbnails (a WebP of 112 px instead of the native PNG).
const images = new Map();
export function faceImage(faceId, { layers = "base", level, size, format } = {}) {
  const q = query({ layers, level: layers === "full" ? level : null, size, format });
  const id = `${faceId}${q}`;
  if (!images.has(id)) {
    images.set(id, recon(`/v1/faces/${encodeURIComponent(faceId)}/image${q}`)
      .then((blob) => URL.createObjectURL(blob))
      .catch((err) => { images.delete(id); throw err; }));
  }
  return images.get(id);
}

export function forgetImages() {
  for (const p of images.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
  images.clear();
}
