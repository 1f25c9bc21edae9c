// Live sightings: the latest decisions (GET /v1/sightings), then each new one as the event stream pushes
// it, filtered by camera, identity, status or unknown cluster; each opens its face.
import { api, page, query } from "../api.js";
import { subscribe } from "../events.js";
import { h, num, show, when } from "../dom.js";
import { faceLink, thumb, who } from "./common.js";

const SHOWN = 50;

export async function render(main) {
  const filters = { camera_id: "", identity_id: "", status: "", cluster_id: "" };
  const feed = h("span", { class: "muted", id: "feed-state" }, "connecting…");
  const inputs = {
    camera_id: h("input", { id: "filter-camera", placeholder: "camera id" }),
    identity_id: h("input", { id: "filter-identity", placeholder: "identity id" }),
    cluster_id: h("input", { id: "filter-cluster", placeholder: "unknown-…" }),
    status: h("select", { id: "filter-status" },
      ["", "recognised", "unknown", "low_quality"].map((s) => h("option", { value: s }, s || "any status"))),
  };
  const body = h("tbody", { id: "sightings" });
  const form = h("form", { class: "inline" }, h("label", {}, "Camera", inputs.camera_id),
    h("label", {}, "Identity", inputs.identity_id), h("label", {}, "Cluster", inputs.cluster_id),
    h("label", {}, "Status", inputs.status), h("button", { type: "submit" }, "Filter"));
  main.append(h("h1", {}, "Live sightings ", feed), form,
    h("table", {}, h("thead", {}, h("tr", {}, ["", "camera", "time (UTC)", "who", "score", "quality", "track"]
      .map((t) => h("th", {}, t)))), body));

  const wanted = (s) => Object.entries(filters).every(([k, v]) => !v || s[k] === v);
  const row = (s) => h("tr", {
    class: "clickable sighting", dataset: { face: s.face_id }, onclick: () => { location.hash = faceLink(s.face_id); },
  }, h("td", {}, thumb(s.face_id)), h("td", {}, s.camera_id), h("td", {}, h("a", { href: faceLink(s.face_id) }, when(s.captured_at_ms))),
    h("td", {}, who(s)), h("td", {}, num(s.similarity)), h("td", {}, num(s.quality_score ?? s.quality, 2)),
    h("td", { class: "muted" }, s.track_id || "–"));

  function add(event) {  // newest first; a face decided again (relabelled, corrected) replaces its row
    if (!wanted(event)) return;
    body.querySelector(`tr[data-face="${CSS.escape(event.face_id)}"]`)?.remove();
    body.prepend(row(event));
    while (body.children.length > SHOWN) body.lastElementChild.remove();
  }

  let stop = () => {};
  async function start() {
    stop();
    body.replaceChildren();
    // The feed first, then the past: a face decided while the list loads is not missed (rows dedupe).
    stop = subscribe({ filters, onEvent: add,
                       onState: (state) => { feed.textContent = state === "live" ? "● live" : state; } });
    try {
      const { items } = page(await api(`/v1/sightings${query({ camera_id: filters.camera_id,
        identity_id: filters.identity_id, limit: SHOWN })}`));
      const have = new Set([...body.children].map((tr) => tr.dataset.face));
      body.append(...items.filter((s) => wanted(s) && !have.has(s.face_id)).map(row));
    } catch (err) {
      show(err.message);
    }
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    for (const [k, input] of Object.entries(inputs)) filters[k] = input.value.trim();
    start();
  });
  await start();
  return () => stop();
}
