/* Upload page: choose or drop images, upload each as its own job, long-poll for the verdict.
 * No framework, no build step, no inline code (the page runs under CSP script-src 'self';
 * style-src 'self'); native ES modules loaded from templates/index.html. The API contract is
 * docs/API.md.
 *
 *   main.js    wires the page: file input, drag and drop, Detect, Clear all
 *   upload.js  client-side checks, POST /jobs with XHR and upload progress
 *   jobs.js    long-polling a job's status: backoff, retries, giving up
 *   render.js  what a card shows: state, progress, errors, verdict, face boxes
 *   limits.js  429 / Retry-After and the upload-limit countdown
 *   cards.js   the list of cards, the Detect / Clear all buttons and the summary
 *   util.js    page settings from #app and small shared helpers */

import { formatBytes, isBusy } from "./util.js";
import { addItem, items, refreshControls, removeItem } from "./cards.js";
import { createCard, noPreview, setState, showError } from "./render.js";
import { checkLocally, retry, start } from "./upload.js";
import { isVideoFile, videoPreview } from "./video.js";

let nextId = 1;

function createItem(file) {
  const item = createCard(nextId++, file);
  const problem = checkLocally(file);
  if (problem) {
    noPreview(item);
    setState(item, "rejected", "Not uploaded");
    showError(item, problem, false);
  } else if (file.link) {
    noPreview(item);  // the server fetches it; this page does not
    setState(item, "pending", "Ready — a link");
  } else {
    item.url = URL.createObjectURL(file);
    if (isVideoFile(file)) {
      videoPreview(item);
    } else {
      item.refs.img.src = item.url;
      item.refs.img.addEventListener("error", () => { noPreview(item); });
    }
    setState(item, "pending", "Ready — " + formatBytes(file.size));
  }

  item.refs.retry.addEventListener("click", () => { retry(item); });
  item.refs.remove.addEventListener("click", () => { removeItem(item); });
  addItem(item);
  return item;
}

function addFiles(fileList) {
  let added = 0;
  Array.prototype.forEach.call(fileList || [], (file) => {
    createItem(file);
    added += 1;
  });
  refreshControls();
  return added;
}

function wirePage(app) {
  const input = document.getElementById("file-input");
  const dropzone = document.getElementById("dropzone");

  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";  // choosing the same file again fires change again
  });

  // A link: one card, uploaded as the form field `url`; the server fetches and checks it.
  const linkForm = document.getElementById("link-form");
  linkForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const box = document.getElementById("link-input");
    const url = box.value.trim();
    if (!url) return;
    createItem({ name: url, size: 0, type: "", link: url });
    box.value = "";
    refreshControls();
  });

  document.getElementById("detect").addEventListener("click", () => {
    items.forEach((item) => { if (item.state === "pending") start(item); });
  });

  document.getElementById("clear").addEventListener("click", () => {
    items.slice().forEach((item) => {
      if (!isBusy(item.state)) removeItem(item);
    });
  });

  // Drag and drop: anywhere on the page adds the files (and stops the browser from navigating
  // away to the dropped file); the drop zone lights up while something is dragged over it.
  let dragDepth = 0;
  function hasFiles(e) {
    const types = e.dataTransfer && e.dataTransfer.types;
    return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
  }
  document.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth += 1;
    dropzone.classList.add("dropzone--active");
  });
  document.addEventListener("dragover", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (dragDepth === 0) dropzone.classList.remove("dropzone--active");
  });
  document.addEventListener("drop", (e) => {
    if (!e.dataTransfer) return;
    e.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("dropzone--active");
    addFiles(e.dataTransfer.files);
  });

  app.setAttribute("data-ready", "true");  // the browser test waits for this
  refreshControls();
}

const app = document.getElementById("app");
if (app) wirePage(app);
