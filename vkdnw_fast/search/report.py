"""What a finished search leaves next to its record: ``best.txt``, ``history.csv``, ``best_score.png``,
and where a benchmark has the space, the true accuracies of the found and the random-search
architectures."""
from __future__ import annotations

import csv
import json
from typing import Any

import numpy as np

from .. import spaces
from ..benchmarks import Benchmark
from .store import Store


def write_outputs(store: Store, config, result) -> None:
    directory = store.directory
    proxies = list(config.proxies)
    lines = [result.best_arch]
    lines += [f"{key} {result.best_cost[key]:.0f}" for key in ("flops", "params", "layers")]
    lines.append(f"aggregate {result.best_aggregate:.6g} (docs/method.md eq. 15 over the final population of "
                 f"{len(result.population)})")
    lines += [f"{p} {result.best_values[p]!r}" for p in proxies]
    (directory / "best.txt").write_text("\n".join(lines) + "\n")

    rows = list(store.rows("integrated = 1 AND status = 'evaluated'", order="slot"))
    arch_of = {row["slot"]: row["arch"] for row in store.rows("slot IS NOT NULL")}
    header = (["iteration", "slot", "arch", "parent_slot", "cost_flops", "cost_params", "cost_layers"] + proxies
              + ["population", "best_slot", "best_arch", "best_aggregate", "best_normalised", "elapsed_s", "worker"])
    with open(directory / "history.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for row in rows:
            values = json.loads(row["values_json"])
            writer.writerow([row["iteration"], row["slot"], row["arch"], row["parent_slot"], row["flops"],
                             row["params"], row["layers"]] + [repr(values[p]) for p in proxies]
                            + [row["population_size"], row["best_slot"], arch_of[row["best_slot"]],
                               row["best_aggregate"], row["best_normalised"], row["elapsed"], row["worker"]])
    _plot(directory / "best_score.png", rows, proxies)


def _plot(path, rows, proxies: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iterations = np.array([row["iteration"] for row in rows])
    fig, axes = plt.subplots(len(proxies) + 1, 1, sharex=True, figsize=(7, 1.8 * (len(proxies) + 1)),
                             constrained_layout=True)
    axes[0].plot(iterations, [row["best_normalised"] for row in rows], color="black")
    axes[0].set_ylabel("best Σ log(rank/n)")
    axes[0].set_title("best member of the population (0: top in every proxy)")
    for ax, proxy in zip(axes[1:], proxies):
        values = np.array([json.loads(row["values_json"])[proxy] for row in rows])
        ax.plot(iterations, np.maximum.accumulate(values))
        ax.set_ylabel(f"max {proxy}")
    axes[-1].set_xlabel("iteration")
    fig.savefig(path, dpi=100)
    plt.close(fig)


def benchmark_summary(config, result, baseline, benchmark: Benchmark) -> dict[str, Any]:
    """The found and the random-search architectures' true accuracies (the benchmark's default
    metric on the space's dataset), and the best of the space."""
    dataset = config.space["dataset"]
    everything = list(spaces.from_spec(config.space).enumerate())
    return {
        "dataset": dataset, "subset": config.space["subset"], "seed": config.seed, "budget": config.iterations,
        "found_arch": result.best_arch, "found_accuracy": benchmark.value(result.best_arch, dataset),
        "random_arch": baseline.best_arch, "random_accuracy": benchmark.value(baseline.best_arch, dataset),
        "random_failed": baseline.failed,
        "optimum": float(np.max(benchmark.values(everything, dataset))),
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
