"""Turn detected faces into model inputs: the one crop used by both training and serving.

How MARGIN was chosen (tight training crops, eye distances): docs/MODEL.md ("The face finder
and the crop").
"""

from __future__ import annotations

import inspect
import io

import numpy as np
from PIL import Image

from detector.faces import Face, FaceDetector, as_image  # LiteRT loads only in FaceDetector()

CROP_SIZE = 224
# Fraction of the face box side added on each side. Looking at crops side by side: 0.05 (1.1 box
# sides, about 2.75 eye distances) frames eyebrows to chin like the ff/dfdc crops, with a little
# slack for box jitter so the chin and jaw line (where face swaps are blended) stay in; 0.25
# shows hair, ears and background that those crops never contain.
MARGIN = 0.05
# Detail normalisation (CLIP models, card input.crop.detail): every crop is brought down to
# DETAIL_PX px and re-encoded as JPEG at DETAIL_QUALITY before the trunk sees it. The training
# reals are small, compressed faces (128-256 px) while the diffusion fakes are clean 768 px
# portraits; without this step "large, clean face" is a fake cue, and a real face from a good
# camera is accused (issue 18). With it, every face carries the same resolution and compression.
DETAIL_PX = 160
DETAIL_QUALITY = 75
# Bump when a change here or in the face finder (detector/faces.py) changes the crops a file
# gives: the training crop cache (training/common/prep.py) is keyed on it, so a bump rebuilds it.
CROP_VERSION = "1"


def square_box(box, width: int, height: int, margin: float = MARGIN) -> tuple[int, int, int, int]:
    """Square box around a face box, grown by margin, shifted or shrunk to lie inside the image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    # Shrink rather than pad when the square cannot fit: padding would add borders that no
    # training crop has; shifting keeps the whole face when the face is at an edge.
    side = int(round(min(max(side, 1.0), width, height)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def crop_resize(image: np.ndarray | Image.Image, box) -> np.ndarray:
    """The box of an RGB image (array or PIL) resized to (CROP_SIZE, CROP_SIZE, 3) uint8."""
    x0, y0, x1, y1 = (int(v) for v in box)
    # PIL's bilinear filter widens with the scale factor when shrinking, so big photos are
    # area-averaged rather than aliased.
    region = as_image(image).crop((x0, y0, x1, y1))
    return np.asarray(region.resize((CROP_SIZE, CROP_SIZE), Image.Resampling.BILINEAR))


def normalise_detail(crops: np.ndarray, px: int = DETAIL_PX, quality: int = DETAIL_QUALITY
                     ) -> np.ndarray:
    """(N,224,224,3) uint8 crops with the same detail: shrunk to px (area average), JPEG at
    quality, decoded and enlarged back to CROP_SIZE (bilinear). Deterministic."""
    out = np.empty_like(crops)
    for i, crop in enumerate(crops):
        small = Image.fromarray(np.ascontiguousarray(crop)).resize((px, px), Image.Resampling.BOX)
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as back:
            out[i] = np.asarray(back.convert("RGB").resize((CROP_SIZE, CROP_SIZE),
                                                           Image.Resampling.BILINEAR))
    return out


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """The largest centred square box of an image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def face_crops(
    image: np.ndarray | Image.Image, face_finder: FaceDetector, max_faces: int = 8
) -> tuple[np.ndarray, list[Face]]:
    """(N,224,224,3) uint8 crops, one per face (best first); no faces: the centred square."""
    img = as_image(image)  # checks the shape; a PIL image crops without copying the whole
    width, height = img.size
    faces = face_finder.detect(img)[:max_faces]
    if not faces:
        # Fallback: the centred square, not the whole image squashed. A tight crop the detector
        # missed then looks like the face crop it would have given (for a square crop it is the
        # same pixels), and no image is ever stretched, which would change its texture.
        return crop_resize(img, centre_square(width, height))[None], []
    crops = [crop_resize(img, square_box(f.box, width, height)) for f in faces]
    return np.stack(crops), faces


def detector_settings() -> dict:
    """The face detector settings crops are made with: FaceDetector's defaults."""
    return {k: v.default for k, v in inspect.signature(FaceDetector).parameters.items()
            if v.default is not inspect.Parameter.empty and k != "num_threads"}


def crop_settings() -> dict:
    """What a crop depends on besides the file: size, margin, detector settings and
    CROP_VERSION (the training crop cache is keyed on all of them)."""
    return {"size": int(CROP_SIZE), "margin": MARGIN, "detector": detector_settings(),
            "version": CROP_VERSION}
