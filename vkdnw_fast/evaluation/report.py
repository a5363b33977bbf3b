"""The table and the scatter plot of a run, and ``report``: both recomputed from a saved run alone."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from ..benchmarks import Benchmark
from .rankings import compute_metrics
from .spec import EvaluationSpec
from .store import load_records, saved_spec


def format_table(results: dict) -> str:
    spec = results["spec"]
    k = min(spec["ndcg_k"], results["architectures"])
    sample = "" if spec["limit"] is None else f" (seeded sample, sample seed {spec['sample_seed']})"
    space = spec.get("space", "nb201")
    where = (f"NAS-Bench-201 {spec['dataset']}, {spec['subset']} set" if space == "nb201"
             else f"{space} {spec['dataset']}")
    lines = [f"{where}: {results['architectures']} architectures"
             f"{sample}, seeds {spec['seeds']}, presets {spec['presets']}"
             + (f", scored on real images from {spec['data']}" if spec.get("data") else ""),
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
        truth = "test accuracy" if spec.get("metric") is None and space == "nb201" else spec.get("metric") or "value"
        lines.append(f"best by {best['by']}: {best['arch']}  true {truth} {best['accuracy']:.2f}% "
                     f"(rank {best['accuracy_rank']} of {results['architectures']}; best in sample "
                     f"{best['sample_best_accuracy']:.2f}%)")
    return "\n".join(lines)


def scatter_plot(spec: EvaluationSpec, records: Iterable[dict], path: str | Path,
                 benchmark: Benchmark | None = None) -> None:
    """One panel per proxy column: its mean over seeds against the true accuracy (``spec.metric``
    of ``benchmark``, by default the bundled one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_arch: dict[str, list[dict]] = {}
    for r in records:
        if "error" not in r:
            by_arch.setdefault(r["arch"], []).append(r["values"])
    archs = [a for a in spec.archs(benchmark) if len(by_arch.get(a, ())) == len(spec.seeds)]
    cols = spec.columns()
    n = len(cols)
    width = min(4, n)
    fig, axes = plt.subplots(math.ceil(n / width), width, figsize=(4 * width, 3.4 * math.ceil(n / width)),
                             squeeze=False)
    accuracy = spec.ground_truth(benchmark).values(archs, spec.dataset, spec.metric)
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
    spec = saved_spec(out_dir)
    if seeds is not None and not set(seeds) <= set(spec.seeds):
        raise ValueError(f"seeds {seeds} are not all among the run's {spec.seeds}")
    spec = dataclasses.replace(spec, ndcg_k=ndcg_k or spec.ndcg_k, seeds=seeds or spec.seeds)
    results = compute_metrics(spec, load_records(out_dir), benchmark)
    return results, format_table(results)
