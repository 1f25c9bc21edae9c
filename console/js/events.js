// The event feed: GET /v1/events/stream (Server-Sent Events) read with fetch() streaming, which sends the
// key in the Authorization header (EventSource cannot send headers, and the key must not go in a URL).
// On a drop it reconnects with Last-Event-ID, so nothing the stream still holds is missed.
import { query, session } from "./api.js";

const RETRY_MS = 1000;

// Calls onEvent(event) for each decision from now on that matches `filters` (camera_id, identity_id,
// status, cluster_id); onState("live" | "offline" | why) as the feed comes and goes. Returns stop().
export function subscribe({ filters = {}, onEvent, onState = () => {} }) {
  const abort = new AbortController();
  let lastId = null;
  let retryMs = RETRY_MS;

  async function connect() {
    const headers = { Authorization: `Bearer ${session.key}`, Accept: "text/event-stream" };
    if (lastId) headers["Last-Event-ID"] = lastId;
    const resp = await fetch(`/v1/events/stream${query(filters)}`, { headers, signal: abort.signal, cache: "no-store" });
    if (resp.status === 403) throw Object.assign(new Error("this key lacks events:read: no live updates"), { final: true });
    if (resp.status === 401) {  // revoked or expired: retrying would only spend the address's denial budget
      session.clear();
      window.dispatchEvent(new Event("facecodec:logged-out"));
      throw Object.assign(new Error("the key is no longer valid"), { final: true });
    }
    if (!resp.ok) throw new Error(`event stream: ${resp.status}`);
    onState("live");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  function dispatch(block) {  // one SSE message: id:, event:, data: lines; ":" lines are pings
    let id = null, data = "", type = "message";
    for (const line of block.split("\n")) {
      const colon = line.indexOf(":");
      if (colon === 0) continue;
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (id) lastId = id;
    if (data && type === "sighting") onEvent(JSON.parse(data));
  }

  (async () => {
    while (!abort.signal.aborted) {
      try {
        await connect();
      } catch (err) {
        if (abort.signal.aborted) return;
        onState(err.final ? err.message : "offline");
        if (err.final) return;
      }
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  })();
  return () => abort.abort();
}
