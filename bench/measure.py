"""What a load run measures besides latency: percentiles, peak memory and CPU per process tree."""

from __future__ import annotations

import threading
import time

import numpy as np
import psutil


def percentiles(values_s: list[float]) -> dict:
    """p50/p95/p99/mean/max in milliseconds."""
    if not values_s:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    ms = np.asarray(values_s) * 1e3
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)), "mean": float(ms.mean()), "max": float(ms.max())}


class RssSampler:
    """Peak RSS of each process in a few process trees, sampled every `period` seconds."""

    def __init__(self, roots: dict[str, int], period: float = 0.2):
        self.roots, self.period = roots, period
        self.peak: dict[str, dict[int, float]] = {name: {} for name in roots}
        self.cpu: dict[str, dict[int, float]] = {name: {} for name in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def sample(self) -> None:
        for name, pid in self.roots.items():
            try:
                root = psutil.Process(pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for p in procs:
                try:
                    rss = p.memory_info().rss / 2**20
                    t = p.cpu_times()
                except psutil.Error:
                    continue
                self.peak[name][p.pid] = max(self.peak[name].get(p.pid, 0.0), rss)
                self.cpu[name][p.pid] = t.user + t.system

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each tree (processes seen by the sampler), sampled now."""
        self.sample()
        return {name: sum(by_pid.values()) for name, by_pid in self.cpu.items()}

    def max_mb(self, name: str) -> float | None:
        """The largest peak RSS of any single process of that tree."""
        return max(self.peak[name].values(), default=None)

    def sum_mb(self, name: str) -> float | None:
        """The peaks of every process of that tree, added (an upper bound of the tree's RSS)."""
        return sum(self.peak[name].values()) if self.peak[name] else None


def cpu_per_image(rss: RssSampler, before: dict, own_before: float, done: int) -> dict:
    """CPU milliseconds per finished image of each process tree, and of the load client."""
    after = rss.cpu_s()
    out = {name: (after[name] - before.get(name, 0.0)) / max(done, 1) * 1e3 for name in after}
    out["client"] = (time.process_time() - own_before) / max(done, 1) * 1e3
    return out
