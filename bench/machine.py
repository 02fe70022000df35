"""The machine: CPU model, cores, memory, and the float32 matmul ceiling (numpy and TensorFlow)."""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import numpy as np


def _cpuinfo() -> dict:
    info: dict = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for key in ("model name", "cpu family", "model", "flags"):
        m = re.search(rf"^{key}\s*:\s*(.*)$", text, re.M)
        if m:
            info[key] = m.group(1).strip()
    return info


def _cache(level: str) -> str | None:
    # sysfs index2 is L2, index3 is L3 on x86; best effort, None when absent.
    idx = {"L2": "index2", "L3": "index3"}[level]
    path = Path(f"/sys/devices/system/cpu/cpu0/cache/{idx}/size")
    return path.read_text().strip() if path.is_file() else None


def describe() -> dict:
    """Cores, CPU model and features, memory, Python and library versions."""
    import psutil

    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni") if f in flags]
    model = cpu.get("model name") or platform.processor() or "unknown"
    family = cpu.get("cpu family")
    if family:
        model += f" (family {family}, model {cpu.get('model', '?')})"
    if "hypervisor" in flags:
        model += ", virtual machine"
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "simd": simd,
        "l2_per_core": _cache("L2"),
        "l3": _cache("L3"),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
    }


def _best_rate(step, flops: float, seconds: float) -> float:
    """Best FLOP/s of step() over repeated calls for about `seconds`."""
    step()  # warm-up (thread pools, page faults)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        step()
        best = max(best, flops / (time.perf_counter() - t))
    return best


def matmul_numpy(n: int = 4096, seconds: float = 3.0) -> float:
    """Best float32 GFLOP/s of an n x n matmul with numpy (its BLAS, all cores)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    return _best_rate(lambda: np.matmul(a, b, out=out), 2.0 * n**3, seconds) / 1e9


def matmul_tf(n: int = 4096, seconds: float = 3.0) -> float:
    """Best float32 GFLOP/s of an n x n matmul with TensorFlow (oneDNN / Eigen, all cores)."""
    import tensorflow as tf

    a = tf.random.normal((n, n), dtype=tf.float32, seed=1)
    b = tf.random.normal((n, n), dtype=tf.float32, seed=2)
    mm = tf.function(lambda: tf.linalg.matmul(a, b))
    return _best_rate(lambda: mm().numpy(), 2.0 * n**3, seconds) / 1e9
