/* The verdict on a card, as one story: the assessment leads, and the card's border, the face
 * box tags and the colours follow it, never the seed's Real/Fake label. The label is shown only
 * under "Likely real" or "Likely fake", and only when it agrees (the service makes it so:
 * detector.assess.agree); otherwise, and under "Can't tell" or "Not a face photo we can judge",
 * the card gives the model's reading instead (P(fake) and the share of fakes it assumes). The
 * label's number is P(fake), never a "confidence": with a threshold of 0.3 a Fake label can sit
 * on P(fake) 0.46, and "Fake, 46% confidence" would read as a coin toss against itself. */

import { formatPercent } from "./util.js";

const WORDS = {
  likely_real: "Likely real",
  uncertain: "Can't tell",
  likely_fake: "Likely fake",
  not_applicable: "Not a face photo we can judge"
};
// The colour of an assessment: the card's border, its big word and the face tags.
export const TONE = { likely_real: "real", likely_fake: "fake", uncertain: "unsure",
  not_applicable: "none", not_judged: "none" };
export const FACE_WORDS = { likely_real: "Likely real", likely_fake: "Likely fake",
  uncertain: "Can't tell", not_judged: "Not judged" };
// The label each sure assessment stands over.
const AGREES = { likely_real: "Real", likely_fake: "Fake" };

function assessmentOf(result) {
  return WORDS[result.assessment] ? result.assessment : "uncertain";
}

// P(fake) as the service writes it (detector.assess.p_text): 0.41, 0.00053, "under 0.000001".
export function formatP(p) {
  const v = Number(p);
  if (!(v >= 0)) return "?";
  if (v >= 0.01) return v.toFixed(2);
  if (v >= 1e-6) return String(Number(v.toPrecision(2)));
  return "under 0.000001";
}

function showAssessment(item, result, kind) {
  const r = item.refs;
  r.assessment.textContent = WORDS[kind];
  r.assessment.className = "assessment assessment--" + kind.replace("_", "-");
  r.why.textContent = typeof result.reason_text === "string" ? result.reason_text : "";
  item.el.setAttribute("data-assessment", kind);
  item.el.classList.remove("card--real", "card--fake", "card--unsure", "card--none");
  item.el.classList.add("card--" + TONE[kind]);
  const st = result.stability;
  if (st && typeof st.p_fake_min === "number" && st.variants > 1) {
    r.stability.textContent = (st.unstable ? "Unstable" : "Stable") +
      " under resizing and mirroring: P(fake) " +
      formatP(st.p_fake_min) + "–" + formatP(st.p_fake_max) + " over " + st.variants +
      " versions";
  } else if (st && st.checked === false && AGREES[kind]) {
    // Only faces near the edge of their band are scored again (detector.stability.to_check).
    r.stability.textContent = "Not re-checked under resizing and mirroring: " +
      "the score is far inside its band";
  } else {
    r.stability.textContent = "";  // between the bands: "Can't tell" whatever the versions say
  }
}

// Likely real / likely fake: the seed's label agrees, and is shown with the P(fake) it reads.
function showLabel(item, result) {
  const r = item.refs;
  const label = result.label === "Fake" ? "Fake" : "Real";
  // The rule is the served threshold's, as the result states it (a setting can move it).
  r.seed.textContent = typeof result.threshold === "number"
    ? "Model's label (Fake when P(fake) is over " + formatP(result.threshold) + "):"
    : "Model's label:";
  r.label.textContent = label;
  r.label.className = "verdict__label verdict__label--" + label.toLowerCase();
  const p = Math.max(0, Math.min(1, Number(result.p_fake) || 0));
  r.pct.textContent = "P(fake) " + formatP(p);
  r.note.textContent = typeof result.prior_fake === "number"
    ? ", on the assumption that " + formatPercent(result.prior_fake) +
      " of the faces it is shown are fake" : "";
  r.meter.style.width = (p * 100).toFixed(1) + "%";
  r.meter.className = "meter__fill meter__fill--" + label.toLowerCase();
  return "Model's label: " + label + ", P(fake) " + formatP(p) + ".";
}

// The face the result's P(fake) is read from: the most suspicious judged one (any, if none is).
function mostSuspicious(faces) {
  const judged = faces.some((f) => f.assessment !== "not_judged");
  let best = -1;
  faces.forEach((f, i) => {
    if (judged && f.assessment === "not_judged") return;
    if (typeof f.p_fake === "number" && (best < 0 || f.p_fake > faces[best].p_fake)) best = i;
  });
  return best;
}

// Can't tell / not applicable: the model's number, said as a reading, not as a verdict.
function readingText(result, faces) {
  const p = formatP(result.p_fake);
  const prior = typeof result.prior_fake === "number" ? result.prior_fake : null;
  let where = "";
  if (faces.length === 0) {
    where = " for the centre of the image (no face: not what the model was made for)";
  } else if (faces.length > 1) {
    where = " for its most suspicious face (face " + (mostSuspicious(faces) + 1) + ")";
  }
  let text = "The model's reading, not a verdict: P(fake) " + p + where;
  if (prior !== null) {
    text += ", on the assumption that " + formatPercent(prior) +
      " of the faces it is shown are fake";
  }
  // Why it is no verdict is the line above (the service's reason_text, with the bands).
  return text + ".";
}

function facesText(result, faces) {
  if (result.face_found === false || faces.length === 0) {
    return "No face found — only the centre of the image was scored";
  }
  const reasons = Array.isArray(result.reasons) ? result.reasons : [];
  if (reasons.indexOf("too_many_faces") >= 0) return "A crowd — the faces were not judged";
  if (faces.length === 1) return "1 face found";
  const judged = faces.filter((f) => f.assessment !== "not_judged").length;
  return faces.length + " faces found — " + (judged === faces.length
    ? "each judged on its own" : judged + " judged, " + (faces.length - judged) + " too small");
}

// What the card says, under the card's status line (which speaks the returned sentence).
export function showVerdict(item, result) {
  const r = item.refs;
  const kind = assessmentOf(result);
  // A label that disagrees (a result kept from before the bands agreed) is not shown.
  const sure = AGREES[kind] !== undefined && AGREES[kind] === result.label;
  const faces = Array.isArray(result.faces) ? result.faces : [];
  showAssessment(item, result, kind);
  r.sure.hidden = !sure;
  r.reading.hidden = sure;
  let spoken;
  if (sure) {
    spoken = showLabel(item, result);
    r.reading.textContent = "";
  } else {
    r.label.textContent = "";
    r.pct.textContent = "";
    r.note.textContent = "";
    r.meter.style.width = "0";
    r.reading.textContent = readingText(result, faces);
    spoken = "Model's reading: P(fake) " + formatP(result.p_fake) + ".";
  }
  r.faces.textContent = facesText(result, faces);
  drawFaces(item, result, faces, kind);
  const bits = [];
  if (result.model && result.model.name) {
    bits.push("Model " + result.model.name + (result.model.version ? " " + result.model.version : ""));
  }
  if (typeof result.p_fake === "number" && typeof result.threshold === "number") {
    bits.push("P(fake) " + formatP(result.p_fake) + ", label threshold " +
      result.threshold.toFixed(2));
  }
  if (typeof result.prior_fake === "number") bits.push("prior " + formatPercent(result.prior_fake) + " fakes");
  r.model.textContent = bits.join(" · ");
  return WORDS[kind] + ". " + spoken;
}

// Boxes are in pixels of the (EXIF-rotated) image; the preview shows the same image scaled, so
// percentages of result.image.width/height land on the displayed preview at any size. Each tag
// says that face's own assessment (a result without one: the image's, for a single face).
function drawFaces(item, result, faces, kind) {
  const preview = item.refs.preview;
  Array.prototype.slice.call(preview.querySelectorAll(".face-box")).forEach((b) => {
    preview.removeChild(b);
  });
  const size = result.image || {};
  const W = Number(size.width), H = Number(size.height);
  if (!(W > 0 && H > 0)) return;
  faces.forEach((face, i) => {
    if (!face || !Array.isArray(face.box) || face.box.length !== 4) return;
    const x0 = Math.max(0, Math.min(W, Number(face.box[0])));
    const y0 = Math.max(0, Math.min(H, Number(face.box[1])));
    const x1 = Math.max(0, Math.min(W, Number(face.box[2])));
    const y1 = Math.max(0, Math.min(H, Number(face.box[3])));
    if (!(x1 > x0 && y1 > y0)) return;
    let own = FACE_WORDS[face.assessment] ? face.assessment : null;
    if (!own) own = faces.length === 1 && kind !== "not_applicable" ? kind : "not_judged";
    const box = document.createElement("div");
    box.className = "face-box face-box--" + TONE[own];
    box.setAttribute("data-assessment", own);
    box.style.left = (x0 / W * 100) + "%";
    box.style.top = (y0 / H * 100) + "%";
    box.style.width = ((x1 - x0) / W * 100) + "%";
    box.style.height = ((y1 - y0) / H * 100) + "%";
    const tag = document.createElement("span");
    tag.className = "face-box__tag";
    tag.textContent = (faces.length > 1 ? (i + 1) + ": " : "") + FACE_WORDS[own];
    box.appendChild(tag);
    box.title = "Face " + (i + 1) + (typeof face.p_fake === "number"
      ? " — P(fake) " + formatP(face.p_fake) : "");
    preview.appendChild(box);
  });
}
