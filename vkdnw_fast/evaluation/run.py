"""``run_evaluation``: score every (architecture, seed) a run still lacks on a scoring backend,
then rank."""
from __future__ import annotations

import json
from pathlib import Path

from ..backends import Job, make_backend
from ..benchmarks import Benchmark
from .rankings import compute_metrics
from .spec import EvaluationSpec
from .store import open_results


def run_evaluation(spec: EvaluationSpec, out_dir: str | Path, *, benchmark: Benchmark | None = None, workers: int = 1,
                   device: str | None = None, progress: bool = True, backend: str = "local",
                   address: str | None = None) -> dict:
    """Score every (architecture, seed) not yet in ``out_dir`` on a ``backend`` (``local``: in
    process or ``workers`` processes; ``ray``: a Ray cluster), then compute the metrics against
    ``benchmark`` (default: the bundled ground truth) and save them in ``metrics.json``.
    Each score uses one thread, so that it is the same bits whatever computed it."""
    from tqdm import tqdm

    benchmark = spec.ground_truth(benchmark)  # a spec the benchmark cannot answer fails before scoring
    store = open_results(out_dir, spec)
    archs = spec.archs()
    todo = [(arch, seed) for seed in spec.seeds for arch in archs if (arch, seed) not in store.records]
    bar = tqdm(total=len(archs) * len(spec.seeds), initial=len(archs) * len(spec.seeds) - len(todo),
               disable=not progress, desc=f"{spec.space} {spec.dataset}", unit="net", smoothing=0.05)

    def job(seed: int) -> Job:
        return Job(spec.space_spec(), spec.proxies, spec.presets, seed, device)

    try:
        if todo:
            runner = make_backend(backend, job(spec.seeds[0]), workers, address)
            try:
                for seed in spec.seeds:  # seed-major, so an interrupted run holds whole seeds first
                    runner.set_job(job(seed))
                    for arch in (arch for arch, task_seed in todo if task_seed == seed):
                        runner.submit((arch, seed), arch)
                remaining = len(todo)
                while remaining:
                    for (arch, seed), outcome in runner.wait():
                        record = {"arch": arch, "seed": seed, "seconds": outcome["elapsed"]}
                        record.update({"values": outcome["values"]} if outcome["ok"] else {"error": outcome["reason"]})
                        store.append(record)
                        bar.update()
                        remaining -= 1
            finally:
                runner.close()
    finally:
        bar.close()
    results = compute_metrics(spec, store.records.values(), benchmark)
    (Path(out_dir) / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
