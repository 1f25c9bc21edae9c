// Elements built from data with textContent only: nothing from the API is ever parsed as HTML.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function show(message, kind = "error") {
  const status = document.getElementById("status");
  status.textContent = message;
  status.className = kind === "error" ? "" : "info";
  status.hidden = !message;
}

export const when = (ms) => (ms == null ? "" : new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"));
export const num = (x, digits = 3) => (x == null ? "–" : Number(x).toFixed(digits));

// Run an action, show what went wrong (the API's own words) instead of failing silently.
export async function attempt(fn, done) {
  try {
    const out = await fn();
    if (done) show(done, "info");
    return out;
  } catch (err) {
    show(err.message || String(err));
    return undefined;
  }
}

export function confirmDialog(title, lines, confirmLabel) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { id: "confirm" },
      h("h2", {}, title), h("ul", {}, lines.map((l) => h("li", {}, l))),
      h("div", { class: "toolbar" },
        h("button", { type: "button", id: "confirm-no", onclick: () => { dialog.close(); resolve(false); } }, "Cancel"),
        h("button", { type: "button", class: "danger", id: "confirm-yes",
                      onclick: () => { dialog.close(); resolve(true); } }, confirmLabel)));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
  });
}
