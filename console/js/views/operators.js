// Operators: cameras and when each last sent a face, edges and when each last delivered, the latest erasures with each edge's status, and
// (admins) the gallery's health and the audit trail.
import { api, can, page, query } from "../api.js";
import { attempt, h, when } from "../dom.js";

const WINDOW_MS = 5 * 60 * 1000;

export async function render(main) {
  main.append(h("h1", {}, "Operators"));
  const cameras = await attempt(() => api("/v1/cameras"));
  if (cameras) {
    const now = Date.now();
    // Faces per minute over the last five, per camera, from the sightings of that window (one listing).
    const recent = await api(`/v1/sightings${query({ since: new Date(now - WINDOW_MS).toISOString(), limit: 500 })}`)
      .then((b) => page(b).items).catch(() => []);
    const perCamera = recent.reduce((m, s) => m.set(s.camera_id, (m.get(s.camera_id) || 0) + 1), new Map());
    const rate = (id) => `${((perCamera.get(id) || 0) / (WINDOW_MS / 60000)).toFixed(1)}${recent.length >= 500 ? "+" : ""}`;
    main.append(h("h2", {}, "Cameras"), h("table", { id: "cameras" },
      h("thead", {}, h("tr", {}, ["camera", "last face (UTC)", "ago", "sightings", "faces/min (last 5 min)"]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, page(cameras).items.map((c) => h("tr", {}, h("td", {}, c.camera_id), h("td", {}, when(c.last_seen_ms)),
        h("td", {}, `${Math.max(0, Math.round((now - c.last_seen_ms) / 1000))} s`), h("td", {}, c.sightings),
        h("td", {}, rate(c.camera_id)))))));
  }
  const edges = await attempt(() => api("/v1/edges"));
  if (edges) {
    main.append(h("h2", {}, "Edges"), h("table", { id: "edges" },
      h("thead", {}, h("tr", {}, ["edge", "status", "last delivered", "erasures to confirm"].map((t) => h("th", {}, t)))),
      h("tbody", {}, page(edges).items.map((e) => h("tr", {}, h("td", {}, e.edge_id + (e.trusted ? "" : " (not trusted)")),
        h("td", {}, e.status), h("td", {}, e.last_contact_ms ? when(e.last_contact_ms) : "never"),
        h("td", {}, e.erasures_pending))))));
  }
  if (can("metrics:read")) main.append(await throughput());
  const erasures = can("identities:write") ? await attempt(() => api(`/v1/erasures${query({ limit: 20 })}`)) : null;
  if (erasures && page(erasures).items.length) {
    main.append(h("h2", {}, "Latest erasures"), h("table", { id: "erasures" },
      h("thead", {}, h("tr", {}, ["erasure", "subject", "requested", "cloud", "edges", "complete"].map((t) => h("th", {}, t)))),
      h("tbody", {}, page(erasures).items.map((e) => h("tr", {}, h("td", {}, e.erasure_id), h("td", {}, e.subject),
        h("td", {}, when(e.requested_at_ms)), h("td", {}, `${e.templates} templates, ${e.faces} faces`),
        h("td", {}, Object.entries(e.edges).map(([k, v]) => `${k}: ${v.status} (${v.erased} erased)`).join("; ") || "none"),
        h("td", {}, e.complete ? "yes" : "pending"))))));
  }
  if (!can("admin")) return;
  const health = await attempt(() => api("/v1/health"));
  if (health) {
    main.append(h("h2", {}, "Analyzer"), h("p", { id: "health" }, `${health.identities} identities enrolled; codec `
      + `${health.codec}; target FPIR ${health.target_fpir}; audit: ${health.audit.entries} entries`
      + ` (${health.audit.dropped_over_cap} dropped over the cap)`));
  }
  const audit = h("tbody", {});
  let cursor = null;
  const more = h("button", { type: "button", id: "audit-more" }, "Older");
  async function load() {
    const body = await attempt(() => api(`/v1/audit${query({ limit: 50, cursor })}`));
    if (!body) return;
    const { items, next } = page(body);
    audit.append(...items.map((a) => h("tr", {}, h("td", {}, a.at || when(a.at_ms)), h("td", {}, a.key_name || a.key_id),
      h("td", {}, a.action), h("td", {}, `${a.outcome} ${a.status}`), h("td", {}, a.face_id || a.identity_id || ""),
      h("td", {}, a.layers || ""), h("td", { class: "muted" }, a.detail || ""))));
    cursor = next;
    more.hidden = !next;
  }
  more.addEventListener("click", load);
  main.append(h("h2", {}, "Audit trail"), h("table", { id: "audit" },
    h("thead", {}, h("tr", {}, ["time", "key", "action", "outcome", "subject", "layers", "detail"].map((t) => h("th", {}, t)))),
    audit), more);
  await load();
}

// The analyzer's own counters (GET /metrics, Prometheus text; a key with metrics:read): faces ingested
// and decided per second over a few seconds, and what waits in the ingest stream and for edges.
const SAMPLE_MS = 3000;

function sum(text, name) {  // every series of `name` added up (all label values)
  return text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((total, l) => total + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

async function metricsText() {
  return (await api("/metrics")).text();
}

async function throughput() {
  const line = h("p", { id: "throughput" }, "measuring faces/s…");
  const box = h("div", {}, h("h2", {}, "Throughput"), line);
  const first = await metricsText().catch(() => null);
  if (first === null) { line.textContent = "metrics unavailable"; return box; }
  setTimeout(async () => {
    const second = await metricsText().catch(() => null);
    if (second === null || !line.isConnected) return;
    const rate = (name) => ((sum(second, name) - sum(first, name)) / (SAMPLE_MS / 1000)).toFixed(2);
    line.textContent = `ingest ${rate("analyzer_faces_ingested_total")} faces/s, decisions `
      + `${rate("analyzer_decisions_total")}/s (over ${SAMPLE_MS / 1000} s); waiting in the ingest stream `
      + `${sum(second, "analyzer_stream_lag")}, being decided ${sum(second, "analyzer_stream_pending")}; `
      + `erasures not yet confirmed by an edge ${sum(second, "analyzer_erasures_pending")}`;
  }, SAMPLE_MS);
  return box;
}
