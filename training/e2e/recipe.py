"""The training recipe's fixed parts: weights, source shares, and the words the card
uses for the augmentation, the pseudo-fakes and the model's limits."""

from __future__ import annotations

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[3] / "shared" / "weights" / \
    "mobilenetv2_0.35_224_imagenet_notop.npz"
# Each epoch is half real, half fake; each half is drawn from the sources holding that label in
# these shares (a source not listed gets an equal part; a real-only source feeds the real half).
# FairFace (ordinary Flickr faces) is the largest real share: the model's real class must not be
# "looks like a news studio, an FFHQ portrait or a DFDC video".
SHARES = {
    "real": {"fairface-real": 0.35, "ff-crops": 0.28, "dfdc-faces": 0.25, "stylegan-faces": 0.12},
    "fake": {"ff-crops": 0.45, "dfdc-faces": 0.35, "stylegan-faces": 0.2, "sdfd-faces": 0.2,
             # Reconstructions of training reals (training/common/aligned.py), when a run makes
             # them.
             "aligned": 0.3},
}
AUGMENTATION = ("probabilities below (except flip and grey) are multiplied by the "
                "augmentation strength: flip (p 0.5); scale 0.85-1.15, rotation +-8 deg, shift "
                "+-10% (p 0.5); down-and-up scaling 0.25-0.8 (p 0.4); Gaussian blur 0.4-2.2 px "
                "(p 0.3) or unsharp mask (p 0.3); saturation, channel gain, brightness, contrast, "
                "gamma (p 0.8); grey (p 0.05); Gaussian noise sigma 2-12 (p 0.3); JPEG quality "
                "30-95 (p 0.7)")
SBI = ("self-blended pseudo-fakes (training/common/sbi.py): a real crop blended with a copy of "
       "itself (colour, 0.95-1.05 scale, +-3% shift, blur / down-up / sharpen) inside a deformed, "
       "soft-edged face mask (BlazeFace keypoint hull, else an ellipse), blend ratio "
       "0.25-1, labelled fake; made before the augmentation above, which they then get too")
LIMITATIONS = [
    "Trained on four public sets only (face-swap video frames, StyleGAN faces, DFDC face "
    "swaps, and FairFace's ordinary Flickr faces as real only); other generators, editing tools "
    "and diffusion models are out of distribution and its scores on them are not validated "
    "here.",
    "Sees one face crop at a time (224x224, resized inside the model); no temporal or "
    "whole-image cues. Images with no detected face are classified whole (centre square).",
    "The calibration (temperature) was fitted on held-out parts of the training sources; on "
    "other sources the probabilities may be over- or under-confident.",
    "Non-commercial: the training data's terms (FaceForensics++, FFHQ, DFDC) carry over; "
    "FairFace is CC BY 4.0 (Karkkainen and Joo, WACV 2021).",
]
