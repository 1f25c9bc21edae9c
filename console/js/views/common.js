import { canSeePixels, faceImage } from "../api.js";
import { h } from "../dom.js";

// A face's base-only preview (one audited view), or a placeholder saying why there is none.
export function thumb(faceId, { layers = "base", level, cls = "thumb" } = {}) {
  if (!canSeePixels()) return h("div", { class: "nopix", title: "this key has no pixel scope" }, "no pixels");
  const img = h("img", { class: cls, alt: `face ${faceId}`, dataset: { face: faceId } });
  const small = cls === "thumb" ? { size: 112, format: "webp" } : {};
  faceImage(faceId, { layers, level, ...small }).then((url) => { img.src = url; }, (err) => { img.title = err.message; });
  return img;
}

export function who(s) {
  if (s.identity_name || s.identity_id) return h("span", { class: "tag recognised" }, s.identity_name || s.identity_id);
  if (s.cluster_id) return h("span", { class: "tag unknown" }, `unknown · ${s.cluster_id}`);
  return h("span", { class: "tag" }, s.status || "unknown");
}

export const faceLink = (faceId) => `#/face/${encodeURIComponent(faceId)}`;
