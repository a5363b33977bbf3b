"""Throughput: architectures scored per minute on one device, and where the time goes.

Scores the same seeded random architectures with the engine (VKDNW alone, and VKDNW with the
other proxies of the aggregated ranking) and with the ``torch.func`` reference, on the same
device in the same run, checks that engine and reference agree, and reports architectures per
minute, their ratio, the peak memory and the time per stage (model build, proxy context, engine
stages: prepare, forward, factor, backward, spectrum; other proxies).
"""
from __future__ import annotations

import concurrent.futures
import resource
import time
from typing import Callable, Sequence

import numpy as np
import torch

from . import reference, spaces
from .evaluation import AGGREGATE_PROXIES
from .scoring import score_architecture
from .timing import record_stages

# The benchmark's fixed workload is the authors' preset, so figures compare across versions and with their code.
BENCHMARK_PRESET = "paper"


def sample_archs(space, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(count)]


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"gpu_peak_bytes": torch.cuda.max_memory_allocated(device)}
    return {"process_peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def measure(label: str, archs: Sequence[str], score_one: Callable[[str, object], float], build: Callable,
            device: torch.device, prefetch: bool) -> dict:
    """Score ``archs`` one after the other; with ``prefetch`` the next model is built on a CPU
    thread while the current one is scored."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    values = []
    with record_stages(device) as times, concurrent.futures.ThreadPoolExecutor(1) as builder:
        def timed_build(arch):
            begun = time.perf_counter()
            model = build(arch)
            # A prefetched build runs on the builder thread, off the critical path.
            times.seconds["build_overlapped" if prefetch else "build"] += time.perf_counter() - begun
            return model

        started = time.perf_counter()
        pending = builder.submit(timed_build, archs[0]) if prefetch else None
        for i, arch in enumerate(archs):
            model = pending.result() if prefetch else timed_build(arch)
            if prefetch and i + 1 < len(archs):
                pending = builder.submit(timed_build, archs[i + 1])
            values.append(score_one(arch, model))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - started
    return {"label": label, "count": len(archs), "seconds": seconds,
            "archs_per_minute": 60.0 * len(archs) / seconds,
            "stage_seconds_per_arch": {k: v / len(archs) for k, v in sorted(times.seconds.items())},
            "values": values, **_peak_memory(device)}


def run(space_name: str = "nb201", dataset: str = "cifar10", count: int = 20, reference_count: int = 3,
        device: str | None = None, seed: int = 0, preset: str = BENCHMARK_PRESET, prefetch: bool = True,
        batch_size: int = 64, resolution: int = 32, num_classes: int = 10) -> dict:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    space = (spaces.get("nb201", dataset=dataset) if space_name == "nb201" else
             spaces.get(space_name, resolution=resolution, num_classes=num_classes))
    archs = sample_archs(space, count, seed)
    build = space.build_model

    def engine(proxies):
        return lambda arch, model: score_architecture(space, arch, proxies, presets=(preset,), seed=seed,
                                                      device=device, batch_size=batch_size, model=model)["vkdnw"]

    def baseline(arch, model):
        return reference.score(model, input_shape=space.input_shape, batch_size=batch_size, config=preset,
                               seed=seed, device=device).vkdnw

    runs = [measure("engine: vkdnw", archs, engine(["vkdnw"]), build, device, prefetch),
            measure("engine: vkdnw + aggregation proxies", archs,
                    engine(list(AGGREGATE_PROXIES) + ["vkdnw"]), build, device, prefetch),
            measure("reference torch.func: vkdnw", archs[:reference_count], baseline, build, device, prefetch)]
    engine_values, reference_values = runs[0]["values"][:reference_count], runs[2]["values"]
    return {
        "space": space_name, "dataset": dataset, "preset": preset, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(), "seed": seed, "prefetch": prefetch, "batch_size": batch_size,
        "runs": runs,
        "engine_over_reference": runs[0]["archs_per_minute"] / runs[2]["archs_per_minute"],
        "max_abs_difference_engine_reference": float(np.max(np.abs(np.subtract(engine_values, reference_values)))),
    }


def format_report(result: dict) -> str:
    lines = [f"{result['space']} {result['dataset']}, preset {result['preset']}, device {result['device_name']}"
             f" ({result['torch_threads']} threads), prefetch {result['prefetch']}"]
    for run_ in result["runs"]:
        memory = run_.get("gpu_peak_bytes", run_.get("process_peak_rss_bytes"))
        lines.append(f"  {run_['label']:<40} {run_['archs_per_minute']:9.1f} archs/min  "
                     f"({run_['count']} archs, {run_['seconds']:.1f} s, peak memory {memory / 2**20:.0f} MiB)")
        stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in run_["stage_seconds_per_arch"].items())
        lines.append(f"      per arch: {stages}")
    lines.append(f"  engine / reference throughput: {result['engine_over_reference']:.1f}x; largest |VKDNW "
                 f"difference| on the shared architectures: {result['max_abs_difference_engine_reference']:.2e}")
    return "\n".join(lines)
