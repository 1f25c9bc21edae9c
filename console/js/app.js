// Entry point: log in, then a hash router over the views (#/live, #/face/<id>, ...).
import { LOGGED_OUT, api, can, forgetImages, session } from "./api.js";
import { attempt, h, show } from "./dom.js";
import * as clusters from "./views/clusters.js";
import * as face from "./views/face.js";
import * as history from "./views/history.js";
import * as identities from "./views/identities.js";
import * as live from "./views/live.js";
import * as operators from "./views/operators.js";

const VIEWS = { live, face, identities, clusters, history, operators };
const main = document.getElementById("main");
let cleanup = null;
let lastHash = null;
let config = { reconstructor_url: null };

function loginView() {
  const key = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true,
                           placeholder: "fck_…" });
  const recon = h("input", { id: "reconstructor-url", type: "url", value: config.reconstructor_url || "",
                             placeholder: "http://127.0.0.1:8003" });
  const form = h("form", { class: "login card", id: "login" },
    h("h1", {}, "Log in"),
    h("label", {}, "API key", key),
    h("label", {}, "Reconstructor URL (face pixels; empty: none)", recon),
    h("p", { class: "muted" }, "The key stays in this tab's session storage and is sent only in the ",
      "Authorization header, to this analyzer and to the reconstructor above."),
    h("button", { class: "primary", type: "submit", id: "login-submit" }, "Log in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    session.save(key.value.trim(), recon.value.trim());
    if (await whoami()) { show(""); location.hash = location.hash && location.hash !== "#/login" ? location.hash : "#/live"; route(); }
  });
  main.replaceChildren(form);
}

async function whoami() {
  const me = await attempt(() => api("/v1/keys/me"));
  if (!me) { session.clear(); return false; }
  session.me = me;
  return true;
}

function chrome() {
  const nav = document.getElementById("nav");
  nav.hidden = !session.me;
  for (const a of nav.querySelectorAll("a")) {
    a.hidden = !can(a.dataset.needs);
    a.classList.toggle("active", location.hash.startsWith(a.getAttribute("href")));
  }
  document.getElementById("logout").hidden = !session.me;
  document.getElementById("who").textContent = session.me
    ? `${session.me.name} · ${session.me.scopes.join(", ")}` : "";
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  if (!session.key || (!session.me && !(await whoami()))) { chrome(); loginView(); return; }
  chrome();
  const [, name = "live", ...rest] = location.hash.replace(/^#/, "").split("/");
  const view = VIEWS[name] || live;
  main.replaceChildren();
  if (location.hash !== lastHash) show("");  // a re-render of the same view keeps its message
  lastHash = location.hash;
  cleanup = (await view.render(main, rest.map(decodeURIComponent))) || null;
}

document.getElementById("logout").addEventListener("click", () => {
  session.clear();
  forgetImages();
  location.hash = "#/login";
  route();
});
window.addEventListener("hashchange", route);
window.addEventListener("facecodec:logged-out", () => { forgetImages(); route().then(() => show(LOGGED_OUT)); });

(async () => {
  config = await fetch("config.json", { cache: "no-store" }).then((r) => r.json()).catch(() => config);
  route();
})();
