/* What a card shows: its state line, progress bar and error text, and the verdict (verdict.js:
 * the assessment, the label or the model's reading, face boxes over the preview). Element styles
 * that depend on data (meter width, face boxes) are set through the CSSOM, which CSP allows. */

import { MAX_BYTES, maxMb, errorOf, isBusy } from "./util.js";
import { stopCountdown } from "./limits.js";
import { refreshControls } from "./cards.js";
import { resetEvidence, showProvenance, wireEvidence } from "./evidence.js";
import { showVerdict } from "./verdict.js";
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
      sure: el.querySelector("[data-testid=verdict-label]"),
      reading: el.querySelector("[data-testid=reading]"),
      label: el.querySelector("[data-testid=label]"),
      pct: el.querySelector("[data-testid=p-fake]"),
      note: el.querySelector("[data-testid=p-note]"),
      seed: el.querySelector("[data-testid=label-rule]"),
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

// The assessment leads, in words a non-expert reads right (verdict.js); the status line is the
// card's live region and says it, so a screen reader user hears the answer without hunting.
export function showResult(item, result) {
  clearError(item);
  const r = item.refs;
  item.result = result;
  resetEvidence(item);
  showProvenance(item, result);
  r.progress.hidden = true;
  r.verdict.hidden = false;
  const spoken = showVerdict(item, result);
  showVideo(item, result);  // a video's tracks, best frames and score charts (video.js)
  setState(item, "done", "Done — " + spoken);
}
