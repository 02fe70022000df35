/* Video cards: the preview is the local file in a <video>; while the worker runs, the progress
 * bar follows frames done / total; the result lists the face tracks, each with its best
 * (most suspicious) frame cut from the local file and a small chart of its score over time.
 * Nothing is fetched from the server but the JSON result: the frames come from this device. */

import { suffixPattern } from "./util.js";
import { FACE_WORDS, TONE, formatP } from "./verdict.js";

const SVG = "http://www.w3.org/2000/svg";
const VIDEO_EXT = suffixPattern("video");
const THUMB_PX = 72;

export function isVideoFile(file) {
  return !!file && ((file.type && file.type.indexOf("video/") === 0) || VIDEO_EXT.test(file.name));
}

// The card's preview becomes a muted, inline <video> of the local file.
export function videoPreview(item) {
  const v = document.createElement("video");
  v.className = "preview__video";
  v.muted = true;
  v.preload = "metadata";
  v.playsInline = true;
  v.controls = true;
  v.src = item.url;
  v.setAttribute("aria-label", "Preview of " + item.file.name);
  // A codec this browser cannot play: no preview (the server still judges the file).
  v.addEventListener("error", () => {
    item.refs.preview.hidden = true;
    item.refs.nopreview.hidden = false;
  });
  item.refs.img.hidden = true;
  item.refs.preview.appendChild(v);
  item.video = v;
}

// A running video job: frames looked at so far, out of those sampled.
export function showVideoProgress(item, job) {
  const p = job.progress;
  if (!p || !(p.frames_total > 0)) return false;
  const bar = item.refs.progress;
  bar.hidden = false;
  bar.value = Math.round(100 * Math.min(1, p.frames_done / p.frames_total));
  bar.setAttribute("aria-label", "Video analysis progress");
  item.refs.status.textContent = "Analysing video — frame " + p.frames_done + " of " +
    p.frames_total;
  return true;
}

export function showVideo(item, result) {
  const v = result.video;
  if (result.media !== "video" || !v) return;
  const preview = item.refs.preview;
  Array.prototype.slice.call(preview.querySelectorAll(".face-box")).forEach((b) => {
    preview.removeChild(b);
  });
  const old = item.el.querySelector(".tracks");
  if (old) old.parentNode.removeChild(old);
  const box = document.createElement("section");
  box.className = "tracks";
  box.setAttribute("data-testid", "tracks");
  const head = document.createElement("p");
  head.className = "tracks__head";
  const tracks = Array.isArray(v.tracks) ? v.tracks : [];
  head.textContent = (tracks.length ? tracks.length + (tracks.length === 1 ? " face" : " faces") +
    " followed through " : "No face in ") + v.frames_sampled + " sampled frames" +
    (typeof v.duration_s === "number" ? " of " + v.duration_s.toFixed(0) + " s" : "") +
    (tracks.length > 1 && result.assessment !== "not_applicable"
      ? " — the most suspicious face decides" : "");
  box.appendChild(head);
  const list = document.createElement("ul");
  list.className = "tracks__list";
  tracks.forEach((t) => { list.appendChild(trackRow(item, result, t)); });
  box.appendChild(list);
  item.refs.faces.textContent = "";
  item.refs.faces.parentNode.insertBefore(box, item.refs.faces.nextSibling);
}

function trackRow(item, result, t) {
  const li = document.createElement("li");
  // The track's tag follows its own assessment, as a face box does, never the Real/Fake label.
  const own = FACE_WORDS[t.assessment] ? t.assessment : "not_judged";
  li.className = "track track--" + TONE[own];
  li.setAttribute("data-testid", "track");
  li.setAttribute("data-assessment", own);
  const canvas = document.createElement("canvas");
  canvas.className = "track__thumb";
  canvas.width = canvas.height = THUMB_PX;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "Face " + t.id + " at " + t.best.t.toFixed(1) + " s");
  li.appendChild(canvas);
  const text = document.createElement("p");
  text.className = "track__text";
  text.textContent = "Face " + t.id + ": " + FACE_WORDS[own] + " · P(fake) " +
    formatP(t.p_fake) + " over " + t.frames + (t.frames === 1 ? " frame" : " frames") +
    " (" + t.first_t.toFixed(1) + "–" + t.last_t.toFixed(1) + " s)";
  li.appendChild(text);
  li.appendChild(chart(t, result.threshold));
  drawBest(item, t, canvas);
  return li;
}

// The track's score over time, with the threshold as a dashed line (0 at the bottom, 1 at top).
function chart(t, threshold) {
  const W = 160, H = 40;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("class", "track__chart");
  svg.setAttribute("data-testid", "track-chart");
  svg.setAttribute("role", "img");
  const pts = Array.isArray(t.scores) ? t.scores : [];
  svg.setAttribute("aria-label", "P(fake) of face " + t.id + " over time: " +
    pts.map((p) => p.p_fake.toFixed(2)).join(", "));
  const t0 = t.first_t, span = Math.max(t.last_t - t.first_t, 1e-3);
  const x = (s) => pts.length === 1 ? W / 2 : 4 + (W - 8) * (s - t0) / span;
  const y = (p) => H - 3 - (H - 6) * p;
  const line = document.createElementNS(SVG, "line");
  line.setAttribute("x1", "0");
  line.setAttribute("x2", String(W));
  line.setAttribute("y1", String(y(threshold)));
  line.setAttribute("y2", String(y(threshold)));
  line.setAttribute("class", "track__threshold");
  svg.appendChild(line);
  const path = document.createElementNS(SVG, "polyline");
  path.setAttribute("points", pts.map((p) => x(p.t).toFixed(1) + "," + y(p.p_fake).toFixed(1))
    .join(" "));
  path.setAttribute("class", "track__line");
  svg.appendChild(path);
  pts.forEach((p) => {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", x(p.t).toFixed(1));
    dot.setAttribute("cy", y(p.p_fake).toFixed(1));
    dot.setAttribute("r", "2");
    dot.setAttribute("class", p.p_fake > threshold ? "track__dot--fake" : "track__dot--real");
    svg.appendChild(dot);
  });
  return svg;
}

// The best frame's face, cut from the local file: a second <video> seeks there and draws.
function drawBest(item, t, canvas) {
  if (!item.url || !t.best || !Array.isArray(t.best.box)) return;
  const v = document.createElement("video");
  v.muted = true;
  v.preload = "auto";
  v.src = item.url;
  v.addEventListener("error", () => { canvas.setAttribute("data-drawn", "false"); });
  v.addEventListener("loadedmetadata", () => { v.currentTime = Math.max(0, t.best.t); });
  v.addEventListener("seeked", () => {
    const [x0, y0, x1, y1] = t.best.box;
    const sx = v.videoWidth / (item.result.image.width || v.videoWidth);
    const side = Math.max(x1 - x0, y1 - y0) * sx;
    const cx = (x0 + x1) / 2 * sx, cy = (y0 + y1) / 2 * sx;
    canvas.getContext("2d").drawImage(v, cx - side / 2, cy - side / 2, side, side, 0, 0,
      THUMB_PX, THUMB_PX);
    canvas.setAttribute("data-drawn", "true");
    v.removeAttribute("src");
    v.load();
  }, { once: true });
}
