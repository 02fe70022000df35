"""The ONNX tower's weight layout for this CPU, chosen at load and guarded by a numeric self-check.

ONNX Runtime picks its int8 kernels by the CPU's instruction sets. With VNNI or AMX it multiplies
uint8 activations by int8 weights exactly, and the file as shipped is the fastest layout (AMX:
25 ms a block-6 crop against 100 ms for the unsigned rewrite, outputs bit for bit the same).
Without them (AVX2 only) its uint8 x int8 kernels saturate 16-bit sums and the features are
wrong (cosine 0.63 to the float tower at block 6), so there the unsigned rewrite comes first.

Whatever the flags say, a layout is served only if its features on fixed crops agree with the
float tower's (the weight-dequantised ONNX graph, detector.trunk.FLOAT) to MIN_COSINE; otherwise
the next candidate is tried, and a CPU where none agrees refuses to load. The float features of
the fixed crops are cached by the trunk file's hash, so a worker start costs only the int8 run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from detector import trunk
from detector.card import ModelError

log = logging.getLogger(__name__)
# The instruction sets ONNX Runtime's int8 kernels are chosen by (MLAS dispatch).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
EXACT_U8S8 = frozenset({"amx_int8", "avx512_vnni", "avx_vnni"})  # 32-bit sums, no saturation
# Int8 against float on faces: 0.994 at block 6, 0.926 at block 12 (bench/results/trunk.txt);
# saturated kernels: 0.63 at block 6, 0.17-0.31 at block 12. Below this a layout is refused.
MIN_COSINE = 0.9
CHECK_CROPS, CHECK_VERSION = 4, 1  # change the version when fixed_crops() changes


def cpu_flags(text: str | None = None) -> frozenset[str]:
    """The flags of /proc/cpuinfo (or of `text` in its format); empty where there is none."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return frozenset()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "flags:")
    return frozenset(line.split(":", 1)[1].split())


def cpu_kind(flags: frozenset[str]) -> str:
    """The int8-relevant instruction sets, e.g. "avx2" or "avx2-avx512f-avx512_vnni"."""
    return "-".join(f for f in ISA_FLAGS if f in flags) or "other"


def layout_candidates(flags: frozenset[str]) -> tuple[str, ...]:
    """Layouts to try, fastest faithful first: as shipped where the u8 x s8 kernels are exact,
    else the unsigned rewrite (the other one last: the self-check decides)."""
    if flags & EXACT_U8S8:
        return (trunk.SHIPPED, trunk.UNSIGNED)
    return (trunk.UNSIGNED, trunk.SHIPPED)


def fixed_crops() -> np.ndarray:
    """CHECK_CROPS seeded crops with image-like statistics (smooth colour fields and grain): on
    them int8 and float agree as closely as on faces (cosine 0.994-0.997 at block 6)."""
    from PIL import Image

    rng = np.random.default_rng(20261205)
    out = []
    for _ in range(CHECK_CROPS):
        low = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        smooth = np.asarray(low.resize((224, 224), Image.Resampling.BICUBIC), np.int16)
        out.append(np.clip(smooth + rng.integers(-12, 13, smooth.shape), 0, 255))
    return np.stack(out).astype(np.uint8)


def reference(outputs: tuple[str, ...], threads: int = 1,
              source: Path | None = None) -> dict[str, np.ndarray]:
    """The float tower's features of fixed_crops(), cached by the trunk file's hash."""
    sha = trunk.file_sha256(trunk.checked_file(source))
    path = trunk.CACHE / f"clip-{sha[:12]}-ref{CHECK_VERSION}-{'-'.join(outputs)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as got:
                return {name: got[name] for name in outputs}
        except (OSError, ValueError, KeyError):
            log.warning("%s is unreadable: computing the float reference again", path)
    tower = trunk.Tower(outputs, threads, source, layout=trunk.FLOAT)
    feats = tower.features(fixed_crops())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, allow_pickle=False, **feats)
    tmp.replace(path)  # atomic: two worker processes may write it at once
    return feats


def agreement(tower, ref: dict[str, np.ndarray]) -> float:
    """The lowest cosine, over the fixed crops and the outputs, of a tower's features to ref."""
    got = tower.features(fixed_crops())
    cos = [np.sum(got[n] * ref[n], 1) / (np.linalg.norm(got[n], axis=1)
                                         * np.linalg.norm(ref[n], axis=1)) for n in ref]
    return float(np.min(cos))


def onnx_tower(outputs: tuple[str, ...], threads: int = 1, source: Path | None = None,
               flags: frozenset[str] | None = None,
               candidates: tuple[str, ...] | None = None) -> tuple[trunk.Tower, dict]:
    """The tower in the first layout for these CPU flags (default: this CPU's) that passes the
    self-check, and the check: {layout, cosine, bound, cpu, refused}."""
    flags = cpu_flags() if flags is None else flags
    candidates = candidates or layout_candidates(flags)
    ref = reference(tuple(outputs), threads, source)
    refused: list[dict] = []
    for layout in candidates:
        tower = trunk.Tower(tuple(outputs), threads, source, layout=layout)
        cosine = agreement(tower, ref)
        if cosine >= MIN_COSINE:
            check = {"layout": layout, "cosine": round(cosine, 6), "bound": MIN_COSINE,
                     "cpu": cpu_kind(flags), "refused": refused}
            log.info("trunk layout %s on this CPU (%s): self-check cosine %.4f >= %.2f",
                     layout, check["cpu"], cosine, MIN_COSINE)
            return tower, check
        log.warning("trunk layout %s refused on this CPU (%s): its features agree with the "
                    "float tower to cosine %.4f only (< %.2f)", layout, cpu_kind(flags), cosine,
                    MIN_COSINE)
        refused.append({"layout": layout, "cosine": round(cosine, 6)})
    raise ModelError(f"no weight layout of the CLIP tower agrees with the float tower on this "
                     f"CPU ({cpu_kind(flags)}): {refused}; ONNX Runtime's int8 kernels are "
                     "wrong here, serve the model elsewhere (or on a GPU worker, DFD_DEVICE=gpu)")
