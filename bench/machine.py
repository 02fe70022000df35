"""The machine: CPU model and the flags that decide which kernels run, cores, memory, and the
measured matmul ceilings (int8 through ONNX Runtime, float32 through numpy)."""

from __future__ import annotations

import os
import platform
import re
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# What the report names, each true when the CPU has any of the /proc/cpuinfo flags listed:
# AMX (ONNX Runtime's uint8 x int8 AMX kernel, XNNPACK's), VNNI (int8 dot products), AVX2,
# bf16 (AVX-512 or AMX bf16). The raw flags are recorded too.
FEATURES = {"AMX": ("amx_int8", "amx_tile"), "VNNI": ("avx512_vnni", "avx_vnni"),
            "AVX2": ("avx2",), "bf16": ("avx512_bf16", "amx_bf16"), "AVX-512": ("avx512f",)}
SIMD = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile",
        "amx_int8", "amx_bf16")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def cpuinfo(text: str | None = None) -> dict:
    """model name, cpu family, model and flags of the first CPU in /proc/cpuinfo (or text)."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return {}
    info: dict = {}
    for key in ("model name", "cpu family", "model", "flags"):
        m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.M)
        if m:
            info[key] = m.group(1).strip()
    return info


def features(flags: set[str]) -> dict[str, bool]:
    """{"AMX": ..., "VNNI": ..., "AVX2": ..., "bf16": ..., "AVX-512": ...} from cpuinfo flags."""
    return {name: any(f in flags for f in wanted) for name, wanted in FEATURES.items()}


def _cache(level: str) -> str | None:
    # sysfs index2 is L2, index3 is L3 on x86; best effort, None when absent.
    idx = {"L2": "index2", "L3": "index3"}[level]
    path = Path(f"/sys/devices/system/cpu/cpu0/cache/{idx}/size")
    return path.read_text().strip() if path.is_file() else None


def describe(text: str | None = None) -> dict:
    """Cores, CPU model and flags, memory, Python and library versions."""
    import psutil

    cpu = cpuinfo(text)
    flags = set(cpu.get("flags", "").split())
    model = cpu.get("model name") or platform.processor() or "unknown"
    family = cpu.get("cpu family")
    if family:
        model += f" (family {family}, model {cpu.get('model', '?')})"
    if "hypervisor" in flags:
        model += ", virtual machine"
    return {
        "cpu_model": model,
        "features": features(flags),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "simd": [f for f in SIMD if f in flags],
        "l2_per_core": _cache("L2"),
        "l3": _cache("L3"),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "load_avg": [round(v, 2) for v in os.getloadavg()],
    }


def feature_text(info: dict) -> str:
    """'AMX no, VNNI yes, AVX2 yes, bf16 yes, AVX-512 yes' for the report."""
    return ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info.get("features", {}).items())


def _best_rate(step, flops: float, seconds: float) -> float:
    """Best FLOP/s of step() over repeated calls for about `seconds`."""
    step()  # warm-up (thread pools, page faults)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        step()
        best = max(best, flops / (time.perf_counter() - t))
    return best


def matmul_numpy(n: int = 2048, seconds: float = 3.0) -> float:
    """Best float32 GFLOP/s of an n x n matmul with numpy (its BLAS, its own thread count)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    return _best_rate(lambda: np.matmul(a, b, out=out), 2.0 * n**3, seconds) / 1e9


def int8_ceiling(n: int, threads: int, seconds: float) -> float:
    """Best GOP/s of ONNX Runtime's MatMulInteger (uint8 activations x int8 weights), n x n:
    the kernel the int8 tower's matmuls run on (AMX or VNNI where the CPU has them)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.integers(-127, 128, (n, n), dtype=np.int8), "w")
    node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
    graph = helper.make_graph([node], "mmi", [helper.make_tensor_value_info(
        "a", TensorProto.UINT8, [n, n])], [helper.make_tensor_value_info(
            "y", TensorProto.INT32, [n, n])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, (n, n), dtype=np.uint8)
    return _best_rate(lambda: sess.run(["y"], {"a": a}), 2.0 * n**3, seconds) / 1e9


@contextmanager
def blas_threads(threads: int):
    """BLAS thread count for processes started inside (read by numpy's BLAS at import)."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(threads) for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ceilings(ctx, cores: int, seconds: float) -> dict:
    """int8 and float32 matmul ceilings at one thread and at every core, GOP/s (GFLOP/s), each
    measured in a fresh process (numpy's BLAS fixes its threads when it is imported)."""
    out = {}
    for threads in sorted({1, cores}):
        with blas_threads(threads), ctx.Pool(1) as pool:
            out[f"float32_t{threads}"] = pool.apply(matmul_numpy, (2048, seconds))
            out[f"int8_t{threads}"] = pool.apply(int8_ceiling, (2048, threads, seconds))
    return out
