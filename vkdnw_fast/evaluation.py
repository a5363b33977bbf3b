"""NAS-Bench-201 evaluation (SPEC §5): score architectures with proxies over several seeds,
rank them against a benchmark's ground truth (Kendall, Spearman, nDCG), aggregate, and report.

A run lives in a directory: ``run.json`` (what is computed) and ``results.jsonl`` (one line per
finished (architecture, seed), appended and flushed as it finishes). Re-running the same command
resumes where it stopped and computes nothing twice; ``report`` recomputes the metrics from the
saved results alone. A published run keeps its results compressed as ``results.jsonl.gz``;
``report`` reads either.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from scipy.stats import rankdata

from . import metrics
from . import benchmarks
from .backends import Job, make_backend
from .benchmarks import Benchmark
from .config import DEFAULT_PRESET
from .scoring import check_proxies, column, columns, score_architecture
from .spaces import nb201

# SPEC §6 eq. 15: the non-linear aggregation of VKDNW_single, Jacov, expressivity, trainability, FLOPs.
AGGREGATE_PROXIES = ("vkdnw_single", "jacov", "expressivity", "trainability", "flops")
RF_TRAIN_SIZE = 1024
RESULTS, PUBLISHED_RESULTS = "results.jsonl", "results.jsonl.gz"


@dataclass(frozen=True)
class EvaluationSpec:
    """What a run computes; stored in ``run.json`` and checked on resume."""

    dataset: str = "cifar10"
    proxies: tuple[str, ...] = AGGREGATE_PROXIES
    presets: tuple[str, ...] = (DEFAULT_PRESET,)
    subset: str = "unique"
    limit: int | None = None
    sample_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    ndcg_k: int = 1000

    def __post_init__(self):
        object.__setattr__(self, "dataset", nb201.canonical_dataset(self.dataset))
        object.__setattr__(self, "proxies", tuple(check_proxies(self.proxies)))
        object.__setattr__(self, "presets", tuple(self.presets))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.presets or any(p not in ("paper", "exact") for p in self.presets):
            raise ValueError(f"presets must be a non-empty subset of ('paper', 'exact'), got {self.presets}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"--limit must be at least 2 architectures, got {self.limit}")

    def archs(self) -> list[str]:
        """The evaluated architectures in NATS index order: the subset, or a seeded sample of it."""
        pool = nb201.archs(self.subset)
        if self.limit is None or self.limit >= len(pool):
            return pool
        chosen = np.random.default_rng(self.sample_seed).choice(len(pool), self.limit, replace=False)
        return [pool[i] for i in sorted(chosen)]

    def columns(self) -> list[str]:
        return columns(self.proxies, self.presets)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "EvaluationSpec":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class ResultStore:
    """``results.jsonl``: one JSON object per finished (arch, seed). Each line is flushed and
    fsynced when written; a line cut short by a crash is dropped on the next open."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[tuple[str, int], dict] = {}
        if path.exists():
            lines = path.read_bytes().split(b"\n")
            good = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the torn last write of an interrupted run
                good.append(line)
                self.records[(record["arch"], record["seed"])] = record
            if len(good) != sum(1 for line in lines if line.strip()):
                path.write_bytes(b"".join(line + b"\n" for line in good))

    def append(self, record: dict) -> None:
        self.records[(record["arch"], record["seed"])] = record
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def open_run(out_dir: str | Path, spec: EvaluationSpec) -> ResultStore:
    """Create ``out_dir`` for ``spec``, or check that it holds a run of the same spec. Only the seeds
    may differ: a run is extended with more seeds (or reported on fewer) without scoring anything
    twice, and ``run.json`` then names the seeds of the latest call."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "run.json"
    current = spec.to_json()
    if manifest.exists():
        saved = json.loads(manifest.read_text())
        differing = [k for k in current if k != "seeds" and json.dumps(saved.get(k)) != json.dumps(current[k])]
        if differing:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r}, now {current[k]!r}" for k in differing)
            raise ValueError(f"{out} holds a different evaluation ({detail}); use another --out directory")
    manifest.write_text(json.dumps(current, indent=2) + "\n")
    return ResultStore(out / RESULTS)


def load_records(out_dir: str | Path) -> list[dict]:
    """The finished records of a run directory: its ``results.jsonl``, or else the compressed
    ``results.jsonl.gz`` of a published run."""
    out = Path(out_dir)
    if (out / RESULTS).exists():
        return list(ResultStore(out / RESULTS).records.values())
    if (out / PUBLISHED_RESULTS).exists():
        with gzip.open(out / PUBLISHED_RESULTS, "rt") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    raise FileNotFoundError(f"{out} holds no results ({RESULTS} or {PUBLISHED_RESULTS})")


def _saved_spec(out: Path) -> EvaluationSpec:
    if not (out / "run.json").exists():
        raise FileNotFoundError(f"{out} holds no evaluation (no run.json)")
    return EvaluationSpec.from_json(json.loads((out / "run.json").read_text()))


def finished_seeds(out_dir: str | Path) -> tuple[int, ...]:
    """The seeds of a run that every sampled architecture has finished (a failure counts as finished:
    it is reported, not rerun): the seeds a report of a run still in progress can cover."""
    out = Path(out_dir)
    spec = _saved_spec(out)
    done = {(r["arch"], r["seed"]) for r in load_records(out)}
    archs = spec.archs()
    return tuple(s for s in spec.seeds if all((a, s) in done for a in archs))


def _ground_truth(benchmark: Benchmark | None) -> Benchmark:
    return benchmarks.get("nb201") if benchmark is None else benchmark


def run_evaluation(spec: EvaluationSpec, out_dir: str | Path, *, benchmark: Benchmark | None = None, workers: int = 1,
                   device: str | None = None, progress: bool = True, backend: str = "local",
                   address: str | None = None) -> dict:
    """Score every (architecture, seed) not yet in ``out_dir`` on a ``backend`` (``local``: in
    process or ``workers`` processes; ``ray``: a Ray cluster), then compute the metrics against
    ``benchmark`` (default: the bundled ground truth) and save them in ``metrics.json``.
    Each score uses one thread, so that it is the same bits whatever computed it."""
    from tqdm import tqdm

    store = open_run(out_dir, spec)
    archs = spec.archs()
    todo = [(arch, seed) for seed in spec.seeds for arch in archs if (arch, seed) not in store.records]
    bar = tqdm(total=len(archs) * len(spec.seeds), initial=len(archs) * len(spec.seeds) - len(todo),
               disable=not progress, desc=f"nb201 {spec.dataset}", unit="net", smoothing=0.05)

    def job(seed: int) -> Job:
        return Job({"name": "nb201", "dataset": spec.dataset, "subset": spec.subset}, spec.proxies,
                   spec.presets, seed, device)

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


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank transform (ties averaged): the metrics only see order, and -inf proxies stay usable."""
    if np.isnan(values).any():
        raise ValueError(f"{int(np.isnan(values).sum())} NaN proxy values")
    return rankdata(values, method="average")


def _summary(per_seed: list[dict]) -> dict:
    """Mean and std over seeds; a metric undefined for a seed (a constant ranking) is left out,
    and None when it is undefined for every seed."""
    summary = {}
    for name in ("kendall", "spearman", "ndcg"):
        defined = [m[name] for m in per_seed if not math.isnan(m[name])]
        summary[name] = {"mean": float(np.mean(defined)) if defined else None,
                         "std": float(np.std(defined)) if defined else None}
        if len(defined) < len(per_seed):
            summary[name]["undefined_seeds"] = len(per_seed) - len(defined)
    return summary


def _rank_metrics(scores: np.ndarray, accuracy: np.ndarray, k: int, seed: int) -> dict:
    """One seed's metrics; NaN where a metric is undefined (a constant ranking)."""
    return metrics.evaluate_ranking(_ranks(scores), accuracy, k, seeds=(seed,), undefined_as_nan=True)


def compute_metrics(spec: EvaluationSpec, records: Iterable[dict], benchmark: Benchmark | None = None) -> dict:
    """KT / SPR / nDCG@k per column, for the aggregated and the model-driven rankings; each the
    mean (and std) over seeds, on the architectures scored without error for every seed, against
    ``benchmark``'s test accuracy (default: the bundled ground truth)."""
    records = list(records)
    failed = sorted({r["arch"] for r in records if "error" in r})
    by_key = {(r["arch"], r["seed"]): r["values"] for r in records if "error" not in r}
    archs = [a for a in spec.archs() if a not in failed and all((a, s) in by_key for s in spec.seeds)]
    seeds = list(spec.seeds)
    if len(archs) < 2:
        return {"spec": spec.to_json(), "architectures": len(archs), "failed": failed, "rankings": {}}
    accuracy = _ground_truth(benchmark).values(archs, spec.dataset)
    table = {c: np.array([[by_key[(a, s)][c] for a in archs] for s in seeds]) for c in spec.columns()}

    rankings: dict[str, dict] = {}
    for name, scores in table.items():
        rankings[name] = _summary([_rank_metrics(scores[i], accuracy, spec.ndcg_k, s) for i, s in enumerate(seeds)])
    for preset in spec.presets:
        agg_columns = [column(p, preset, spec.presets) for p in AGGREGATE_PROXIES]
        suffix = f"@{preset}" if len(spec.presets) > 1 else ""
        if all(c in table for c in agg_columns):
            rankings[f"aggregate{suffix}"] = _summary([
                _rank_metrics(metrics.aggregate({c: table[c][i] for c in agg_columns}, agg_columns), accuracy,
                              spec.ndcg_k, s) for i, s in enumerate(seeds)])
        features = [c for c in table if not c.partition("@")[2] or c.endswith(f"@{preset}")]
        train_size = min(RF_TRAIN_SIZE, len(archs) // 2)
        per_seed = []
        for i, s in enumerate(seeds):
            x = np.column_stack([_ranks(table[c][i]) for c in features])
            test, predicted = metrics.model_driven_ranking(x, accuracy, train_size=train_size, seed=s)
            per_seed.append(_rank_metrics(predicted, accuracy[test], spec.ndcg_k, s))
        rankings[f"random_forest{suffix}"] = {**_summary(per_seed), "train_size": train_size,
                                              "features": features}
    best = _best_architecture(spec, archs, accuracy, table)
    return {"spec": spec.to_json(), "architectures": len(archs), "failed": failed, "rankings": rankings,
            "best": best}


def _best_architecture(spec, archs, accuracy, table) -> dict:
    """The architecture the first ranking picks (aggregate if available), by mean rank over seeds."""
    agg_columns = [column(p, spec.presets[0], spec.presets) for p in AGGREGATE_PROXIES]
    if all(c in table for c in agg_columns):
        by, scores = "aggregate", [metrics.aggregate({c: table[c][i] for c in agg_columns}, agg_columns)
                                   for i in range(len(spec.seeds))]
    else:
        by = spec.columns()[0]
        scores = list(table[by])
    mean_rank = np.mean([_ranks(s) for s in scores], axis=0)
    pick = int(np.argmax(mean_rank))
    return {"by": by, "arch": archs[pick], "accuracy": float(accuracy[pick]),
            "accuracy_rank": int((accuracy > accuracy[pick]).sum()) + 1,
            "sample_best_accuracy": float(accuracy.max()), "dataset": spec.dataset}


def format_table(results: dict) -> str:
    spec = results["spec"]
    k = min(spec["ndcg_k"], results["architectures"])
    sample = "" if spec["limit"] is None else f" (seeded sample, sample seed {spec['sample_seed']})"
    lines = [f"NAS-Bench-201 {spec['dataset']}, {spec['subset']} set: {results['architectures']} architectures"
             f"{sample}, seeds {spec['seeds']}, presets {spec['presets']}",
             f"{'ranking':<28} {'Kendall':>15} {'Spearman':>15} {'nDCG@' + str(k):>15}"]
    spread = " ± {:.3f}" if len(spec["seeds"]) > 1 else ""  # a spread over one seed would read as certainty
    for name, row in results["rankings"].items():
        if name.startswith("fim_q"):
            continue  # spectrum quantile levels: random-forest features, kept in metrics.json
        cells = ["n/a" if row[m]["mean"] is None else f"{row[m]['mean']:.3f}" + spread.format(row[m]["std"])
                 for m in ("kendall", "spearman", "ndcg")]
        lines.append(f"{name:<28} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}")
    if results["failed"]:
        lines.append(f"failed architectures (excluded): {len(results['failed'])}, see results.jsonl")
    best = results.get("best")
    if best:
        lines.append(f"best by {best['by']}: {best['arch']}  true test accuracy {best['accuracy']:.2f}% "
                     f"(rank {best['accuracy_rank']} of {results['architectures']}; best in sample "
                     f"{best['sample_best_accuracy']:.2f}%)")
    return "\n".join(lines)


def scatter_plot(spec: EvaluationSpec, records: Iterable[dict], path: str | Path,
                 benchmark: Benchmark | None = None) -> None:
    """One panel per proxy column: its mean over seeds against the true accuracy (``benchmark``'s,
    by default the bundled one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_arch: dict[str, list[dict]] = {}
    for r in records:
        if "error" not in r:
            by_arch.setdefault(r["arch"], []).append(r["values"])
    archs = [a for a in spec.archs() if len(by_arch.get(a, ())) == len(spec.seeds)]
    cols = spec.columns()
    n = len(cols)
    width = min(4, n)
    fig, axes = plt.subplots(math.ceil(n / width), width, figsize=(4 * width, 3.4 * math.ceil(n / width)),
                             squeeze=False)
    accuracy = _ground_truth(benchmark).values(archs, spec.dataset)
    for ax, col in zip(axes.flat, cols):
        values = np.array([np.mean([v[col] for v in by_arch[a]]) for a in archs])
        finite = np.isfinite(values)
        ax.scatter(values[finite], accuracy[finite], s=4, alpha=0.5)
        ax.set_xlabel(col)
        ax.set_ylabel(f"{spec.dataset} test accuracy (%)")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(out_dir: str | Path, ndcg_k: int | None = None, seeds: tuple[int, ...] | None = None,
           benchmark: Benchmark | None = None) -> tuple[dict, str]:
    """Recompute the metrics of a saved run and format them; ``ndcg_k`` and ``seeds`` (a subset of
    the run's, e.g. the seeds finished so far) override the run's for this report only. On a sample
    of n architectures, nDCG@k matches the full set's nDCG@1000 in spirit for k = 1000 n / 9444."""
    out = Path(out_dir)
    spec = _saved_spec(out)
    if seeds is not None and not set(seeds) <= set(spec.seeds):
        raise ValueError(f"seeds {seeds} are not all among the run's {spec.seeds}")
    spec = dataclasses.replace(spec, ndcg_k=ndcg_k or spec.ndcg_k, seeds=seeds or spec.seeds)
    results = compute_metrics(spec, load_records(out), benchmark)
    return results, format_table(results)


__all__ = ["EvaluationSpec", "ResultStore", "load_records", "finished_seeds", "run_evaluation", "compute_metrics", "format_table", "report",
           "scatter_plot", "AGGREGATE_PROXIES"]
