/* Evidence beside the verdict on a card: the provenance panel, the "Why?" occlusion map over
 * each face, and the "This verdict is wrong" form. None of it changes the verdict shown above
 * it. Styles that depend on data (overlay position) are set through the CSSOM (CSP). */

import { API, errorOf, parseJson } from "./util.js";

function jsonRequest(method, url, body) {
  const init = { method: method, headers: { "Accept": "application/json" },
    cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(url, init).then((res) => res.text().then((text) => ({
    status: res.status, body: parseJson(text) })), () => ({ status: 0, body: null }));
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
    const cells = [];
    (face.delta || []).forEach((row, y) => row.forEach((v, x) => cells.push([v, y, x])));
    cells.sort((a, b) => b[0] - a[0]);
    const top = cells[0];
    li.textContent = (face.face === null ? "Centre of the image" : "Face " + (i + 1)) +
      ": P(fake) " + Number(face.p_fake).toFixed(3) + (top ? "; covering row " + (top[1] + 1) +
      ", column " + (top[2] + 1) + " changed it most (" + (top[0] >= 0 ? "−" : "+") +
      Math.abs(top[0]).toFixed(3) + ")" : "");
    const table = document.createElement("table");
    table.className = "why__grid";
    (face.delta || []).forEach((row) => {
      const tr = document.createElement("tr");
      row.forEach((v) => {
        const td = document.createElement("td");
        td.textContent = Number(v).toFixed(2);
        tr.appendChild(td);
      });
      table.appendChild(tr);
    });
    li.appendChild(table);
    r.whyFaces.appendChild(li);
  });
  r.whyStatus.textContent = "";
  item.el.setAttribute("data-why", "shown");
}

function askWhy(item) {
  const r = item.refs;
  // Computed by the worker with the verdict (the page uploads with explain=1): no waiting.
  const url = API + "/jobs/" + encodeURIComponent(item.job.id) + "/explanation";
  jsonRequest("GET", url).then((reply) => {
    if (item.removed) return;
    if (reply.status === 200 && reply.body) {
      r.whyBtn.disabled = false;
      drawExplanation(item, item.result, reply.body);
    } else {
      r.whyBtn.disabled = false;
      r.whyStatus.textContent = (reply.status === 410 ? "No longer available — " : "Could not explain — ")
        + messageOf(reply);
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
    r.whyStatus.textContent = "Covering parts of each face and scoring again…";
    askWhy(item);
  });
  r.wrong.addEventListener("click", (e) => {
    e.preventDefault();
    r.wrongForm.hidden = false;
    // The other answer is preselected only where the card said one: "Can't tell" (or a photo
    // it cannot judge) leaves the choice to the person.
    const said = item.result && item.result.assessment;
    const other = said === "likely_fake" ? "Real" : said === "likely_real" ? "Fake" : "";
    r.wrongForm.querySelectorAll("input[name=truth]").forEach((b) => { b.checked = false; });
    const radio = other && r.wrongForm.querySelector("input[value=" + other + "]");
    if (radio) radio.checked = true;
  });
  r.wrongForm.addEventListener("submit", (e) => sendFeedback(item, e));
}

export function resetEvidence(item) {
  clearOverlays(item);
  const r = item.refs;
  r.whyPanel.hidden = true;
  r.whyFaces.textContent = "";
  r.whyStatus.textContent = "";
  r.wrongForm.hidden = true;
  r.wrongStatus.textContent = "";
  r.wrongSend.disabled = false;
  r.wrong.hidden = false;
}
