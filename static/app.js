/* Upload page: choose or drop images, upload each as its own job, long-poll for the verdict.
 * No framework, no inline code (the page runs under CSP script-src 'self'; style-src 'self').
 * Element styles that depend on data (progress of the confidence meter, face boxes) are set
 * through the CSSOM, which CSP allows. The API contract is docs/API.md. */
(function () {
  "use strict";

  var app = document.getElementById("app");
  if (!app) return;

  var API = (app.getAttribute("data-api") || "/api/v1").replace(/\/+$/, "");
  var maxMb = parseFloat(app.getAttribute("data-max-mb") || "0") || 0;
  // Same unit as the server (MB = 10^6 bytes). The client check is a convenience only: a file
  // just under the cap can still be refused (the multipart request is a little larger).
  var MAX_BYTES = maxMb > 0 ? Math.floor(maxMb * 1e6) : 0;
  var EXTENSIONS = /\.(jpe?g|png)$/i;

  var WAIT_S = 5;                          // server holds a status request up to this long
  var BACKOFF_S = [0.25, 0.5, 1, 2, 4];    // pause between non-final answers (last value repeats)
  var MAX_POLL_FAILURES = 6;               // consecutive network/5xx failures before giving up
  var POLL_GIVE_UP_MS = 15 * 60 * 1000;    // stop waiting for a job after this long
  var UPLOAD_TIMEOUT_MS = 5 * 60 * 1000;
  var MAX_UPLOADS = 2;                     // concurrent uploads
  var MAX_POLLS = 3;                       // concurrent long-polls (browsers allow ~6 per host)

  var input = document.getElementById("file-input");
  var dropzone = document.getElementById("dropzone");
  var detectBtn = document.getElementById("detect");
  var clearBtn = document.getElementById("clear");
  var summary = document.getElementById("summary");
  var cardsEl = document.getElementById("cards");
  var template = document.getElementById("card-template");

  var items = [];  // {id, file, url, el, refs, state, job, xhr, timer}
  var nextId = 1;

  // ---------------------------------------------------------------- small helpers

  function Slots(n) {
    this.free = n;
    this.waiting = [];
  }
  Slots.prototype.take = function (fn) {
    if (this.free > 0) { this.free -= 1; fn(); } else { this.waiting.push(fn); }
  };
  Slots.prototype.give = function () {
    var next = this.waiting.shift();
    if (next) { next(); } else { this.free += 1; }
  };
  var uploadSlots = new Slots(MAX_UPLOADS);
  var pollSlots = new Slots(MAX_POLLS);

  function formatBytes(n) {
    if (n >= 1e6) return (n / 1e6).toFixed(1) + " MB";
    if (n >= 1e3) return Math.round(n / 1e3) + " kB";
    return n + " bytes";
  }

  function formatPercent(p) {
    var pct = Math.max(0, Math.min(1, Number(p) || 0)) * 100;
    // Never round a 99.7 % up to a certain-sounding 100 %.
    if (pct >= 99.5 && pct < 100) return pct.toFixed(1) + "%";
    if (pct > 0 && pct < 0.5) return pct.toFixed(1) + "%";
    return Math.round(pct) + "%";
  }

  function parseJson(text) {
    if (!text) return null;
    try { return JSON.parse(text); } catch (e) { return null; }
  }

  function errorOf(body) {
    return (body && typeof body === "object" && body.error && typeof body.error === "object")
      ? body.error : {};
  }

  function retryAfterSeconds(body, header) {
    var err = errorOf(body);
    var n = Number(err.retry_after);
    if (!isFinite(n) || n <= 0) n = Number(header);
    if (!isFinite(n) || n <= 0) {
      var when = Date.parse(header || "");  // Retry-After may also be an HTTP date
      n = isFinite(when) ? (when - Date.now()) / 1000 : 0;
    }
    return Math.max(1, Math.ceil(n || 60));
  }

  // Words for a failed request (upload or status); `status` 0 means no HTTP answer at all.
  function describeFailure(status, body, fileName) {
    var err = errorOf(body);
    var msg = typeof err.message === "string" ? err.message : "";
    if (status === 0) return "Network error — could not reach the server. Check your connection.";
    if (status === 413) {
      return "Too large — " + (msg || (MAX_BYTES ? "images must be at most " + maxMb + " MB"
        : "the server refused the size"));
    }
    if (status === 415) return "Wrong file type — " + (msg || fileName + " is not a JPEG or PNG image.");
    if (status === 400) return "Not accepted — " + (msg || "the server could not read this image.");
    if (status === 401 || status === 403) return "Not allowed — " + (msg || "the server refused this request.");
    if (status === 404) return "Not found — " + (msg || "the job is unknown or has expired.");
    if (status === 503) return "Server unavailable — " + (msg || "try again in a moment.");
    if (status >= 500) return "Server error (" + status + ")" + (msg ? " — " + msg : " — try again later.");
    return "Request failed (" + status + ")" + (msg ? " — " + msg : ".");
  }

  // ---------------------------------------------------------------- cards

  function createItem(file) {
    var frag = template.content.cloneNode(true);
    var el = frag.querySelector("[data-testid=card]");
    var item = {
      id: nextId++,
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
        label: el.querySelector("[data-testid=label]"),
        pct: el.querySelector("[data-testid=confidence]"),
        meter: el.querySelector(".meter__fill"),
        faces: el.querySelector(".verdict__faces"),
        model: el.querySelector(".verdict__model"),
        error: el.querySelector("[data-testid=error]"),
        retry: el.querySelector(".card__retry"),
        remove: el.querySelector(".card__remove")
      }
    };
    el.setAttribute("data-card-id", String(item.id));
    item.refs.name.textContent = file.name;
    item.refs.name.title = file.name;
    item.refs.img.alt = "Preview of " + file.name;

    var problem = checkLocally(file);
    if (problem) {
      noPreview(item);
      setState(item, "rejected", "Not uploaded");
      showError(item, problem, false);
    } else {
      item.url = URL.createObjectURL(file);
      item.refs.img.src = item.url;
      item.refs.img.addEventListener("error", function () { noPreview(item); });
      setState(item, "pending", "Ready — " + formatBytes(file.size));
    }

    item.refs.retry.addEventListener("click", function () { retry(item); });
    item.refs.remove.addEventListener("click", function () { removeItem(item); });
    cardsEl.appendChild(el);
    items.push(item);
    return item;
  }

  function noPreview(item) {
    item.refs.img.alt = "";
    item.refs.img.removeAttribute("src");
    item.refs.preview.hidden = true;
    item.refs.nopreview.hidden = false;
  }

  function checkLocally(file) {
    if (!EXTENSIONS.test(file.name)) {
      return "Wrong file type — only .jpg, .jpeg and .png images can be checked.";
    }
    if (MAX_BYTES && file.size > MAX_BYTES) {
      return "Too large — " + formatBytes(file.size) + "; images must be at most " + maxMb + " MB.";
    }
    if (file.size === 0) return "Empty file — nothing to upload.";
    return "";
  }

  function setState(item, state, text) {
    item.state = state;
    item.el.setAttribute("data-state", state);
    item.refs.status.textContent = text;
    var busy = state === "uploading" || state === "queued" || state === "running";
    item.el.setAttribute("aria-busy", busy ? "true" : "false");
    item.refs.remove.hidden = busy;
    refreshControls();
  }

  function showError(item, text, canRetry) {
    item.refs.error.textContent = text;
    item.refs.error.hidden = false;
    item.refs.retry.hidden = !canRetry;
    item.refs.progress.hidden = true;
    item.refs.verdict.hidden = true;
  }

  function clearError(item) {
    stopCountdown(item);
    item.refs.error.textContent = "";
    item.refs.error.hidden = true;
    item.refs.retry.hidden = true;
  }

  function setProgress(item, fraction) {
    var p = item.refs.progress;
    p.hidden = false;
    if (fraction === null) {
      p.removeAttribute("value");  // indeterminate: waiting for the worker
      p.setAttribute("aria-label", "Waiting for the result");
    } else {
      p.value = Math.round(Math.max(0, Math.min(1, fraction)) * 100);
      p.setAttribute("aria-label", "Upload progress");
    }
  }

  function fail(item, text, canRetry, statusText) {
    setState(item, "error", statusText || (canRetry ? "Not finished" : "Failed"));
    showError(item, text, canRetry);
  }

  function rateLimited(item, seconds) {
    setState(item, "error", "Not uploaded");
    showError(item, "", true);
    var until = Date.now() + seconds * 1000;
    function tick() {
      var left = Math.ceil((until - Date.now()) / 1000);
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

  function stopCountdown(item) {
    if (item.countdown) { window.clearInterval(item.countdown); item.countdown = null; }
  }

  function removeItem(item) {
    if (item.xhr) { item.xhr.abort(); }
    if (item.timer) { window.clearTimeout(item.timer); }
    stopCountdown(item);
    item.removed = true;
    if (item.url) { URL.revokeObjectURL(item.url); }
    if (item.el.parentNode) { item.el.parentNode.removeChild(item.el); }
    items = items.filter(function (x) { return x !== item; });
    refreshControls();
  }

  function refreshControls() {
    var pending = 0, busy = 0, done = 0;
    items.forEach(function (it) {
      if (it.state === "pending") pending += 1;
      else if (it.state === "uploading" || it.state === "queued" || it.state === "running") busy += 1;
      else if (it.state === "done") done += 1;
    });
    detectBtn.disabled = pending === 0;
    clearBtn.disabled = items.length === 0 || busy === items.length;
    var parts = [];
    if (pending) parts.push(pending + " ready");
    if (busy) parts.push(busy + " in progress");
    if (done) parts.push(done + " checked");
    summary.textContent = parts.join(" · ");
  }

  // ---------------------------------------------------------------- upload

  function start(item) {
    clearError(item);
    item.refs.verdict.hidden = true;
    setState(item, "uploading", "Waiting to upload…");
    setProgress(item, 0);
    uploadSlots.take(function () {
      if (item.removed) { uploadSlots.give(); return; }
      upload(item, function () { uploadSlots.give(); });
    });
  }

  function upload(item, release) {
    var xhr = new XMLHttpRequest();
    item.xhr = xhr;
    var released = false;
    function done() { if (!released) { released = true; item.xhr = null; release(); } }

    // The server holds the answer until the verdict (or WAIT_S): usually no polling at all.
    xhr.open("POST", API + "/jobs?wait=" + WAIT_S);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.timeout = UPLOAD_TIMEOUT_MS;
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable && e.total > 0) {
        var f = e.loaded / e.total;
        setProgress(item, f);
        item.refs.status.textContent = "Uploading… " + Math.round(f * 100) + "%";
      }
    };
    xhr.upload.onload = function () {
      done();  // the bytes are sent: the next upload may start while this one is analysed
      setProgress(item, null);
      item.refs.status.textContent = "Uploaded — analysing…";
    };
    xhr.onload = function () {
      done();
      var body = parseJson(xhr.responseText);
      if (xhr.status === 202 || xhr.status === 200 || xhr.status === 201) {
        var job = body && body.jobs && body.jobs[0];
        if (!job || !job.id) {
          fail(item, "Unexpected answer from the server (no job id).", true);
          return;
        }
        item.job = job;
        showJob(item, job);
        if (job.status === "done" && job.result) { showResult(item, job.result); return; }
        if (job.status === "failed") { showFailedJob(item, job); return; }
        poll(item, 0, 0, Date.now());
        return;
      }
      if (xhr.status === 429) {
        rateLimited(item, retryAfterSeconds(body, xhr.getResponseHeader("Retry-After")));
        return;
      }
      var retriable = xhr.status >= 500 || xhr.status === 0;
      fail(item, describeFailure(xhr.status, body, item.file.name), retriable,
        retriable ? "Not uploaded" : "Refused by the server");
    };
    xhr.onerror = function () {
      done();
      fail(item, describeFailure(0, null, item.file.name), true, "Not uploaded");
    };
    xhr.ontimeout = function () {
      done();
      fail(item, "Upload timed out — the server took too long to answer.", true);
    };
    xhr.onabort = function () { done(); };

    var form = new FormData();
    form.append("image", item.file, item.file.name);
    item.refs.status.textContent = "Uploading… 0%";
    xhr.send(form);
  }

  function retry(item) {
    if (item.state !== "error") return;
    start(item);
  }

  // ---------------------------------------------------------------- polling

  function showJob(item, job) {
    if (job.status === "queued") {
      setState(item, "queued", "Queued — waiting for a worker");
      setProgress(item, null);
    } else if (job.status === "running") {
      setState(item, "running", "Running — analysing the image");
      setProgress(item, null);
    }
  }

  // attempt: how many non-final answers so far (drives the backoff); failures: consecutive errors.
  function poll(item, attempt, failures, since) {
    if (item.removed) return;
    pollSlots.take(function () {
      if (item.removed) { pollSlots.give(); return; }
      var url = API + "/jobs/" + encodeURIComponent(item.job.id) + "?wait=" + WAIT_S;
      var controller = typeof AbortController === "function" ? new AbortController() : null;
      var guard = window.setTimeout(function () { if (controller) controller.abort(); },
        (WAIT_S + 20) * 1000);
      var status = 0;
      var headers = null;
      fetch(url, {
        headers: { "Accept": "application/json" },
        cache: "no-store",
        credentials: "same-origin",
        signal: controller ? controller.signal : undefined
      }).then(function (res) {
        status = res.status;
        headers = res.headers;
        return res.text();
      }).then(function (text) {
        window.clearTimeout(guard);
        pollSlots.give();
        handlePoll(item, status, parseJson(text), headers, attempt, failures, since);
      }, function () {
        window.clearTimeout(guard);
        pollSlots.give();
        handlePoll(item, 0, null, null, attempt, failures, since);
      });
    });
  }

  function later(item, seconds, fn) {
    if (item.removed) return;
    item.timer = window.setTimeout(function () { item.timer = null; fn(); }, seconds * 1000);
  }

  function handlePoll(item, status, body, headers, attempt, failures, since) {
    if (item.removed) return;
    if (status === 200 && body && body.status) {
      if (body.status === "done") {
        if (body.result) { showResult(item, body.result); } else {
          fail(item, "The job finished but the server sent no result.", false);
        }
        return;
      }
      if (body.status === "failed") { showFailedJob(item, body); return; }
      showJob(item, body);
      if (Date.now() - since > POLL_GIVE_UP_MS) {
        fail(item, "Gave up waiting — the job is still " + body.status + ". Try again later.", false);
        return;
      }
      var pause = BACKOFF_S[Math.min(attempt, BACKOFF_S.length - 1)];
      later(item, pause, function () { poll(item, attempt + 1, 0, since); });
      return;
    }
    if (status === 429) {
      var wait = retryAfterSeconds(body, headers && headers.get("Retry-After"));
      item.refs.status.textContent = "Checking too often — next check in " + wait + " s";
      later(item, wait, function () { poll(item, attempt, failures, since); });
      return;
    }
    var transient = status === 0 || status >= 500 || (status === 200 && !body);
    if (transient && failures + 1 < MAX_POLL_FAILURES) {
      var backoff = BACKOFF_S[Math.min(failures + 2, BACKOFF_S.length - 1)];
      item.refs.status.textContent = (status === 0 ? "Connection lost" : "Server busy") +
        " — retrying in " + backoff + " s";
      later(item, backoff, function () { poll(item, attempt, failures + 1, since); });
      return;
    }
    fail(item, describeFailure(status === 200 ? 502 : status, body, item.file.name), false);
  }

  function showFailedJob(item, job) {
    var text = typeof job.error === "string" && job.error ? job.error : "the worker could not analyse this image.";
    setState(item, "failed", "Failed");
    showError(item, "Analysis failed — " + text, false);
  }

  // ---------------------------------------------------------------- result

  function showResult(item, result) {
    clearError(item);
    var r = item.refs;
    var label = result.label === "Fake" ? "Fake" : "Real";
    setState(item, "done", "Done");
    r.progress.hidden = true;
    r.verdict.hidden = false;
    r.label.textContent = label;
    r.label.className = "verdict__label verdict__label--" + label.toLowerCase();
    item.el.classList.remove("card--real", "card--fake");
    item.el.classList.add("card--" + label.toLowerCase());

    var conf = Math.max(0, Math.min(1, Number(result.confidence) || 0));
    r.pct.textContent = formatPercent(conf);
    r.meter.style.width = (conf * 100).toFixed(1) + "%";
    r.meter.className = "meter__fill meter__fill--" + label.toLowerCase();

    var faces = Array.isArray(result.faces) ? result.faces : [];
    if (result.face_found === false || faces.length === 0) {
      r.faces.textContent = "No face found — whole image classified";
    } else {
      r.faces.textContent = faces.length === 1 ? "1 face found" :
        faces.length + " faces found — the most suspicious face decides";
    }
    drawFaces(item, result, faces);

    var bits = [];
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
    var preview = item.refs.preview;
    Array.prototype.slice.call(preview.querySelectorAll(".face-box")).forEach(function (b) {
      preview.removeChild(b);
    });
    var size = result.image || {};
    var W = Number(size.width), H = Number(size.height);
    if (!(W > 0 && H > 0)) return;
    var threshold = typeof result.threshold === "number" ? result.threshold : 0.5;
    faces.forEach(function (face, i) {
      if (!face || !Array.isArray(face.box) || face.box.length !== 4) return;
      var x0 = Math.max(0, Math.min(W, Number(face.box[0])));
      var y0 = Math.max(0, Math.min(H, Number(face.box[1])));
      var x1 = Math.max(0, Math.min(W, Number(face.box[2])));
      var y1 = Math.max(0, Math.min(H, Number(face.box[3])));
      if (!(x1 > x0 && y1 > y0)) return;
      var fake = typeof face.p_fake === "number" && face.p_fake > threshold;
      var box = document.createElement("div");
      box.className = "face-box " + (fake ? "face-box--fake" : "face-box--real");
      box.style.left = (x0 / W * 100) + "%";
      box.style.top = (y0 / H * 100) + "%";
      box.style.width = ((x1 - x0) / W * 100) + "%";
      box.style.height = ((y1 - y0) / H * 100) + "%";
      var tag = document.createElement("span");
      tag.className = "face-box__tag";
      tag.textContent = (faces.length > 1 ? (i + 1) + ": " : "") + (fake ? "Fake" : "Real");
      box.appendChild(tag);
      box.title = "Face " + (i + 1) + (typeof face.p_fake === "number"
        ? " — P(fake) " + face.p_fake.toFixed(3) : "");
      preview.appendChild(box);
    });
  }

  // ---------------------------------------------------------------- wiring

  function addFiles(fileList) {
    var added = 0;
    Array.prototype.forEach.call(fileList || [], function (file) {
      createItem(file);
      added += 1;
    });
    refreshControls();
    return added;
  }

  input.addEventListener("change", function () {
    addFiles(input.files);
    input.value = "";  // choosing the same file again fires change again
  });

  detectBtn.addEventListener("click", function () {
    items.forEach(function (item) { if (item.state === "pending") start(item); });
  });

  clearBtn.addEventListener("click", function () {
    items.slice().forEach(function (item) {
      var busy = item.state === "uploading" || item.state === "queued" || item.state === "running";
      if (!busy) removeItem(item);
    });
  });

  // Drag and drop: anywhere on the page adds the files (and stops the browser from navigating
  // away to the dropped file); the drop zone lights up while something is dragged over it.
  var dragDepth = 0;
  function hasFiles(e) {
    var types = e.dataTransfer && e.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }
  document.addEventListener("dragenter", function (e) {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth += 1;
    dropzone.classList.add("dropzone--active");
  });
  document.addEventListener("dragover", function (e) {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", function (e) {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) dropzone.classList.remove("dropzone--active");
  });
  document.addEventListener("drop", function (e) {
    if (!e.dataTransfer) return;
    e.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("dropzone--active");
    addFiles(e.dataTransfer.files);
  });

  app.setAttribute("data-ready", "true");
  refreshControls();
})();
