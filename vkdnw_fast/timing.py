"""Where the time goes: named stages timed only while a ``record_stages`` block is active.

Outside such a block ``stage`` costs one context-variable lookup. On CUDA each stage boundary
synchronises the device, so the times are the device's, not the launch queue's.
"""
from __future__ import annotations

import contextlib
import contextvars
import time
from collections import defaultdict

import torch

_ACTIVE: contextvars.ContextVar["StageTimes | None"] = contextvars.ContextVar("vkdnw_stage_times", default=None)


class StageTimes:
    def __init__(self, synchronize: bool):
        self.seconds: dict[str, float] = defaultdict(float)
        self.synchronize = synchronize

    def _now(self) -> float:
        if self.synchronize:
            torch.cuda.synchronize()
        return time.perf_counter()


@contextlib.contextmanager
def stage(name: str):
    """Attribute the enclosed work to ``name`` (nested stages count in both)."""
    times = _ACTIVE.get()
    if times is None:
        yield
        return
    started = times._now()
    try:
        yield
    finally:
        times.seconds[name] += times._now() - started


@contextlib.contextmanager
def record_stages(device: torch.device | str = "cpu"):
    """Collect stage times of everything run inside the block (this thread/context only)."""
    times = StageTimes(synchronize=torch.device(device).type == "cuda")
    token = _ACTIVE.set(times)
    try:
        yield times
    finally:
        _ACTIVE.reset(token)
