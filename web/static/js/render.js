/* What a card shows: its state line, progress bar and error text, and the verdict (label,
 * confidence meter, face boxes over the preview). Element styles that depend on data (width of
 * the confidence meter, face boxes) are set through the CSSOM, which CSP allows. */

import { MAX_BYTES, maxMb, errorOf, formatPercent, isBusy } from "./util.js";
import { stopCountdown } from "./limits.js";
import { refreshControls } from "./cards.js";
import { resetEvidence, showProvenance, wireEvidence } from "./evidence.js";
import { showVideo, showVideoProgress } from "./video.js";

const template = document.getElementById("card-template");

// A new card for `file` from the page's <template>; the caller checks the file and adds it.
export function createCard(id, file) {
  const frag = template.content.cloneNode(true);
  const el = frag.querySelector("[data-testid=card]");
  const item = {
    id: id,
    file: file,
    url: null,
    el: el,
    state: "pending",
    job: null,
    xhr: null,
    timer: null,
    countdown: null,
    refs: {
      img: el.querySelector(".preview__img"),
      preview: el.querySelector(".preview"),
      nopreview: el.querySelector(".card__nopreview"),
      name: el.querySelector(".card__name"),
      status: el.querySelector("[data-testid=status]"),
      progress: el.querySelector("[data-testid=progress]"),
      verdict: el.querySelector(".verdict"),
      assessment: el.querySelector("[data-testid=assessment]"),
      why: el.querySelector("[data-testid=assessment-why]"),
      stability: el.querySelector("[data-testid=stability]"),
      label: el.querySelector("[data-testid=label]"),
      pct: el.querySelector("[data-testid=confidence]"),
      meter: el.querySelector(".meter__fill"),
      faces: el.querySelector(".verdict__faces"),
      model: el.querySelector(".verdict__model"),
      error: el.querySelector("[data-testid=error]"),
      retry: el.querySelector(".card__retry"),
      provSummary: el.querySelector("[data-testid=provenance-summary]"),
      provList: el.querySelector("[data-testid=provenance-list]"),
      whyBtn: el.querySelector("[data-testid=why]"),
      whyPanel: el.querySelector("[data-testid=why-panel]"),
      whyStatus: el.querySelector("[data-testid=why-status]"),
      whyFaces: el.querySelector("[data-testid=why-faces]"),
      wrong: el.querySelector("[data-testid=wrong]"),
      wrongForm: el.querySelector("[data-testid=wrong-form]"),
      wrongSend: el.querySelector(".wrong__send"),
      wrongStatus: el.querySelector("[data-testid=wrong-status]"),
      remove: el.querySelector(".card__remove")
    }
  };
  el.setAttribute("data-card-id", String(item.id));
  item.refs.name.textContent = file.name;
  item.refs.name.title = file.name;
  item.refs.img.alt = "Preview of " + file.name;
  wireEvidence(item);
  return item;
}

export function noPreview(item) {
  item.refs.img.alt = "";
  item.refs.img.removeAttribute("src");
  item.refs.preview.hidden = true;
  item.refs.nopreview.hidden = false;
}

export function setState(item, state, text) {
  item.state = state;
  item.el.setAttribute("data-state", state);
  item.refs.status.textContent = text;
  const busy = isBusy(state);
  item.el.setAttribute("aria-busy", busy ? "true" : "false");
  item.refs.remove.hidden = busy;
  refreshControls();
}

export function showError(item, text, canRetry) {
  item.refs.error.textContent = text;
  item.refs.error.hidden = false;
  item.refs.retry.hidden = !canRetry;
  item.refs.progress.hidden = true;
  item.refs.verdict.hidden = true;
}

export function clearError(item) {
  stopCountdown(item);
  item.refs.error.textContent = "";
  item.refs.error.hidden = true;
  item.refs.retry.hidden = true;
}

export function setProgress(item, fraction) {
  const p = item.refs.progress;
  p.hidden = false;
  if (fraction === null) {
    p.removeAttribute("value");  // indeterminate: waiting for the worker
    p.setAttribute("aria-label", "Waiting for the result");
  } else {
    p.value = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
    p.setAttribute("aria-label", "Upload progress");
  }
}

export function fail(item, text, canRetry, statusText) {
  setState(item, "error", statusText || (canRetry ? "Not finished" : "Failed"));
  showError(item, text, canRetry);
}

// Words for a failed request (upload or status); `status` 0 means no HTTP answer at all.
export function describeFailure(status, body, fileName) {
  const err = errorOf(body);
  const msg = typeof err.message === "string" ? err.message : "";
  if (status === 0) return "Network error — could not reach the server. Check your connection.";
  if (status === 413) {
    return "Too large — " + (msg || (MAX_BYTES ? "images must be at most " + maxMb + " MB"
      : "the server refused the size"));
  }
  if (status === 415) return "Wrong file type — " + (msg || fileName + " is not an image or video we can check.");
  if (status === 400) return "Not accepted — " + (msg || "the server could not read this image.");
  if (status === 401 || status === 403) return "Not allowed — " + (msg || "the server refused this request.");
  if (status === 404) return "Not found — " + (msg || "the job is unknown or has expired.");
  if (status === 503) return "Server unavailable — " + (msg || "try again in a moment.");
  if (status >= 500) return "Server error (" + status + ")" + (msg ? " — " + msg : " — try again later.");
  return "Request failed (" + status + ")" + (msg ? " — " + msg : ".");
}

// A job that is not final yet; other statuses are shown by showResult / showFailedJob.
export function showJob(item, job) {
  if (job.status === "queued") {
    setState(item, "queued", "Queued — waiting for a worker");
    setProgress(item, null);
  } else if (job.status === "running") {
    setState(item, "running", "Running — analysing the image");
    if (!showVideoProgress(item, job)) setProgress(item, null);
  }
}

export function showFailedJob(item, job) {
  const text = typeof job.error === "string" && job.error ? job.error : "the worker could not analyse this image.";
  setState(item, "failed", "Failed");
  showError(item, "Analysis failed — " + text, false);
}

// The assessment comes first, in words a non-expert reads right; the seed's label and P(fake)
// follow underneath for those who want the number.
const ASSESSMENT_WORDS = {
  likely_real: "Likely real",
  uncertain: "Can't tell",
  likely_fake: "Likely fake",
  not_applicable: "Not a face photo we can judge"
};

function showAssessment(item, result) {
  const r = item.refs;
  const kind = ASSESSMENT_WORDS[result.assessment] ? result.assessment : "uncertain";
  r.assessment.textContent = ASSESSMENT_WORDS[kind];
  r.assessment.className = "assessment assessment--" + kind.replace("_", "-");
  r.why.textContent = typeof result.reason_text === "string" ? result.reason_text : "";
  item.el.setAttribute("data-assessment", kind);
  const st = result.stability;
  if (st && typeof st.p_fake_min === "number" && st.variants > 1) {
    r.stability.textContent = (st.unstable ? "Unstable" : "Stable") +
      " under resizing, mirroring and re-cropping: P(fake) " +
      st.p_fake_min.toFixed(2) + "–" + st.p_fake_max.toFixed(2) + " over " + st.variants +
      " versions";
  } else {
    r.stability.textContent = "";
  }
}

export function showResult(item, result) {
  clearError(item);
  const r = item.refs;
  const label = result.label === "Fake" ? "Fake" : "Real";
  showAssessment(item, result);
  // The status line is the card's live region: it says the verdict, not just "Done", so a
  // screen reader user hears the answer without hunting for it.
  setState(item, "done", "Done — " + r.assessment.textContent + ". Model's label: " + label + ".");
  item.result = result;
  resetEvidence(item);
  showProvenance(item, result);
  r.progress.hidden = true;
  r.verdict.hidden = false;
  r.label.textContent = label;
  r.label.className = "verdict__label verdict__label--" + label.toLowerCase();
  item.el.classList.remove("card--real", "card--fake");
  item.el.classList.add("card--" + label.toLowerCase());

  const conf = Math.max(0, Math.min(1, Number(result.confidence) || 0));
  r.pct.textContent = formatPercent(conf);
  r.meter.style.width = (conf * 100).toFixed(1) + "%";
  r.meter.className = "meter__fill meter__fill--" + label.toLowerCase();

  const faces = Array.isArray(result.faces) ? result.faces : [];
  if (result.face_found === false || faces.length === 0) {
    r.faces.textContent = "No face found — whole image classified";
  } else {
    r.faces.textContent = faces.length === 1 ? "1 face found" :
      faces.length + " faces found — the most suspicious face decides";
  }
  drawFaces(item, result, faces);
  showVideo(item, result);  // a video's tracks, best frames and score charts (video.js)

  const bits = [];
  if (result.model && result.model.name) {
    bits.push("Model " + result.model.name + (result.model.version ? " " + result.model.version : ""));
  }
  if (typeof result.p_fake === "number" && typeof result.threshold === "number") {
    bits.push("P(fake) " + result.p_fake.toFixed(3) + ", Fake above " + result.threshold.toFixed(2));
  }
  r.model.textContent = bits.join(" · ");
}

// Boxes are in pixels of the (EXIF-rotated) image; the preview shows the same image scaled, so
// percentages of result.image.width/height land on the displayed preview at any size.
function drawFaces(item, result, faces) {
  const preview = item.refs.preview;
  Array.prototype.slice.call(preview.querySelectorAll(".face-box")).forEach((b) => {
    preview.removeChild(b);
  });
  const size = result.image || {};
  const W = Number(size.width), H = Number(size.height);
  if (!(W > 0 && H > 0)) return;
  const threshold = typeof result.threshold === "number" ? result.threshold : 0.5;
  faces.forEach((face, i) => {
    if (!face || !Array.isArray(face.box) || face.box.length !== 4) return;
    const x0 = Math.max(0, Math.min(W, Number(face.box[0])));
    const y0 = Math.max(0, Math.min(H, Number(face.box[1])));
    const x1 = Math.max(0, Math.min(W, Number(face.box[2])));
    const y1 = Math.max(0, Math.min(H, Number(face.box[3])));
    if (!(x1 > x0 && y1 > y0)) return;
    const fake = typeof face.p_fake === "number" && face.p_fake > threshold;
    const box = document.createElement("div");
    box.className = "face-box " + (fake ? "face-box--fake" : "face-box--real");
    box.style.left = (x0 / W * 100) + "%";
    box.style.top = (y0 / H * 100) + "%";
    box.style.width = ((x1 - x0) / W * 100) + "%";
    box.style.height = ((y1 - y0) / H * 100) + "%";
    const tag = document.createElement("span");
    tag.className = "face-box__tag";
    tag.textContent = (faces.length > 1 ? (i + 1) + ": " : "") + (fake ? "Fake" : "Real");
    box.appendChild(tag);
    box.title = "Face " + (i + 1) + (typeof face.p_fake === "number"
      ? " — P(fake) " + face.p_fake.toFixed(3) : "");
    preview.appendChild(box);
  });
}
