// One face: what the cloud decided, its base-only reconstruction, each enhancement level on demand with
// its bytes and PSNR beside a JPEG and a WebP of the same byte size, and corrections.
import { api, can, canSeePixels, list, recon } from "../api.js";
import { attempt, h, num, show, when } from "../dom.js";
import { added } from "./identities.js";
import { thumb, who } from "./common.js";

export async function render(main, [faceId]) {
  const face = await attempt(() => api(`/v1/faces/${encodeURIComponent(faceId)}`));
  if (!face) return;
  main.append(h("h1", {}, "Face ", h("code", {}, face.face_id)),
    h("div", { class: "card", id: "face-meta" },
      h("p", {}, who(face), " on ", h("strong", {}, face.camera_id), " at ", when(face.captured_at_ms)),
      h("p", { class: "muted" }, `status ${face.status}; similarity ${num(face.similarity)} (threshold `,
        `${num(face.threshold)}, FPIR ${face.decision_fpir ?? "–"}); track ${face.track_id || "–"}; `,
        `edge ${face.edge_id}; base layer ${face.base_layer_bytes} bytes; ${face.enhancement_levels} enhancement levels`),
      face.corrected_action ? h("p", { class: "muted", id: "corrected" },
        `corrected: ${face.corrected_action} at ${face.corrected_at} by key ${face.corrected_by}`) : null,
      h("div", { class: "toolbar" },
        can("faces:search") ? h("a", { href: `#/history/${encodeURIComponent(faceId)}`, id: "search-this" },
          "Where else was this person seen?") : null)));
  main.append(pixels(face));
  if (can("identities:write")) main.append(await corrections(face));
}

function pixels(face) {
  const box = h("div", { class: "card", id: "levels" }, h("h2", {}, "Reconstruction"));
  if (!canSeePixels()) {
    box.append(h("p", { class: "muted", id: "no-pixels" }, "This key holds no pixel scope (faces:view_base or ",
      "faces:view), or no reconstructor URL was given: metadata only."));
    return box;
  }
  const full = can("faces:view");
  const shown = h("div", { class: "compare", id: "level-view" });
  const buttons = h("div", { class: "levels" });
  const levels = [0, ...Array.from({ length: full ? face.enhancement_levels : 0 }, (_, i) => i + 1)];
  let current = 0;
  async function select(level) {
    const mine = ++current;  // a later click wins: an earlier answer arriving after it is dropped
    for (const b of buttons.children) b.classList.toggle("active", Number(b.dataset.level) === level);
    const image = thumb(face.face_id, level === 0 ? { cls: "" } : { layers: "full", level, cls: "" });
    const caption = h("figcaption", { id: "level-caption" }, level === 0 ? "base layer only" : `base + level ${level}`);
    shown.replaceChildren(h("figure", {}, image, caption));
    if (!full || face.enhancement_levels === 0) return;
    const c = await attempt(() => recon(`/v1/faces/${encodeURIComponent(face.face_id)}/comparison?level=${level}`));
    if (!c || mine !== current) return;
    caption.textContent = `${level === 0 ? "base only" : `base + level ${level}`}: ${c.budget_bytes} bytes `
      + `(${layerList(c.layer_bytes)}; layer payloads); PSNR `
      + `${c.psnr_db == null ? "reference" : `${c.psnr_db} dB`}`;
    for (const [name, coded] of [["JPEG", c.jpeg], ["WebP", c.webp]]) {
      shown.append(h("figure", { class: "codec" },
        h("img", { alt: `${name} at ${coded.bytes} bytes`, src: `data:${coded.media_type};base64,${coded.image_base64}` }),
        h("figcaption", {}, `${name} q${coded.quality}: ${coded.bytes} bytes, PSNR ${coded.psnr_db ?? "∞"} dB`,
          coded.within_budget ? "" : " (smallest it makes: over the budget)")));
    }
    shown.append(h("p", { class: "muted", id: "reference-note" }, `Reference: ${c.reference}.`));
  }
  for (const level of levels) {
    buttons.append(h("button", { type: "button", dataset: { level: String(level) }, class: "level",
                                 onclick: () => select(level) }, level === 0 ? "base" : `level ${level}`));
  }
  if (!full) box.append(h("p", { class: "muted" }, "Base-only previews: this key lacks faces:view for enhancement levels."));
  box.append(buttons, shown);
  select(0);
  return box;
}

async function corrections(face) {
  const people = await list("/v1/identities?limit=500").catch(() => []);
  const choose = h("select", { id: "reassign-to" }, h("option", { value: "" }, "nobody known"),
    people.map((p) => h("option", { value: p.identity_id }, p.name)));
  const asTemplate = h("input", { type: "checkbox", id: "add-as-template" });
  const correct = (body, done) => attempt(async () => {
    await api(`/v1/sightings/${encodeURIComponent(face.face_id)}/correction`, { method: "POST", json: body });
    location.reload();
  }, done);
  const addTo = h("select", { id: "add-to" }, people.map((p) => h("option", { value: p.identity_id }, p.name)));
  const addFace = () => attempt(async () => {
    const out = await api(`/v1/identities/${addTo.value}/templates`, { method: "POST", json: { face_ids: [face.face_id] } });
    show(added(out), "info");
  });
  return h("div", { class: "card", id: "corrections" }, h("h2", {}, "Correct"),
    h("div", { class: "toolbar" },
      face.identity_id ? h("button", { type: "button", class: "danger", id: "reject",
        onclick: () => correct({ action: "reject" }, "marked: not this person") },
        `Not ${face.identity_name || "this person"}`) : null,
      h("label", {}, "This is", choose),
      h("label", { class: "check" }, asTemplate, "add this face to the identity"),
      h("button", { type: "button", id: "reassign", onclick: () => correct({
        action: "reassign", identity_id: choose.value || null, add_as_template: asTemplate.checked && !!choose.value,
      }, "reassigned") }, "Reassign")),
    people.length ? h("div", { class: "toolbar" }, h("label", {}, "Add this face as a template of", addTo),
      h("button", { type: "button", id: "add-face", onclick: addFace }, "Add to identity")) : null);
}

// The base layer first, then the enhancement levels (object keys that look like numbers come first in JS).
const layerList = (sizes) => [["base", sizes.base], ...Object.entries(sizes).filter(([k]) => k !== "base")]
  .map(([k, v]) => `${k === "base" ? "base" : `level ${k}`} ${v}`).join(", ");
