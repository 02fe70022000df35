/* Evidence beside the verdict on a card: the provenance panel, the "Why?" occlusion map over
 * each face, and the "This verdict is wrong" form. None of it changes the verdict shown above
 * it. Styles that depend on data (overlay position) are set through the CSSOM (CSP). */

import { API, errorOf, parseJson } from "./util.js";
import { retryAfterSeconds } from "./limits.js";

// The map follows the verdict (the worker makes it after recording it): ask again while it is
// on its way (202), at most this long.
const WHY_GIVE_UP_MS = 2 * 60 * 1000;

function jsonRequest(method, url, body) {
  const init = { method: method, headers: { "Accept": "application/json" },
    cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init).then((res) => res.text().then((text) => ({
    status: res.status, body: parseJson(text), headers: res.headers })),
  () => ({ status: 0, body: null, headers: null }));
}

function messageOf(reply) {
  const msg = errorOf(reply.body).message;
  if (reply.status === 0) return "Network error — could not reach the server.";
  return typeof msg === "string" && msg ? msg : "the server answered " + reply.status + ".";
}

const KIND_WORDS = { generator: "Generator", editor: "Editing app", ai_generated: "Source type",
  ai_composite: "Source type", capture: "Source type", unreadable: "Unreadable" };

export function showProvenance(item, result) {
  const r = item.refs;
  const prov = result.provenance;
  r.provList.textContent = "";
  if (!prov || typeof prov !== "object") {
    r.provSummary.textContent = "Not checked for this result.";
    return;
  }
  r.provSummary.textContent = typeof prov.summary === "string" ? prov.summary : "";
  const c2pa = prov.c2pa || {};
  const lines = [];
  if (c2pa.present) {
    lines.push("Content Credentials: " + (c2pa.state || "unknown") +
      (c2pa.signer && c2pa.signer.common_name ? ", signed by " + c2pa.signer.common_name : "") +
      (c2pa.present && c2pa.state !== "unreadable" ? (c2pa.signer_trusted
        ? " (trusted)" : " (signer not trusted)") : ""));
  }
  (Array.isArray(prov.markers) ? prov.markers : []).forEach((m) => {
    lines.push((KIND_WORDS[m.kind] || m.kind) + ": " + (m.name || m.value || "") +
      " (" + m.source + " " + m.field + ")");
  });
  lines.forEach((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    r.provList.appendChild(li);
  });
}

function clearOverlays(item) {
  Array.prototype.slice.call(item.refs.preview.querySelectorAll(".why-overlay")).forEach((o) => {
    item.refs.preview.removeChild(o);
  });
}

const MOVES = 0.01;  // detector/explain.py: below this in every cell, nothing moved

// The cell that changed P(fake) most by size (the server's `largest`, else found here), in the
// grid's own sign: positive where covering the cell lowered P(fake).
function largestCell(face) {
  const l = face.largest;
  if (l && typeof l.delta === "number") return l;
  let top = null;
  (face.delta || []).forEach((row, y) => row.forEach((v, x) => {
    if (!top || Math.abs(v) > Math.abs(top.delta)) top = { row: y, column: x, delta: Number(v) };
  }));
  if (top) top.moved = Math.abs(top.delta) >= MOVES;
  return top;
}

function signed(v, digits) {
  return (v > 0 ? "+" : v < 0 ? "−" : "") + Math.abs(v).toFixed(digits);
}

function whySentence(top) {
  if (!top) return "no map.";
  if (!top.moved) {
    return "covering any one part of the face moved P(fake) by less than " + MOVES +
      ": the score does not hinge on one region.";
  }
  return "covering row " + (top.row + 1) + ", column " + (top.column + 1) +
    " changed it most: it " + (top.delta > 0 ? "lowered" : "raised") + " P(fake) by " +
    Math.abs(top.delta).toFixed(3) + " (" + signed(top.delta, 3) + " in the grid).";
}

// The numbers, with as many digits as the largest needs; its cell is marked.
function grid(delta, top) {
  const digits = Math.abs(top.delta) < 0.1 ? 3 : 2;
  const table = document.createElement("table");
  table.className = "why__grid";
  (delta || []).forEach((row, y) => {
    const tr = document.createElement("tr");
    row.forEach((v, x) => {
      const td = document.createElement("td");
      td.textContent = signed(Number(v), digits);
      if (y === top.row && x === top.column) td.className = "why__top";
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  return table;
}

function drawExplanation(item, result, got) {
  const r = item.refs;
  const size = result.image || {};
  const W = Number(size.width), H = Number(size.height);
  clearOverlays(item);
  r.whyFaces.textContent = "";
  (Array.isArray(got.faces) ? got.faces : []).forEach((face, i) => {
    const box = face.crop_box;
    if (W > 0 && H > 0 && Array.isArray(box) && box.length === 4 &&
        typeof face.overlay_png === "string" && face.overlay_png.indexOf("data:image/png;") === 0) {
      const img = document.createElement("img");
      img.className = "why-overlay";
      img.alt = "";
      img.src = face.overlay_png;
      img.style.left = (box[0] / W * 100) + "%";
      img.style.top = (box[1] / H * 100) + "%";
      img.style.width = ((box[2] - box[0]) / W * 100) + "%";
      img.style.height = ((box[3] - box[1]) / H * 100) + "%";
      r.preview.appendChild(img);
    }
    const li = document.createElement("li");
    const top = largestCell(face);
    li.textContent = (face.face === null ? "Centre of the image" : "Face " + (i + 1)) +
      ": P(fake) " + Number(face.p_fake).toFixed(3) + "; " + whySentence(top);
    if (top && top.moved) li.appendChild(grid(face.delta, top));
    r.whyFaces.appendChild(li);
  });
  r.whyStatus.textContent = "";
  item.el.setAttribute("data-why", "shown");
}

function askWhy(item, since) {
  const r = item.refs;
  // The page uploads with explain=1: the worker makes the map right after the verdict.
  const url = API + "/jobs/" + encodeURIComponent(item.job.id) + "/explanation";
  const job = item.job;
  jsonRequest("GET", url).then((reply) => {
    if (item.removed || item.job !== job) return;
    if (reply.status === 202 && Date.now() - since < WHY_GIVE_UP_MS) {
      // Still being made: the status line said so once (a live region: no repeats per poll).
      const wait = retryAfterSeconds(null, reply.headers && reply.headers.get("Retry-After"));
      item.whyTimer = window.setTimeout(() => { item.whyTimer = null; askWhy(item, since); },
        Math.min(wait, 2) * 1000);
      return;
    }
    r.whyBtn.disabled = false;
    r.whyPanel.setAttribute("aria-busy", "false");
    if (reply.status === 200 && reply.body) {
      drawExplanation(item, item.result, reply.body);
    } else {
      r.whyStatus.textContent = reply.status === 202
        ? "The map is taking too long — try Why? again later."
        : (reply.status === 410 ? "No longer available — " : "Could not explain — ") +
          messageOf(reply);
      item.el.setAttribute("data-why", "error");
    }
  });
}

function sendFeedback(item, event) {
  event.preventDefault();
  const r = item.refs;
  const picked = r.wrongForm.querySelector("input[name=truth]:checked");
  const note = r.wrongForm.querySelector("textarea").value;
  const body = { label: picked ? picked.value : "" };
  if (note) body.note = note;
  const url = API + "/jobs/" + encodeURIComponent(item.job.id) + "/feedback";
  r.wrongSend.disabled = true;
  jsonRequest("POST", url, body).then((reply) => {
    if (reply.status === 201) {
      r.wrongStatus.textContent = "Thank you — recorded with this verdict for review.";
      item.el.setAttribute("data-feedback", "sent");
      r.wrong.hidden = true;
    } else {
      r.wrongSend.disabled = reply.status === 409;
      r.wrongStatus.textContent = "Not recorded — " + messageOf(reply);
      item.el.setAttribute("data-feedback", "error");
    }
  });
}

// Wired once per card; the handlers read item.job and item.result when they run.
export function wireEvidence(item) {
  const r = item.refs;
  r.whyBtn.addEventListener("click", () => {
    r.whyPanel.hidden = false;
    r.whyBtn.disabled = true;
    r.whyPanel.setAttribute("aria-busy", "true");  // until the map, or why not, is shown
    r.whyStatus.textContent = "Making the map: covering parts of each face and scoring " +
      "again (the verdict above does not wait for it)…";
    askWhy(item, Date.now());
  });
  r.wrong.addEventListener("click", (e) => {
    e.preventDefault();
    r.wrongForm.hidden = false;
    // The answer opposite to what the card said; none picked where it said "Can't tell".
    const said = item.result && item.result.assessment;
    const other = said === "likely_fake" ? "Real" : said === "likely_real" ? "Fake" : null;
    const radio = other && r.wrongForm.querySelector("input[value=" + other + "]");
    if (radio) radio.checked = true;
  });
  r.wrongForm.addEventListener("submit", (e) => sendFeedback(item, e));
}

export function resetEvidence(item) {
  if (item.whyTimer) { window.clearTimeout(item.whyTimer); item.whyTimer = null; }
  clearOverlays(item);
  const r = item.refs;
  r.whyPanel.hidden = true;
  r.whyPanel.setAttribute("aria-busy", "false");
  r.whyBtn.disabled = false;
  r.whyFaces.textContent = "";
  r.whyStatus.textContent = "";
  r.wrongForm.hidden = true;
  r.wrongStatus.textContent = "";
  r.wrongSend.disabled = false;
  r.wrong.hidden = false;
}
