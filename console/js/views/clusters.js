// Unknown people: anonymous clusters with their representative faces; promote to an identity, merge two,
// merge one into an enrolled identity, split a face off.
import { api, can, list, page, query } from "../api.js";
import { attempt, h, show, when } from "../dom.js";
import { faceLink, thumb } from "./common.js";

const rerender = () => window.dispatchEvent(new HashChangeEvent("hashchange"));

export async function render(main) {
  main.append(h("h1", {}, "Unknown people"));
  const body = await attempt(() => api(`/v1/clusters${query({ order: "recent", limit: 100 })}`));
  if (!body) return;
  const { items } = page(body);
  const people = can("identities:write") ? await list(`/v1/identities${query({ limit: 500 })}`).catch(() => []) : [];
  const grid = h("div", { class: "grid", id: "clusters" });
  main.append(grid);
  if (!items.length) grid.append(h("p", { class: "muted" }, "No unknown clusters."));
  for (const c of items) grid.append(card(c, items, people));
}

function card(c, all, people) {
  const box = h("div", { class: "card cluster", dataset: { cluster: c.cluster_id } },
    h("strong", {}, c.cluster_id), h("div", { class: "muted" },
      `${c.size} faces · ${Object.entries(c.cameras).map(([k, v]) => `${k} ${v}`).join(", ")} · last ${when(c.last_seen_ms)}`),
    h("div", { class: "faces" }, c.representative_face_ids.slice(0, 4).map((f) => h("a", { href: faceLink(f) }, thumb(f)))));
  if (!can("identities:write")) return box;
  const name = h("input", { class: "promote-name", placeholder: "name", maxlength: "128" });
  const other = h("select", { class: "merge-other" }, all.filter((o) => o.cluster_id !== c.cluster_id)
    .map((o) => h("option", { value: o.cluster_id }, `${o.cluster_id} (${o.size})`)));
  const person = h("select", { class: "into-identity-id" }, people.map((p) => h("option", { value: p.identity_id }, p.name)));
  const split = h("select", { class: "split-face" }, c.representative_face_ids.map((f) => h("option", { value: f }, f)));
  const post = (path, json, done) => attempt(() => api(`/v1/clusters/${c.cluster_id}/${path}`, { method: "POST", json }), done)
    .then((r) => { if (r) { show(done, "info"); rerender(); } });
  box.append(...[
    h("div", { class: "toolbar" }, name, h("button", { type: "button", class: "promote",
      onclick: () => post("promote", { name: name.value }, `promoted ${c.cluster_id} to ${name.value}`) }, "Promote")),
    other.options.length ? h("div", { class: "toolbar" }, other, h("button", { type: "button", class: "merge",
      onclick: () => post("merge", { other: other.value }, `merged ${other.value} into ${c.cluster_id}`) }, "Merge into this")) : null,
    people.length ? h("div", { class: "toolbar" }, person, h("button", { type: "button", class: "into-identity",
      onclick: () => post("merge-into-identity", { identity_id: person.value },
        `${c.cluster_id} merged into ${person.selectedOptions[0]?.textContent}`) }, "Is this person")) : null,
    c.size > 1 ? h("div", { class: "toolbar" }, split, h("button", { type: "button", class: "split",
      onclick: () => post("split", { face_id: split.value }, "face split off") }, "Split off")) : null,
  ].filter(Boolean));  // Element.append would write a null as the text "null"
  return box;
}
