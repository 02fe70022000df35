"""Find labelled images under real/ and fake/ folders and split them by group, seeded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = (".jpg", ".jpeg", ".png")
LABELS = {"real": 0, "fake": 1}
# Held-out share per source kind, chosen by group: whole videos, source videos or files.
HOLDOUT = {"ff-crops": 0.10, "stylegan-faces": 0.20, "dfdc-faces": 0.15, "sdfd-faces": 0.30}
DEFAULT_HOLDOUT = 0.15
SPLIT_RULE = (
    "Groups are never divided: a group is a video folder (ff-crops <split>/<label>/<video>/), a "
    "source-video folder shared by real/ and fake/ (dfdc), or a single file when images sit "
    "directly in real/ or fake/ (stylegan). A source with train/ and val/ keeps val/ untouched as "
    "its test set and holds out a share of train/ groups for calibration. Other sources hold out "
    "a seeded share of groups (stylegan 20%, dfdc 15%, sdfd 30%, others 15%), which is then cut "
    "in half by group: one half for calibration and model selection, the other as the test set. "
    "A group's side is decided by sha256(seed, source, group), so it does not depend on listing "
    "order."
)

# Where each training source came from and the terms it comes under, for the model cards.
TERMS = {
    "ff-crops": "FaceForensics++ material: non-commercial research use only (FaceForensics "
                "terms of use).",
    "stylegan-faces": "FFHQ real photos: CC BY-NC-SA 4.0 (non-commercial, share-alike); StyleGAN "
                      "fakes from the '140k Real and Fake Faces' collection.",
    "dfdc-faces": "Deepfake Detection Challenge (DFDC) data: research use under the DFDC licence.",
    "fairface-real": "FairFace (Karkkainen and Joo, 'FairFace: Face Attribute Dataset for Balanced "
                     "Race, Gender, and Age', WACV 2021): CC BY 4.0.",
    "sdfd-faces": "No licence file; published for research: research use only.",
    "aligned": "Made by this project from the training reals above (their terms apply) with "
               "TAEF2 (MIT, Ollin Boer Bohan).",
}
SOURCES = {
    "ff-crops": "github.com/sufi2911/Deeplearning_project dataset/{train,val} "
                "(FaceForensics++-style face-swap video frames, 128x128 crops)",
    "stylegan-faces": "github.com/zoya2244/AI-Lab-Final-Project-FALL25 dataset/{real,ai} (FFHQ vs "
                      "StyleGAN, 256x256)",
    "dfdc-faces": "github.com/i-Shreyansh/DeepFake-Detection faces_224 (Kaggle 'deepfake-faces', "
                  "from DFDC), one face per video",
    "fairface-real": "github.com/sumanvithaeadala/EthnicityDetection fair_face/train (a seeded "
                     "10,000 of FairFace's training faces; Flickr photos, real only, 224x224)",
    "sdfd-faces": "github.com/gebaltso/SDFD allImages (Baltsou et al., 'SDFD: Building a "
                  "Versatile Synthetic Face Image Dataset with Diverse Attributes', 2024): Stable "
                  "Diffusion 2.1 portraits, fake only, 768x768",
    "aligned": "aligned fakes: each training real passed through the TAEF2 autoencoder "
               "(`dfd-train aligned`), fake only",
}


@dataclass(frozen=True)
class Item:
    """One labelled image: its path, 0 real / 1 fake, the group it must stay with, its source."""

    path: str
    label: int
    group: str
    source: str


def list_images(root: str | Path, source: str | None = None) -> list[Item]:
    """Every image under root's real/ and fake/ folders (nested allowed), sorted by path."""
    root = Path(root)
    source = source or root.name
    items = []
    for label_dir in sorted(p for p in root.rglob("*") if p.is_dir() and p.name in LABELS):
        label = LABELS[label_dir.name]
        for f in sorted(label_dir.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in EXTENSIONS:
                continue
            rel = f.relative_to(label_dir)
            prefix = label_dir.parent.relative_to(root).as_posix()
            # Nested: the first folder below real/ or fake/ is the group (a video, or a source
            # video shared by both labels: same name = same person). Flat: the file itself.
            group = rel.parts[0] if len(rel.parts) > 1 else f"{label_dir.name}/{rel.as_posix()}"
            items.append(Item(str(f), label, f"{prefix}:{group}", source))
    return items


def _unit(seed: int, source: str, group: str) -> float:
    """A stable pseudo-random number in [0, 1) for a group."""
    h = hashlib.sha256(f"{seed}|{source}|{group}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_source(root: str | Path, seed: int) -> dict[str, list[Item]]:
    """{'train', 'calib', 'test'} item lists for one data root, split by group."""
    root = Path(root)
    source = root.name
    if (root / "train").is_dir() and (root / "val").is_dir():
        train_all = list_images(root / "train", source)
        test = list_images(root / "val", source)
        share = HOLDOUT.get(source, DEFAULT_HOLDOUT)
        calib = [i for i in train_all if _unit(seed, source, i.group) < share]
        train = [i for i in train_all if _unit(seed, source, i.group) >= share]
        return {"train": train, "calib": calib, "test": test}
    items = list_images(root, source)
    share = HOLDOUT.get(source, DEFAULT_HOLDOUT)
    out: dict[str, list[Item]] = {"train": [], "calib": [], "test": []}
    for i in items:
        u = _unit(seed, source, i.group)
        # u < share/2 -> calibration, share/2 <= u < share -> test, else train.
        out["calib" if u < share / 2 else "test" if u < share else "train"].append(i)
    return out


def split_all(roots: list[str | Path], seed: int) -> dict[str, dict[str, list[Item]]]:
    """split_source for every root, keyed by source name."""
    out = {}
    for r in roots:
        name = Path(r).name
        if name in out:
            raise ValueError(f"two data roots share the name {name!r}")
        out[name] = split_source(r, seed)
    return out


def write_split(splits: dict, roots: list[str | Path], seed: int, path: str | Path) -> None:
    """Record the rule, seed, counts and held-out (calib, test) file lists in split.json."""
    doc: dict = {"seed": seed, "rule": SPLIT_RULE, "sources": {}}
    for r in roots:
        name = Path(r).name
        parts = splits[name]
        entry = {"root": str(r)}
        for part, items in parts.items():
            entry[f"n_{part}"] = {"real": sum(i.label == 0 for i in items),
                                  "fake": sum(i.label == 1 for i in items),
                                  "groups": len({i.group for i in items})}
            if part != "train":
                # Paths relative to the root, so evaluation reproduces them on another checkout.
                entry[part] = [Path(i.path).relative_to(r).as_posix() for i in items]
        doc["sources"][name] = entry
    Path(path).write_text(json.dumps(doc, indent=1))


def label_of(path: str | Path) -> int:
    """A split file's label, from its real/ or fake/ folder."""
    return LABELS["fake" if "fake" in Path(path).parts else "real"]


def read_split(path: str | Path, source: str, part: str, root: str | Path | None = None
               ) -> list[Item]:
    """The held-out items of one source and part ('calib' or 'test') from a split.json."""
    doc = json.loads(Path(path).read_text())
    entry = doc["sources"][source]
    root = Path(root or entry["root"])
    out = []
    for rel in entry[part]:
        out.append(Item(str(root / rel), label_of(rel), "", source))
    return out
