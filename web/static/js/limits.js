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

// The sentence a card's status line (its live region) says once when the wait starts.
export function waitingText(seconds) {
  return "Upload limit reached — waiting. This image will be uploaded again by itself in " +
    "about " + seconds + " seconds.";
}

// Waits out the limit, then calls `then` (the page uploads again by itself). The ticking seconds
// are in an aria-hidden line of their own beside the status line, so they are never announced.
// The handle is kept on the item so that a new start, a result or removal stops it.
export function startCountdown(item, seconds, then) {
  const until = Date.now() + seconds * 1000;
  let shown = item.el.querySelector(".card__wait");
  if (!shown) {
    shown = document.createElement("p");
    shown.className = "card__wait";
    shown.setAttribute("aria-hidden", "true");
    item.refs.status.parentNode.insertBefore(shown, item.refs.status.nextSibling);
  }
  shown.hidden = false;
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
  const shown = item.el && item.el.querySelector(".card__wait");
  if (shown) shown.hidden = true;
}
