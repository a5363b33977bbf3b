"""Throughput: architectures scored per minute on one device, and where the time goes.

Scores the same seeded random architectures with the ``torch.func`` reference and with the engine
(VKDNW alone, and unless left out VKDNW with the other proxies of the aggregated ranking), on the
same device in the same run, checks that engine and reference agree, and reports architectures per
minute, their ratio, the peak memory and the time per stage (model build, proxy context, engine
stages: prepare, forward, factor, backward, spectrum; other proxies).

With ``workers`` > 1 the engine's VKDNW is also timed as an evaluation scores with ``--workers``: that
many processes, each building, preparing and scoring its networks on the device (from the pool's start,
its processes' start included, to its last result), against the same networks scored in this process.

Each run first scores a few of its architectures with every stage timed (on CUDA each stage boundary
synchronises the device, which would stall the launch queue if the whole run were timed so), which
also warms the device and the allocators up; then it times all of them as a search would score them.
A stop (Ctrl-C, or SIGTERM from a time limit) ends the run in progress at its last finished
architecture and skips the rest: the report covers what was measured and says so.
"""
from __future__ import annotations

import concurrent.futures
import time
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from . import reference, spaces
from .backends import Job, score_all
from .evaluation import AGGREGATE_PROXIES
from .memory import peak_rss
from .scoring import score_architecture
from .timing import record_stages

# The benchmark's fixed workload is the authors' preset, so figures compare across versions and with their code.
BENCHMARK_PRESET = "paper"
REFERENCE_LABEL = "reference torch.func: vkdnw"
ENGINE_LABEL = "engine: vkdnw"


def sample_archs(space, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(count)]


def _peak_memory(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"gpu_peak_bytes": torch.cuda.max_memory_allocated(device)}
    return {"process_peak_rss_bytes": peak_rss()}


def _score_all(label: str, archs: Sequence[str], score_one: Callable[[str, object], float], build: Callable,
               prefetch: bool, on_build: Callable[[float], None]) -> tuple[list[float], float, bool]:
    """(values, seconds, interrupted): ``archs`` scored one after the other, timed to the last finished
    one; with ``prefetch`` the next model is built on a CPU thread while the current one is scored."""
    values: list[float] = []
    with concurrent.futures.ThreadPoolExecutor(1) as builder:
        def timed_build(arch):
            begun = time.perf_counter()
            model = build(arch)
            on_build(time.perf_counter() - begun)
            return model

        started = finished = time.perf_counter()
        pending = builder.submit(timed_build, archs[0]) if prefetch else None
        try:
            # The bar goes to stderr: a long run on a remote machine shows how far it got if it is stopped.
            for i, arch in enumerate(tqdm(archs, desc=label, unit="arch", mininterval=2.0)):
                model = pending.result() if prefetch else timed_build(arch)
                if prefetch and i + 1 < len(archs):
                    pending = builder.submit(timed_build, archs[i + 1])
                values.append(score_one(arch, model))  # a float: the device has finished this one
                finished = time.perf_counter()
        except KeyboardInterrupt:
            return values, finished - started, True
    return values, finished - started, False


def measure(label: str, archs: Sequence[str], score_one: Callable[[str, object], float], build: Callable,
            device: torch.device, prefetch: bool, breakdown_count: int = 5) -> dict:
    """Time per stage over the first ``breakdown_count`` architectures, then architectures per minute
    over all of them without the stage timer's synchronisation."""
    with record_stages(device) as times:
        shown = archs[:breakdown_count]

        def on_build(seconds):  # a prefetched build runs on the builder thread, off the critical path
            times.seconds["build_overlapped" if prefetch else "build"] += seconds
        _, _, interrupted = _score_all(f"{label} (stage times)", shown, score_one, build, prefetch, on_build)
    stage_seconds = {k: v / len(shown) for k, v in sorted(times.seconds.items())}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    values, seconds, interrupted = ([], 0.0, True) if interrupted else \
        _score_all(label, archs, score_one, build, prefetch, lambda seconds: None)
    return {"label": label, "count": len(values), "of": len(archs), "interrupted": interrupted,
            "seconds": seconds, "archs_per_minute": 60.0 * len(values) / seconds if values else 0.0,
            "stage_seconds_per_arch": stage_seconds, "stage_archs": len(shown),
            "values": values, **_peak_memory(device)}


def measure_pooled(label: str, space_spec: dict, archs: Sequence[str], preset: str, seed: int,
                   device: torch.device, batch_size: int, workers: int) -> dict:
    """VKDNW of ``archs`` scored by ``workers`` processes as an evaluation scores them, timed from the
    pool's start to its last result; ``values`` in the order of ``archs`` (those finished, after a stop)."""
    job = Job(space_spec, ("vkdnw",), (preset,), seed, str(device), batch_size=batch_size)
    records: dict[str, dict] = {}
    started = time.perf_counter()
    try:
        score_all([(arch, seed) for arch in archs], lambda _: job, lambda arch, _, record: records.update({arch: record}),
                  workers=workers, desc=label)
        interrupted = False
    except KeyboardInterrupt:
        interrupted = True
    seconds = time.perf_counter() - started
    failed = {arch: record["error"] for arch, record in records.items() if "error" in record}
    if failed:
        arch, error = next(iter(failed.items()))
        raise RuntimeError(f"{len(failed)} architectures failed in the worker pool, e.g. {arch}: {error}")
    values = [records[arch]["values"]["vkdnw"] for arch in archs if arch in records]
    return {"label": label, "count": len(values), "of": len(archs), "interrupted": interrupted, "seconds": seconds,
            "archs_per_minute": 60.0 * len(values) / seconds if values else 0.0, "workers": workers,
            "values": values, "archs": [arch for arch in archs if arch in records]}


def run(space_name: str = "nb201", dataset: str = "cifar10", count: int = 20, reference_count: int = 3,
        device: str | None = None, seed: int = 0, preset: str = BENCHMARK_PRESET, prefetch: bool = True,
        batch_size: int = 64, resolution: int = 32, num_classes: int = 10, with_aggregation: bool = True,
        workers: int = 1) -> dict:
    if not 1 <= reference_count <= count:
        raise ValueError(f"the reference scores some of the {count} architectures: reference_count must lie in "
                         f"1..{count}, got {reference_count}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    space_spec = ({"name": "nb201", "dataset": dataset} if space_name == "nb201" else
                  {"name": space_name, "resolution": resolution, "num_classes": num_classes})
    space = spaces.from_spec(space_spec)
    archs = sample_archs(space, count, seed)
    build = space.build_model

    def engine(proxies):  # each model is built for its one scoring, as the evaluation's workers build theirs
        return lambda arch, model: score_architecture(space, arch, proxies, presets=(preset,), seed=seed,
                                                      device=device, batch_size=batch_size, model=model,
                                                      consume_model=True)["vkdnw"]

    def baseline(arch, model):
        return reference.score(model, input_shape=space.input_shape, batch_size=batch_size, config=preset,
                               seed=seed, device=device).vkdnw

    # The reference first: its few architectures give the ratio even if a stop cuts the engine's runs short.
    plan = [(REFERENCE_LABEL, archs[:reference_count], baseline), (ENGINE_LABEL, archs, engine(["vkdnw"]))]
    if with_aggregation:
        plan.append(("engine: vkdnw + aggregation proxies", archs, engine(list(AGGREGATE_PROXIES) + ["vkdnw"])))
    runs = []
    for label, chosen, score_one in plan:
        runs.append(measure(label, chosen, score_one, build, device, prefetch))
        if runs[-1]["interrupted"]:
            break
    by_label = {run_["label"]: run_ for run_ in runs}
    engine_run, reference_run = by_label.get(ENGINE_LABEL), by_label[REFERENCE_LABEL]
    pooled = None
    if workers > 1 and engine_run and not any(run_["interrupted"] for run_ in runs):
        pooled = measure_pooled(f"{ENGINE_LABEL}, {workers} workers", space_spec, archs, preset, seed, device,
                                batch_size, workers)
        runs.append(pooled)
    shared = min(len(engine_run["values"]), len(reference_run["values"])) if engine_run else 0
    in_process = dict(zip(archs, engine_run["values"])) if engine_run else {}
    return {
        "space": space_name, "dataset": dataset, "preset": preset, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(), "seed": seed, "prefetch": prefetch, "batch_size": batch_size,
        "interrupted": any(run_["interrupted"] for run_ in runs), "runs": runs,
        "engine_over_reference": (engine_run["archs_per_minute"] / reference_run["archs_per_minute"]
                                  if shared else None),
        "max_abs_difference_engine_reference": (float(np.max(np.abs(np.subtract(
            engine_run["values"][:shared], reference_run["values"][:shared])))) if shared else None),
        **({"pooled_over_in_process": pooled["archs_per_minute"] / engine_run["archs_per_minute"],
            "max_abs_difference_pooled_in_process": float(max(
                (abs(v - in_process[a]) for a, v in zip(pooled["archs"], pooled["values"])), default=0.0))}
           if pooled and pooled["values"] else {}),
    }


def format_report(result: dict) -> str:
    lines = [f"{result['space']} {result['dataset']}, preset {result['preset']}, device {result['device_name']}"
             f" ({result['torch_threads']} threads), prefetch {result['prefetch']}"]
    for run_ in result["runs"]:
        stopped = f", stopped after {run_['count']} of {run_['of']}" if run_["interrupted"] else ""
        if "workers" in run_:
            lines.append(f"  {run_['label']:<40} {run_['archs_per_minute']:9.1f} archs/min  "
                         f"({run_['count']} archs, {run_['seconds']:.1f} s from the pool's start{stopped})")
            continue
        memory = run_.get("gpu_peak_bytes", run_.get("process_peak_rss_bytes"))
        lines.append(f"  {run_['label']:<40} {run_['archs_per_minute']:9.1f} archs/min  "
                     f"({run_['count']} archs, {run_['seconds']:.1f} s, peak memory {memory / 2**20:.0f} MiB{stopped})")
        stages = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in run_["stage_seconds_per_arch"].items())
        lines.append(f"      per arch (stage times of the first {run_['stage_archs']}): {stages}")
    if result["engine_over_reference"] is None:
        lines.append("  stopped before the engine scored an architecture: no ratio to the reference")
    else:
        lines.append(f"  engine / reference throughput: {result['engine_over_reference']:.1f}x; largest |VKDNW "
                     f"difference| on the shared architectures: {result['max_abs_difference_engine_reference']:.2e}")
    if "pooled_over_in_process" in result:
        lines.append(f"  worker pool / in process: {result['pooled_over_in_process']:.2f}x; largest |VKDNW difference|: "
                     f"{result['max_abs_difference_pooled_in_process']:.2e}")
    return "\n".join(lines)
