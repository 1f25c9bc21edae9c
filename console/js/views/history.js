// History search: a photo (dropped or picked) or a stored face as the probe; where and when that person
// was seen, as a timeline per camera.
import { api, page } from "../api.js";
import { attempt, h, num, when } from "../dom.js";
import { faceLink, thumb } from "./common.js";

export async function render(main, [faceId]) {
  const file = h("input", { type: "file", id: "history-file", accept: "image/jpeg,image/png,image/webp" });
  const face = h("input", { id: "history-face", placeholder: "face id", value: faceId || "" });
  const minSim = h("input", { id: "history-min", type: "number", step: "0.05", min: "-1", max: "1", value: "0.3" });
  const drop = h("div", { class: "drop", id: "history-drop" }, "Drop a photo here, or pick one: ", file);
  const out = h("div", { id: "history-results" });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) search({ image: e.dataTransfer.files[0] });
  });
  const form = h("form", { class: "inline", id: "history-form" }, h("label", {}, "or a stored face", face),
    h("label", {}, "min. similarity", minSim), h("button", { class: "primary", type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    search(file.files.length ? { image: file.files[0] } : { face_id: face.value.trim() });
  });
  main.append(h("h1", {}, "Where was this person seen?"), drop, form, out);

  async function search(probe) {
    const data = new FormData();
    if (probe.image) data.set("image", probe.image); else data.set("face_id", probe.face_id);
    data.set("min_similarity", minSim.value);
    data.set("limit", "200");
    const result = await attempt(() => api("/v1/search/history", { method: "POST", form: data }));
    if (result) out.replaceChildren(...timeline(page(result).items, result));
  }
  if (faceId) search({ face_id: faceId });
}

function timeline(hits, result) {
  if (!hits.length) return [h("p", { class: "muted" }, `No sightings over ${result.days_searched} days.`)];
  const times = hits.map((x) => x.captured_at_ms);
  const lo = Math.min(...times), hi = Math.max(...times), span = Math.max(hi - lo, 1);
  const byCamera = Map.groupBy ? Map.groupBy(hits, (x) => x.camera_id)
    : hits.reduce((m, x) => m.set(x.camera_id, [...(m.get(x.camera_id) || []), x]), new Map());
  const parts = [h("p", { class: "muted" }, `${hits.length} sightings from ${when(lo)} to ${when(hi)} `
    + `(${result.probe} probe, ${result.days_searched} days searched)`)];
  for (const [camera, rows] of byCamera) {
    const line = h("div", { class: "timeline", dataset: { camera } });
    for (const x of rows) {
      const dot = h("button", { type: "button", class: "dot", title: `${when(x.captured_at_ms)} · ${num(x.similarity)}`,
                                onclick: () => { location.hash = faceLink(x.face_id); } });
      dot.style.left = `${hits.length === 1 ? 50 : ((x.captured_at_ms - lo) / span) * 96 + 2}%`;  // CSSOM: allowed by the CSP
      line.append(dot);
    }
    parts.push(h("h2", {}, `${camera} (${rows.length})`), line,
      h("div", { class: "faces" }, rows.slice(0, 12).map((x) => h("a", { href: faceLink(x.face_id), class: "hit" },
        thumb(x.face_id)))));
  }
  return parts;
}
