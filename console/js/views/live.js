// Live sightings: the newest faces, refreshed as events arrive, filterable; each opens its face.
import { api, page, query } from "../api.js";
import { subscribe } from "../events.js";
import { h, num, show, when } from "../dom.js";
import { faceLink, thumb, who } from "./common.js";

export async function render(main) {
  const filters = { camera_id: "", identity_id: "", status: "" };
  const feed = h("span", { class: "muted", id: "feed-state" }, "connecting…");
  const camera = h("input", { id: "filter-camera", placeholder: "camera id" });
  const identity = h("input", { id: "filter-identity", placeholder: "identity id" });
  const status = h("select", { id: "filter-status" },
    ["", "recognised", "unknown", "low_quality"].map((s) => h("option", { value: s }, s || "any status")));
  const body = h("tbody", { id: "sightings" });
  const form = h("form", { class: "inline" }, h("label", {}, "Camera", camera), h("label", {}, "Identity", identity),
    h("label", {}, "Status", status), h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    Object.assign(filters, { camera_id: camera.value.trim(), identity_id: identity.value.trim(), status: status.value });
    load();
  });
  main.append(h("h1", {}, "Live sightings ", feed), form,
    h("table", {}, h("thead", {}, h("tr", {}, ["", "camera", "time (UTC)", "who", "score", "quality", "track"]
      .map((t) => h("th", {}, t)))), body));

  let loading = null;
  async function load() {
    if (loading) return loading;
    loading = (async () => {
      try {
        const { items } = page(await api(`/v1/sightings${query({ camera_id: filters.camera_id,
          identity_id: filters.identity_id, limit: 50 })}`));
        const rows = items.filter((s) => !filters.status || s.status === filters.status);
        body.replaceChildren(...rows.map((s) => h("tr", {
          class: "clickable sighting", dataset: { face: s.face_id }, onclick: () => { location.hash = faceLink(s.face_id); },
        }, h("td", {}, thumb(s.face_id)), h("td", {}, s.camera_id), h("td", {}, when(s.captured_at_ms)),
          h("td", {}, who(s)), h("td", {}, num(s.similarity)), h("td", {}, num(s.quality_score, 2)),
          h("td", { class: "muted" }, s.track_id || "–"))));
      } catch (err) {
        show(err.message);
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  await load();
  let pending = null;
  const stop = subscribe({
    onEvent: (event) => {
      if (!String(event.type || "").startsWith("face.")) return;
      clearTimeout(pending);
      pending = setTimeout(load, 200);  // a burst of events: one reload
    },
    onState: (state) => { feed.textContent = state === "live" ? "● live" : state; },
  });
  return () => { stop(); clearTimeout(pending); };
}
