"""Optimizer step time against parameter count, next to torch.optim and the memory-bandwidth floor."""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from content.m07_optimizers.solution import optimizers as ours
from tinytorch.core.tensor import Tensor

SIZES = (10**3, 10**4, 10**5, 10**6, 10**7)
# Bytes each optimizer must move per float32 parameter: every array read once, every state written once.
BYTES_PER_PARAM = {"SGD+momentum": 4 * (3 + 2), "Adam": 4 * (4 + 3), "AdamW": 4 * (4 + 3)}
OURS = {
    "SGD+momentum": lambda p: ours.SGD(p, lr=0.01, momentum=0.9),
    "Adam": lambda p: ours.Adam(p, lr=0.001),
    "AdamW": lambda p: ours.AdamW(p, lr=0.001),
}


def copy_bandwidth(threads: int, n: int = 64 * 1024**2 // 4, repeats: int = 7) -> float:
    """Bytes per second that ``threads`` threads move with np.copyto (read + write)."""
    src, dst = np.ones(n, np.float32), np.zeros(n, np.float32)
    parts = np.array_split(np.arange(n), threads)
    spans = [(p[0], p[-1] + 1) for p in parts]

    def copy(span):
        np.copyto(dst[span[0] : span[1]], src[span[0] : span[1]])

    times = []
    for _ in range(repeats):
        workers = [threading.Thread(target=copy, args=(s,)) for s in spans]
        start = time.perf_counter()
        [w.start() for w in workers]
        [w.join() for w in workers]
        times.append(time.perf_counter() - start)
    return 2 * src.nbytes / float(np.median(times))


def torch_makers():
    try:
        import torch
    except ImportError:
        return None, {}
    torch.set_num_threads(os.cpu_count() or 1)
    makers = {}
    for name, cls, kw in (
        ("SGD+momentum", torch.optim.SGD, {"lr": 0.01, "momentum": 0.9}),
        ("Adam", torch.optim.Adam, {"lr": 0.001}),
        ("AdamW", torch.optim.AdamW, {"lr": 0.001}),
    ):
        for variant, extra in (
            ("foreach", {"foreach": True}),
            ("single-tensor", {"foreach": False}),
            ("fused", {"fused": True}),
        ):
            makers[(name, variant)] = (cls, {**kw, **extra})
    return torch, makers


def _ours_step(name, n):
    p = Tensor(np.full(n, 0.5, np.float32), requires_grad=True)
    p.grad = np.full(n, 0.01, np.float32)
    opt = OURS[name]([p])
    opt.step()
    return opt.step


def _torch_step(torch, cls, kw, n):
    p = torch.full((n,), 0.5, requires_grad=True)
    p.grad = torch.full((n,), 0.01)
    opt = cls([p], **kw)
    opt.step()
    return opt.step


def paired_medians(steps: dict, repeats: int) -> dict:
    """Median seconds per step of each callable, measured in alternation so load hits all alike."""
    times = {k: [] for k in steps}
    for _ in range(repeats):
        for key, step in steps.items():
            start = time.perf_counter()
            step()
            times[key].append(time.perf_counter() - start)
    return {k: float(np.median(v)) for k, v in times.items()}


def step_times(sizes=SIZES) -> dict:
    """{(optimizer, implementation, n): seconds}."""
    torch, makers = torch_makers()
    results = {}
    for n in sizes:
        repeats = 9 if n >= 10**6 else 31
        for name in OURS:
            steps = {("ours", name): _ours_step(name, n)}
            for (tname, variant), (cls, kw) in makers.items():
                if tname == name:
                    try:
                        steps[(f"torch {variant}", name)] = _torch_step(torch, cls, kw, n)
                    except (RuntimeError, TypeError, ValueError):
                        pass  # that variant does not exist for this optimizer on CPU
            for (impl, _), seconds in paired_medians(steps, repeats).items():
                results[(name, impl, n)] = seconds
    return results


def peak_multiples(n: int = 10**6) -> dict:
    """Transient peak of one step (tracemalloc) as a multiple of the parameter bytes."""
    out = {}
    for name in OURS:
        step = _ours_step(name, n)
        out[f"{name} (exported)"] = ours.step_peak_bytes(step) / (4 * n)
    p, g = np.full(n, 0.5, np.float32), np.full(n, 0.01, np.float32)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    out["Adam (naive reference)"] = ours.step_peak_bytes(lambda: ours.naive_adam_step(p, g, m, v, t=1)) / (4 * n)
    return out
