/* Rate limits: how long the server asks us to wait (a 429 answer's retry_after or Retry-After),
 * and the countdown a card shows until another upload is allowed. */

import { errorOf } from "./util.js";

export function retryAfterSeconds(body, header) {
  const err = errorOf(body);
  let n = Number(err.retry_after);
  if (!isFinite(n) || n <= 0) n = Number(header);
  if (!isFinite(n) || n <= 0) {
    const when = Date.parse(header || "");  // Retry-After may also be an HTTP date
    n = isFinite(when) ? (when - Date.now()) / 1000 : 0;
  }
  return Math.max(1, Math.ceil(n || 60));
}

// Counts down on the card's status line, then calls `then` (the page uploads again by itself).
// The status line is a live region: screen readers hear one sentence when the wait starts; the
// ticking seconds are shown in an aria-hidden part, so they are not re-announced every second.
// The handle is kept on the item so that a new start, a result or removal stops it.
export function startCountdown(item, seconds, then) {
  const until = Date.now() + seconds * 1000;
  const said = document.createElement("span");
  said.className = "visually-hidden";
  said.textContent = "Upload limit reached. This image will be uploaded again by itself in " +
    "about " + seconds + " seconds.";
  const shown = document.createElement("span");
  shown.setAttribute("aria-hidden", "true");
  item.refs.status.replaceChildren(said, shown);
  function tick() {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left > 0) {
      shown.textContent = "Waiting for the upload limit — uploading by itself in " + left + " s";
      return;
    }
    stopCountdown(item);
    if (then) then();
  }
  tick();
  item.countdown = window.setInterval(tick, 1000);
}

export function stopCountdown(item) {
  if (item.countdown) { window.clearInterval(item.countdown); item.countdown = null; }
}
