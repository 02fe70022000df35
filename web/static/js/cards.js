/* The list of cards on the page, and what depends on all of them: the Detect and Clear all
 * buttons and the summary line. */

import { isBusy } from "./util.js";
import { stopCountdown } from "./limits.js";

const cardsEl = document.getElementById("cards");
const detectBtn = document.getElementById("detect");
const clearBtn = document.getElementById("clear");
const summary = document.getElementById("summary");

export const items = [];  // {id, file, url, el, refs, state, job, xhr, timer, countdown}

export function addItem(item) {
  cardsEl.appendChild(item.el);
  items.push(item);
}

export function removeItem(item) {
  if (item.xhr) { item.xhr.abort(); }
  if (item.timer) { window.clearTimeout(item.timer); }
  if (item.whyTimer) { window.clearTimeout(item.whyTimer); }
  stopCountdown(item);
  item.removed = true;
  if (item.url) { URL.revokeObjectURL(item.url); }
  if (item.el.parentNode) { item.el.parentNode.removeChild(item.el); }
  const i = items.indexOf(item);
  if (i !== -1) items.splice(i, 1);
  refreshControls();
}

export function refreshControls() {
  let pending = 0, busy = 0, done = 0, waiting = 0;
  items.forEach((it) => {
    if (it.state === "pending") pending += 1;
    else if (it.state === "waiting") waiting += 1;
    else if (isBusy(it.state)) busy += 1;
    else if (it.state === "done") done += 1;
  });
  detectBtn.disabled = pending === 0;
  clearBtn.disabled = items.length === 0 || busy === items.length;
  const parts = [];
  if (pending) parts.push(pending + " ready");
  if (busy) parts.push(busy + " in progress");
  if (waiting) parts.push(waiting + " waiting for the upload limit");
  if (done) parts.push(done + " checked");
  summary.textContent = parts.join(" · ");
}
