// Identities: list with template counts and a recent face, enrol from photos (the quality gate's
// messages shown as the API words them), add photos, delete or erase after a preview of what goes.
import { api, can, page, query } from "../api.js";
import { attempt, confirmDialog, h, show, when } from "../dom.js";
import { faceLink, thumb } from "./common.js";

export async function render(main) {
  main.append(h("h1", {}, "Identities"));
  if (can("identities:write")) main.append(enrolForm());
  const grid = h("div", { class: "grid", id: "identities" });
  main.append(grid);
  const body = await attempt(() => api(`/v1/identities${query({ limit: 200 })}`));
  if (!body) return;
  const { items } = page(body);
  if (!items.length) grid.append(h("p", { class: "muted" }, "Nobody enrolled yet."));
  for (const person of items) grid.append(await card(person));
}

function enrolForm() {
  const name = h("input", { id: "enrol-name", required: true, maxlength: "128" });
  const files = h("input", { id: "enrol-files", type: "file", accept: "image/jpeg,image/png,image/webp",
                             multiple: true, required: true });
  const form = h("form", { class: "inline card", id: "enrol" }, h("label", {}, "Name", name),
    h("label", {}, "Photos", files), h("button", { class: "primary", type: "submit" }, "Enrol"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const data = new FormData();
    data.set("name", name.value);
    for (const f of files.files) data.append("images", f);
    const made = await attempt(() => api("/v1/identities", { method: "POST", form: data }));
    if (made) { show(`enrolled ${made.name}: ${made.templates} templates`, "info"); location.hash = "#/identities"; rerender(); }
  });
  return form;
}

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

async function card(person) {
  const recent = await api(`/v1/sightings${query({ identity_id: person.identity_id, limit: 1 })}`)
    .then((b) => page(b).items[0]).catch(() => null);
  const box = h("div", { class: "card identity", dataset: { identity: person.identity_id } },
    h("div", { class: "faces" }, recent ? h("a", { href: faceLink(recent.face_id) }, thumb(recent.face_id)) : null,
      h("div", {}, h("strong", { class: "name" }, person.name),
        h("div", { class: "muted" }, `${person.templates} templates · since ${when(person.created_at_ms)}`),
        h("div", { class: "muted" }, h("code", {}, person.identity_id)))));
  if (!can("identities:write")) return box;
  const photos = h("input", { type: "file", multiple: true, accept: "image/jpeg,image/png,image/webp" });
  photos.addEventListener("change", async () => {
    const data = new FormData();
    for (const f of photos.files) data.append("images", f);
    const out = await attempt(() => api(`/v1/identities/${person.identity_id}/templates`, { method: "POST", form: data }));
    if (out) { show(added(out), "info"); rerender(); }
  });
  const rename = h("input", { class: "rename-name", value: person.name, maxlength: "128" });
  const renameForm = h("form", { class: "inline" }, rename, h("button", { type: "submit", class: "rename" }, "Rename"));
  renameForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (await attempt(() => api(`/v1/identities/${person.identity_id}`, { method: "PATCH", json: { name: rename.value } }),
      `renamed to ${rename.value}`)) rerender();
  });
  box.append(renameForm, templates(person), h("div", { class: "toolbar" },
    h("label", {}, "Add photos", photos),
    h("button", { type: "button", class: "danger", onclick: () => remove(person, false) }, "Delete"),
    h("button", { type: "button", class: "danger erase", onclick: () => remove(person, true) }, "Erase…")));
  return box;
}

async function remove(person, erase) {
  if (!erase) {
    const ok = await confirmDialog(`Delete ${person.name}?`, [
      `${person.templates} enrolment templates are deleted from the gallery (Redis).`,
      "Past sightings stay, unnamed; face pixels at the edges stay. Use Erase to remove those too."], "Delete");
    if (ok && (await attempt(() => api(`/v1/identities/${person.identity_id}`, { method: "DELETE" }), "deleted")) !== undefined) rerender();
    return;
  }
  const p = await attempt(() => api(`/v1/identities/${person.identity_id}/erasure-preview`));
  if (!p) return;
  const edges = Object.entries(p.edges).map(([edge, n]) => `${edge}: ${n} faces`).join(", ") || "none";
  const ok = await confirmDialog(`Erase ${person.name} everywhere?`, [
    `Cloud (Redis): ${p.templates} templates, ${p.named_faces.length} sightings named as them, `
      + `${p.matched_faces.length} unnamed faces matching them at cosine ≥ ${p.match_threshold} `
      + `(${p.pending_faces} not yet decided), ${p.clusters.length} unknown-face clusters `
      + `(${p.cluster_faces.length} faces), and the events naming them.`,
    `Edges (enhancement layers, crops, snapshots): ${edges}; each is retried until it confirms.`,
    "This cannot be undone."], "Erase");
  if (!ok) return;
  const report = await attempt(() => api(`/v1/identities/${person.identity_id}/erase`, { method: "POST", json: { sightings: true } }));
  if (!report) return;
  show(`erasure ${report.erasure_id}: ${report.faces} faces, ${report.templates} templates erased in the cloud; `
    + `edges: ${Object.keys(report.edges).join(", ") || "none"} (follow it under Operators)`, "info");
  location.hash = "#/identities";
  rerender();
}

// What adding templates did, with the API's warnings (a template far from the others: another person?).
export function added(identity) {
  const warned = (identity.warnings || []).map((w) => w.message || w.detail || JSON.stringify(w));
  return `${identity.added?.length ?? ""} template(s) added to ${identity.name}`
    + (warned.length ? `; warning: ${warned.join("; ")}` : "");
}

// The identity's templates (each with its id, source and, for confirmed sightings, its face), removable.
function templates(person) {
  const list = h("div", { class: "faces templates" });
  const box = h("details", { class: "templates-box" }, h("summary", {}, `Templates (${person.templates})`), list);
  box.addEventListener("toggle", async () => {
    if (!box.open) return;
    const body = await attempt(() => api(`/v1/identities/${person.identity_id}/templates`));
    if (!body) return;
    list.replaceChildren(...page(body).items.map((t) => h("div", { class: "template", dataset: { template: t.template_id } },
      t.face_id ? thumb(t.face_id) : h("div", { class: "nopix" }, t.source),
      h("div", { class: "muted" }, `${t.source}${t.quality == null ? "" : ` · q ${Number(t.quality).toFixed(2)}`}`),
      can("identities:write") ? h("button", { type: "button", class: "danger remove-template", onclick: async () => {
        if (await attempt(() => api(`/v1/identities/${person.identity_id}/templates/${t.template_id}`,
          { method: "DELETE" }), "template removed") !== undefined) rerender();
      } }, "Remove") : null)));
  });
  return box;
}
