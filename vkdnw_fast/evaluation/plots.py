"""The figures of evaluation runs, each drawing function returning its ``matplotlib`` Figure:
``scatter_plot`` (every proxy and eq. 15 aggregate of a run against the ground truth, its KT / SPR in
the title) and ``bar_plot`` (KT / SPR / nDCG of every ranking of one or several runs, a panel each)."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.stats import rankdata

from .. import metrics
from ..benchmarks import Benchmark
from .rankings import aggregates, defined, score_table
from .report import shown, truth_label, where
from .spec import EvaluationSpec

# The axis rule of a scatter panel: the first of a linear value axis, a symmetric-log value axis (a log
# axis where every value is positive) and a rank axis on which the middle 90% of the architectures
# (5th to 95th percentile) fill at least half of the axis's span; a rank axis (which they always fill)
# where any value is ±inf.
MIDDLE, FILL = (0.05, 0.95), 0.5
# The smallest symmetric-log threshold matplotlib can draw: below it (the denormals, where a product of
# exponentials underflows, as swap_reg's size term does) 1 / threshold overflows its transform.
SMALLEST_LINTHRESH = 1e-300


def _fill(t: np.ndarray) -> float:
    """The share of the span of ``t`` that its middle 90% occupy."""
    low, high = np.quantile(t, MIDDLE)
    span = t.max() - t.min()
    return 1.0 if span == 0 else float((high - low) / span)


def axis_scale(values: np.ndarray) -> tuple[str, float | None]:
    """("linear" | "symlog" | "rank", the symmetric-log axis's linear threshold) for a panel's values
    by the axis rule (``MIDDLE``, ``FILL``). The symmetric-log threshold is the smallest non-zero
    |value|, so that only zeros sit in its linear part."""
    from matplotlib.scale import SymmetricalLogTransform

    if len(values) == 0 or not np.isfinite(values).all():
        return "rank", None
    if _fill(values) >= FILL:
        return "linear", None
    linthresh = float(np.abs(values[values != 0]).min())  # not all zero: then the linear axis is filled
    if linthresh >= SMALLEST_LINTHRESH and _fill(SymmetricalLogTransform(10, linthresh, 1.0).transform(values)) >= FILL:
        return "symlog", linthresh
    return "rank", None


def _mean_defined(per_seed: list[float]) -> float | None:
    defined = [v for v in per_seed if not math.isnan(v)]
    return float(np.mean(defined)) if defined else None


def _correlations(per_seed: np.ndarray, accuracy: np.ndarray) -> tuple[float | None, float | None]:
    """KT and SPR, each the mean over seeds (rows) of those defined, as the table has them."""
    if per_seed.shape[1] < 2:
        return None, None
    found = {"kendall": [], "spearman": []}
    for values in per_seed:
        ranks = rankdata(values)  # ±inf as extremes, as the metrics rank them
        for name, measure in (("kendall", metrics.kendall), ("spearman", metrics.spearman)):
            try:
                found[name].append(measure(ranks, accuracy))
            except metrics.UndefinedMetricError:
                found[name].append(math.nan)
    return _mean_defined(found["kendall"]), _mean_defined(found["spearman"])


def _panel(ax, title: str, label: str, per_seed: np.ndarray, accuracy: np.ndarray, ylabel: str) -> None:
    """One proxy or aggregate: ``per_seed`` (seeds x architectures) against ``accuracy``. An
    architecture with a NaN value in any seed is left out of the panel and its KT / SPR; ±inf are
    ranked as extremes and counted in the title."""
    with np.errstate(invalid="ignore"):
        mean = per_seed.mean(axis=0)
    left_out = np.isnan(per_seed).any(axis=0) | np.isnan(mean)
    per_seed, accuracy, mean = per_seed[:, ~left_out], accuracy[~left_out], mean[~left_out]
    kendall, spearman = _correlations(per_seed, accuracy)
    seeds = len(per_seed)
    lines = [title, "KT " + ("n/a" if kendall is None else f"{kendall:.3f}") + "  SPR "
             + ("n/a" if spearman is None else f"{spearman:.3f}") + (f" (mean of {seeds} seeds)" if seeds > 1 else "")]
    counts = [f"+inf {int((mean == np.inf).sum())}", f"-inf {int((mean == -np.inf).sum())}"]
    if np.isinf(mean).any():
        lines.append(", ".join(c for c in counts if not c.endswith(" 0")) + " at the rank axis's ends"
                     + (f"; NaN {int(left_out.sum())} left out" if left_out.any() else ""))
    elif left_out.any():
        lines.append(f"NaN {int(left_out.sum())} left out")
    scale, linthresh = axis_scale(mean)
    if scale == "rank":
        x = np.mean([rankdata(v) for v in per_seed], axis=0) if len(mean) else mean
        label = f"rank of {label} (1 = lowest" + ("; mean over seeds)" if seeds > 1 else ")")
    else:
        x = mean
        if scale == "symlog" and (mean > 0).all():  # the same axis without its linear part about 0
            ax.set_xscale("log")
            label += " (log scale)"
        elif scale == "symlog":
            ax.set_xscale("symlog", linthresh=linthresh)
            label += f" (symmetric log, linear within ±{linthresh:.3g})"
        if scale == "symlog":
            ax.xaxis.get_major_locator().set_params(numticks=6)  # values spanning tens of decades
        elif seeds > 1:
            label += " (mean over seeds)"
    infinite = np.isinf(mean)
    ax.scatter(x[~infinite], accuracy[~infinite], s=4, alpha=0.5)
    ax.scatter(x[infinite], accuracy[infinite], s=14, marker="x", color="C3")  # ±inf, at the rank axis's ends
    ax.set_title("\n".join(lines), fontsize=9)
    ax.set_xlabel("\n".join(textwrap.wrap(label, 48)), fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def scatter_plot(spec: EvaluationSpec, records: Iterable[dict], path: str | Path | None = None,
                 benchmark: Benchmark | None = None, extra_aggregates: Iterable[Iterable[str]] = ()):
    """One panel per proxy column of the table and per eq. 15 aggregate (the run's, then one per set
    of ``extra_aggregates``): the scores against the true accuracy (``spec.metric`` of ``benchmark``,
    by default the bundled one), KT / SPR in the title as the table has them (the mean over seeds),
    on an axis chosen by the rule of ``axis_scale``. Saved to ``path`` where given; returns the Figure."""
    from matplotlib.figure import Figure

    ranked = aggregates(spec, extra_aggregates)
    archs, _, table = score_table(spec, records, benchmark)
    truth = spec.ground_truth(benchmark)
    accuracy = truth.values(archs, spec.dataset, spec.metric)
    panels = [(c, c, table[c]) for c in [c for c in spec.columns() if shown(c)] or spec.columns()]
    for name, agg_columns in ranked.items():
        per_seed = np.full((len(spec.seeds), len(archs)), np.nan)
        clean = defined(table, agg_columns)  # eq. 15 refuses NaN
        if clean.any():
            per_seed[:, clean] = [metrics.aggregate({c: table[c][i, clean] for c in agg_columns}, agg_columns)
                                  for i in range(len(spec.seeds))]
        panels.append((f"{name} (eq. 15)", "Σ log rank of " + ", ".join(agg_columns), per_seed))
    width = min(4, len(panels))
    rows = math.ceil(len(panels) / width)
    fig = Figure(figsize=(4 * width, 3.6 * rows))
    axes = list(fig.subplots(rows, width, squeeze=False).flat)
    ylabel = f"{spec.dataset} {truth_label(spec.to_json())} ({truth.unit(spec.dataset, spec.metric)})"
    for ax, (title, label, per_seed) in zip(axes, panels):
        _panel(ax, title, label, per_seed, accuracy, ylabel)
    for ax in axes[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


METRICS = (("kendall", "KT"), ("spearman", "SPR"), ("ndcg", "nDCG"))


def _seeds_said(result: dict) -> str:
    """"5 seeds", or for joined runs (``report.join_runs``) each run's count: "5 + 1 seeds"."""
    counts = [len(s) for s in result.get("joined_seeds", [result["spec"]["seeds"]])]
    return f"{' + '.join(map(str, counts))} seed{'s' if counts != [1] else ''}"


def bar_plot(results: Sequence[dict], path: str | Path | None = None, sort_by: str | None = None):
    """KT / SPR / nDCG@k (means over seeds, the standard deviation as error bars) of every ranking in
    the table of each of ``results`` (what ``compute_metrics`` returns and ``metrics.json`` holds, or
    ``report.join_runs`` joins), one panel per run side by side (e.g. one per dataset), the rankings in
    the first run's order, or best first by the first run's ``sort_by`` ("kendall", "spearman" or
    "ndcg"; undefined last). Saved to ``path`` where given; returns the Figure."""
    from matplotlib.figure import Figure

    if not results:
        raise ValueError("bar_plot needs the metrics of at least one run")
    names: list[str] = []
    for result in results:
        names += [n for n in result["rankings"] if n not in names]
    names = [n for n in names if shown(n)] or names  # a run of quantile levels alone shows them
    if sort_by is not None:
        if sort_by not in dict(METRICS):
            raise ValueError(f"bar_plot sorts by one of {', '.join(dict(METRICS))}, not {sort_by!r}")
        means = {n: results[0]["rankings"].get(n, {}).get(sort_by, {}).get("mean") for n in names}
        names.sort(key=lambda n: math.inf if means[n] is None or math.isnan(means[n]) else -means[n])
    fig = Figure(figsize=(1.5 + 4.5 * len(results), 1.6 + 0.36 * len(names)))
    axes = fig.subplots(1, len(results), sharey=True, squeeze=False)[0]
    y = np.arange(len(names))
    height = 0.8 / len(METRICS)
    for ax, result in zip(axes, results):
        spec = result["spec"]
        several = any(len(s) > 1 for s in result.get("joined_seeds", [spec["seeds"]]))
        lowest = 0.0
        for j, (key, label) in enumerate(METRICS):
            cells = [result["rankings"].get(n, {}).get(key, {}) for n in names]
            means = np.array([math.nan if c.get("mean") is None else c["mean"] for c in cells])
            spread = np.array([math.nan if c.get("std") is None else c["std"] for c in cells]) if several else None
            if key == "ndcg":
                label += f"@{min(spec['ndcg_k'], result['architectures'])}"
            ax.barh(y + (j - 1) * height, means, height, xerr=spread, label=label, color=f"C{j}",
                    error_kw={"elinewidth": 0.8, "capsize": 1.5})
            lowest = min(lowest, np.nanmin(means, initial=0.0))
        ax.set_xlim(lowest - 0.02 if lowest < 0 else 0.0, 1.0)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{where(spec)}\n{result['architectures']} architectures, {_seeds_said(result)}", fontsize=9)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.03), ncol=len(METRICS), fontsize=8, frameon=False)
    axes[0].set_yticks(y, names, fontsize=8)
    axes[0].set_ylim(len(names) - 0.5, -0.5)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
