"""The table of a run, and ``report``: recomputed from a saved run alone."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Sequence

from ..benchmarks import Benchmark
from .published import MEASURES, beside, shown_figures
from .rankings import compute_metrics
from .spec import EvaluationSpec
from .store import load_records, saved_spec


def shown(ranking: str) -> bool:
    """Whether a ranking is in the table and the figures: not the spectrum quantile levels, which are
    random-forest features (kept in metrics.json)."""
    return not ranking.startswith("fim_q")


def where(spec: dict) -> str:
    """What a run ranks, as the table's first line names it (``spec``: the JSON form)."""
    space = spec.get("space", "nb201")
    return (f"NAS-Bench-201 {spec['dataset']}, {spec['subset']} set" if space == "nb201"
            else f"{space} {spec['dataset']}")


def truth_label(spec: dict) -> str:
    """The ground truth a run ranks against, in words."""
    return ("test accuracy" if spec.get("metric") is None and spec.get("space", "nb201") == "nb201"
            else spec.get("metric") or "value")


# What fixes the architectures a run ranks and the truth it ranks them against: runs that agree on these
# (and on the number of architectures scored) rank the same sample, whatever proxies and seeds each has.
SAME_SAMPLE = ("space", "dataset", "metric", "subset", "limit", "sample_seed", "ndcg_k")


def _named_by_features(name: str, ranking: dict) -> str:
    """A model-driven ranking's name with the number of columns it was fitted on:
    random_forest(16 features)@paper."""
    base, at, preset = name.partition("@")
    return f"{base}({len(ranking['features'])} features){at}{preset}"


def join_runs(results: Sequence[dict]) -> dict:
    """The metrics of several runs of the same sample (``SAME_SAMPLE``) as one: every run's rankings side
    by side, e.g. the Table I reproduction's proxies and the every-proxy run's. Each run's random forest
    is named by its number of features ("random_forest(16 features)"); a ranking that two runs have is
    refused. ``spec`` is the first run's; ``joined_seeds`` lists each run's seeds."""
    if not results:
        raise ValueError("join_runs needs the metrics of at least one run")
    defaults = EvaluationSpec().to_json()
    first = results[0]
    rankings: dict = {}
    for result in results:
        if len(results) > 1:
            result = {**result, "rankings": {_named_by_features(n, r) if "features" in r else n: r
                                             for n, r in result["rankings"].items()}}
        for key in SAME_SAMPLE:
            mine, theirs = (r["spec"].get(key, defaults.get(key)) for r in (result, first))
            if mine != theirs:
                raise ValueError(f"runs ranking different samples cannot be joined: {key} {mine!r} != {theirs!r}")
        if result["architectures"] != first["architectures"]:
            raise ValueError(f"runs ranking different samples cannot be joined: {result['architectures']} "
                             f"architectures scored != {first['architectures']}")
        repeated = rankings.keys() & result["rankings"].keys()
        if repeated:
            raise ValueError(f"runs to join both rank by {', '.join(sorted(repeated))}")
        rankings.update(result["rankings"])
    return {**first, "rankings": rankings, "joined_seeds": [list(r["spec"]["seeds"]) for r in results]}


def format_table(results: dict) -> str:
    spec = results["spec"]
    k = min(spec["ndcg_k"], results["architectures"])
    sample = "" if spec["limit"] is None else f" (seeded sample, sample seed {spec['sample_seed']})"
    rows = [name for name in results["rankings"] if shown(name)]
    # A ranking over fewer architectures (its proxies failed on some) says on how many.
    labels_of = {name: name + (f" [{results['rankings'][name]['architectures']}]"
                               if "architectures" in results["rankings"][name] else "") for name in rows}
    width = max([28, *map(len, labels_of.values())])  # names of --aggregate rankings can be longer
    # The published figures of the same ranking, a column per source under its label.
    found = {name: {source: shown_figures(source, figures) for source, figures in
                    beside(name, spec.get("space", "nb201"), spec["dataset"], spec.get("subset", "unique")).items()}
             for name in rows}
    labels = {source: f"{source} ({MEASURES[source][0]})" for source in MEASURES
              if any(source in f for f in found.values())}
    lines = [f"{where(spec)}: {results['architectures']} architectures"
             f"{sample}, seeds {spec['seeds']}, presets {spec['presets']}"
             + (f", scored on real images from {spec['data']}" if spec.get("data") else ""),
             f"{'ranking':<{width}} {'Kendall':>15} {'Spearman':>15} {'nDCG@' + str(k):>15}"
             + "".join(f"   {label}" for label in labels.values())]
    spread = " ± {:.3f}" if len(spec["seeds"]) > 1 else ""  # a spread over one seed would read as certainty
    for name in rows:
        row = results["rankings"][name]
        cells = ["n/a" if row[m]["mean"] is None else f"{row[m]['mean']:.3f}" + spread.format(row[m]["std"])
                 for m in ("kendall", "spearman", "ndcg")]
        published_cells = "".join(f"   {found[name].get(source, ''):<{len(label)}}" for source, label in labels.items())
        lines.append(f"{labels_of[name]:<{width}} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}{published_cells}".rstrip())
    if results.get("ndcg_undefined"):
        lines.append(results["ndcg_undefined"])
    if results.get("partly_failed"):
        counts = ", ".join(f"{c} {n}" for c, n in results["partly_failed"].items())
        lines.append(f"proxies that failed on some architectures (left out of the rankings built on them, "
                     f"[n]: the architectures ranked): {counts}; see proxy_errors in results.jsonl")
    if results["failed"]:
        lines.append(f"failed architectures (excluded): {len(results['failed'])}, see results.jsonl")
    if results["failed"] or results.get("partly_failed"):
        lines.append("evaluate --retry-failed scores what failed again")
    if results.get("engine"):
        lines.append(_engine_line(results["engine"]))
    if results.get("chunked"):
        lines.append(_chunked_line(results["chunked"]))
    best = results.get("best")
    if best:
        lines.append(f"best by {best['by']}: {best['arch']}  true {truth_label(spec)} {best['shown']} "
                     f"(rank {best['accuracy_rank']} of {results['architectures']}; best in sample "
                     f"{best['sample_best_shown']})")
    return "\n".join(lines)


def _chunked_line(chunked: dict) -> str:
    """How many networks were scored in chunks of their batch (``rankings.chunked_summary``)."""
    parts = [", ".join(f"{n} by {samples} samples" for samples, n in chunked.get("sample_chunk", {}).items())
             + " to fit beside others"] if chunked.get("sample_chunk") else []
    if chunked.get("least_memory"):
        parts.append(f"{chunked['least_memory']} by the leanest plans after their worker died")
    return f"networks scored in chunks of their batch (the same scores to rounding): {'; '.join(parts)}"


def _engine_line(engine: dict[str, dict[str, dict]]) -> str:
    """The plans the engine took (``rankings.engine_summary``): networks, median seconds."""
    def plan(name: str, run: dict) -> str:
        seconds = run["median_seconds"]
        return f"{name} {run['networks']}" + ("" if seconds is None else f" (median {seconds:.3g} s)")
    counted = "; ".join(f"{preset} " + ", ".join(plan(name, run) for name, run in plans.items())
                        for preset, plans in engine.items())
    return f"engine pass plans, of the records that name one: {counted}"


def report_spec(out_dir: str | Path, ndcg_k: int | None = None, seeds: tuple[int, ...] | None = None
                ) -> EvaluationSpec:
    """The spec of a saved run, with ``ndcg_k`` and ``seeds`` (a subset of the run's) overridden."""
    spec = saved_spec(out_dir)
    if seeds is not None and not set(seeds) <= set(spec.seeds):
        raise ValueError(f"seeds {seeds} are not all among the run's {spec.seeds}")
    return dataclasses.replace(spec, ndcg_k=ndcg_k or spec.ndcg_k, seeds=seeds or spec.seeds)


def report(out_dir: str | Path, ndcg_k: int | None = None, seeds: tuple[int, ...] | None = None,
           benchmark: Benchmark | None = None, aggregates: Iterable[Iterable[str]] = ()) -> tuple[dict, str]:
    """Recompute the metrics of a saved run and format them; ``ndcg_k`` and ``seeds`` (a subset of
    the run's, e.g. the seeds finished so far) override the run's for this report only, and
    ``aggregates`` adds an eq. 15 aggregate of each set of proxies (``rankings.aggregates``), from the
    stored scores. On a sample of n architectures, nDCG@k matches the full set's nDCG@1000 in spirit
    for k = 1000 n / 9444."""
    spec = report_spec(out_dir, ndcg_k, seeds)
    results = compute_metrics(spec, load_records(out_dir), benchmark, aggregates)
    return results, format_table(results)
