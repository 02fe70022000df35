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

// Counts down on the card's error line. The handle is kept on the item so that clearing the
// error (retry, a result) or removing the card stops it.
export function startCountdown(item, seconds) {
  const until = Date.now() + seconds * 1000;
  function tick() {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left > 0) {
      item.refs.error.textContent = "Upload limit reached — try again in " + left + " s";
    } else {
      item.refs.error.textContent = "Upload limit reached — you can try again now.";
      stopCountdown(item);
    }
  }
  tick();
  item.countdown = window.setInterval(tick, 1000);
}

export function stopCountdown(item) {
  if (item.countdown) { window.clearInterval(item.countdown); item.countdown = null; }
}
