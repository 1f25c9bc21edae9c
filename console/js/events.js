// The event feed, behind one function so that its transport is one change: today it polls
// GET /v1/events?after=<last id> (as syncthing's event service long-polls), once the SSE stream
// (GET /v1/events/stream) is in the API it reads that with fetch() streaming, which can send the
// Authorization header (EventSource cannot, and the key must not go in a URL).
import { api, query } from "./api.js";

const POLL_MS = 1000;
const PAGE = 1000;

// Calls onEvent({id, type, ...data}) for each event after the moment it was called; onState("live" |
// "offline" | message) when the feed comes or goes. Returns a function that stops it.
export function subscribe({ onEvent, onState = () => {} }) {
  let stopped = false;
  let after = null;
  let timer = null;

  async function catchUp() {  // the newest id: the feed shows what happens from now on
    let cursor = "-";
    for (;;) {
      const batch = await api(`/v1/events${query({ after: cursor, limit: PAGE })}`);
      if (batch.length) cursor = batch[batch.length - 1].id;
      if (batch.length < PAGE) return cursor;
    }
  }

  async function tick() {
    if (stopped) return;
    try {
      if (after === null) after = await catchUp();
      const batch = await api(`/v1/events${query({ after, limit: PAGE })}`);
      onState("live");
      for (const event of batch) {
        after = event.id;
        onEvent({ id: event.id, ...event.data });
      }
    } catch (err) {
      onState(err.status === 403 ? "this key lacks events:read: no live updates" : "offline");
    }
    if (!stopped) timer = setTimeout(tick, POLL_MS);
  }

  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
