/* Page settings (from the data attributes the server puts on #app) and small helpers shared by
 * the other modules. */

const app = document.getElementById("app");

export const API = ((app && app.getAttribute("data-api")) || "/api/v1").replace(/\/+$/, "");
export const maxMb = parseFloat((app && app.getAttribute("data-max-mb")) || "0") || 0;
// Same unit as the server (MB = 10^6 bytes). The client check is a convenience only: a file
// just under the cap can still be refused (the multipart request is a little larger).
export const MAX_BYTES = maxMb > 0 ? Math.floor(maxMb * 1e6) : 0;

export const WAIT_S = 5;  // server holds a status request up to this long

// The formats the service takes (shared/formats.py, put on #app by the server): each with its
// kind ("still" or "video"), the words people read and the suffixes its files go by.
function readFormats() {
  try {
    const rows = JSON.parse((app && app.getAttribute("data-formats")) || "[]");
    return Array.isArray(rows) ? rows : [];
  } catch (e) {
    return [];
  }
}
export const FORMATS = readFormats();

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// A pattern for file names ending in a suffix of the formats of `kind` (every kind if none).
export function suffixPattern(kind) {
  const names = [];
  FORMATS.forEach((f) => {
    if (!kind || f.kind === kind) names.push(...(f.names || []));
  });
  if (!names.length) return /(?!)/;
  return new RegExp("(" + names.map(escapeRegExp).join("|") + ")$", "i");
}

// The words of the formats of a kind, as a list: "MP4, MOV, WebM, MKV".
export function formatWords(kind) {
  return FORMATS.filter((f) => f.kind === kind).map((f) => f.words).join(", ");
}

// At most n callbacks hold a slot at once; take() runs fn now or queues it until a give().
export class Slots {
  constructor(n) {
    this.free = n;
    this.waiting = [];
  }

  take(fn) {
    if (this.free > 0) { this.free -= 1; fn(); } else { this.waiting.push(fn); }
  }

  give() {
    const next = this.waiting.shift();
    if (next) { next(); } else { this.free += 1; }
  }
}

// A card in one of these states has a request in flight: it cannot be removed or cleared.
export function isBusy(state) {
  return state === "uploading" || state === "queued" || state === "running";
}

export function formatBytes(n) {
  if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
  if (n >= 1e3) return Math.round(n / 1e3) + " kB";
  return n + " bytes";
}

export function formatPercent(p) {
  const pct = Math.max(0, Math.min(1, Number(p) || 0)) * 100;
  // Never round a 99.7 % up to a certain-sounding 100 %, nor a served prior of 0.5 % up to 1 %
  // (a small share keeps its tenth: 0.5 %, 2.5 %; a whole one stays whole: 2 %).
  if (pct >= 99.5 && pct < 100) return pct.toFixed(1) + "%";
  if (pct > 0 && pct < 10 && Math.abs(pct - Math.round(pct)) > 1e-9) return pct.toFixed(1) + "%";
  return Math.round(pct) + "%";
}

export function parseJson(text) {
  if (!text) return null;
  try { return JSON.parse(text); } catch (e) { return null; }
}

// The {"error": {...}} object of an API error answer, or {} when there is none.
export function errorOf(body) {
  return (body && typeof body === "object" && body.error && typeof body.error === "object")
    ? body.error : {};
}
