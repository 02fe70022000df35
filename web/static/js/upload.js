/* Uploading: the client-side checks on a chosen file, then one POST per image with XHR (for
 * upload progress), at most MAX_UPLOADS at a time. */

import {
  API, MAX_BYTES, WAIT_S, maxMb, Slots, formatBytes, formatWords, parseJson, suffixPattern
} from "./util.js";
import { retryAfterSeconds, startCountdown, waitingText } from "./limits.js";
import {
  clearError, describeFailure, fail, setProgress, setState, showError, showFailedJob, showJob,
  showResult
} from "./render.js";
import { waitForJob } from "./jobs.js";
import { isVideoFile } from "./video.js";

const app = document.getElementById("app");
const videoMaxMb = parseFloat((app && app.getAttribute("data-video-max-mb")) || "0") || 0;
const VIDEO_MAX_BYTES = videoMaxMb > 0 ? Math.floor(videoMaxMb * 1e6) : 0;

// A hint only: the server decides by content, so a known image or video type passes too.
const EXTENSIONS = suffixPattern();
const UPLOAD_TIMEOUT_MS = 5 * 60 * 1000;
const MAX_UPLOADS = 2;                     // concurrent uploads

const uploadSlots = new Slots(MAX_UPLOADS);

// Why `file` will not be uploaded, or "" when it may be.
export function checkLocally(file) {
  if (file.link) return "";
  if (!EXTENSIONS.test(file.name) && !/^(image|video)\//.test(file.type || "")) {
    return "Wrong file type — photos (" + formatWords("still") + ") and videos (" +
      formatWords("video") + ") can be checked.";
  }
  if (isVideoFile(file)) {
    if (VIDEO_MAX_BYTES && file.size > VIDEO_MAX_BYTES) {
      return "Too large — " + formatBytes(file.size) + "; videos must be at most " +
        videoMaxMb + " MB.";
    }
  } else if (MAX_BYTES && file.size > MAX_BYTES) {
    return "Too large — " + formatBytes(file.size) + "; images must be at most " + maxMb + " MB.";
  }
  if (file.size === 0) return "Empty file — nothing to upload.";
  return "";
}

export function start(item) {
  clearError(item);
  item.refs.verdict.hidden = true;
  setState(item, "uploading", "Waiting to upload…");
  setProgress(item, 0);
  uploadSlots.take(() => {
    if (item.removed) { uploadSlots.give(); return; }
    upload(item, () => { uploadSlots.give(); });
  });
}

export function retry(item) {
  if (item.state !== "error") return;
  start(item);
}

function upload(item, release) {
  const xhr = new XMLHttpRequest();
  item.xhr = xhr;
  let released = false;
  function done() { if (!released) { released = true; item.xhr = null; release(); } }

  // The server holds the answer until the verdict (or WAIT_S): usually no polling at all.
  xhr.open("POST", API + "/jobs?wait=" + WAIT_S);
  xhr.setRequestHeader("Accept", "application/json");
  xhr.timeout = UPLOAD_TIMEOUT_MS;
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable && e.total > 0) {
      const f = e.loaded / e.total;
      setProgress(item, f);
      // The status line is a live region: say the progress in quarters, not at every event
      // (the progress bar shows it finely).
      const step = Math.floor(f * 4) * 25;
      if (step !== item.announcedStep) {
        item.announcedStep = step;
        item.refs.status.textContent = "Uploading… " + step + "%";
      }
    }
  };
  xhr.upload.onload = () => {
    done();  // the bytes are sent: the next upload may start while this one is analysed
    setProgress(item, null);
    item.refs.status.textContent = "Uploaded — analysing…";
  };
  xhr.onload = () => {
    done();
    const body = parseJson(xhr.responseText);
    if (xhr.status === 202 || xhr.status === 200 || xhr.status === 201) {
      const job = body && body.jobs && body.jobs[0];
      if (!job || !job.id) {
        fail(item, "Unexpected answer from the server (no job id).", true);
        return;
      }
      item.job = job;
      showJob(item, job);
      if (job.status === "done" && job.result) { showResult(item, job.result); return; }
      if (job.status === "failed") { showFailedJob(item, job); return; }
      waitForJob(item);
      return;
    }
    if (xhr.status === 429) {
      rateLimited(item, retryAfterSeconds(body, xhr.getResponseHeader("Retry-After")));
      return;
    }
    const retriable = xhr.status >= 500 || xhr.status === 0;
    fail(item, describeFailure(xhr.status, body, item.file.name), retriable,
      retriable ? "Not uploaded" : "Refused by the server");
  };
  xhr.onerror = () => {
    done();
    fail(item, describeFailure(0, null, item.file.name), true, "Not uploaded");
  };
  xhr.ontimeout = () => {
    done();
    fail(item, "Upload timed out — the server took too long to answer.", true);
  };
  xhr.onabort = () => { done(); };

  const form = new FormData();
  if (item.file.link) { form.append("url", item.file.link); } else {
    form.append("image", item.file, item.file.name);
  }
  // The upload is deleted on the server once it is no longer needed: ask for the "Why?" map now,
  // so the worker keeps the image for the map it makes after recording the verdict.
  form.append("explain", "1");
  item.announcedStep = 0;
  item.refs.status.textContent = "Uploading… 0%";
  xhr.send(form);
}

// Over the upload limit: the card waits out the server's Retry-After, counting down on its
// status line, and goes on by itself. Waiting is not an error: no alert, no Retry button (it
// could only hit the limit again).
function rateLimited(item, seconds) {
  setState(item, "waiting", waitingText(seconds));
  item.refs.progress.hidden = true;
  item.refs.retry.hidden = true;
  startCountdown(item, seconds, () => { if (!item.removed) start(item); });
}
