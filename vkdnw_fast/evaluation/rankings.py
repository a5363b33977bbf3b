"""Rankings of a run's scores against the ground truth (docs/method.md §5, §6): per seed KT / SPR /
nDCG@k of every proxy column, of the log-rank aggregate and of the random-forest ranking; their
mean and std over seeds; and the architecture the aggregate picks."""
from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Iterable

import numpy as np
from scipy.stats import rankdata

from .. import metrics
from ..benchmarks import Benchmark, NoRelevanceError
from ..scoring import column
from .spec import AGGREGATE_PROXIES, EvaluationSpec

RF_TRAIN_SIZE = 1024


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank transform (ties averaged): the metrics only see order, and -inf proxies stay usable."""
    if np.isnan(values).any():
        raise ValueError(f"{int(np.isnan(values).sum())} NaN proxy values")
    return rankdata(values, method="average")


def _rank_metrics(scores: np.ndarray, accuracy: np.ndarray, relevance: np.ndarray | None, k: int, seed: int
                  ) -> dict:
    """One seed's metrics; NaN where a metric is undefined (a constant ranking, or nDCG where the
    ground truth has no ``relevance``, see ``Benchmark.ndcg_relevance``)."""
    result = metrics.evaluate_ranking(_ranks(scores), accuracy, k, seeds=(seed,), undefined_as_nan=True,
                                      relevance=relevance)
    return result if relevance is not None else {**result, "ndcg": math.nan}


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


def score_table(spec: EvaluationSpec, records: Iterable[dict], benchmark: Benchmark | None = None
                ) -> tuple[list[str], list[str], dict[str, np.ndarray]]:
    """(architectures scored without error for every seed in the spec's order, failed architectures,
    {column: (seeds x architectures) values}). A column's value is NaN where its proxy failed on the
    architecture (a record's ``proxy_errors``; no proxy is allowed to return NaN)."""
    records = list(records)
    failed = sorted({r["arch"] for r in records if "error" in r})
    by_key = {(r["arch"], r["seed"]): r["values"] for r in records if "error" not in r}
    archs = [a for a in spec.archs(benchmark) if a not in failed and all((a, s) in by_key for s in spec.seeds)]
    table = {c: np.array([[by_key[(a, s)].get(c, math.nan) for a in archs] for s in spec.seeds], dtype=float
                         ).reshape(len(spec.seeds), len(archs)) for c in spec.columns()}
    return archs, failed, table


def defined(table: dict[str, np.ndarray], columns: Iterable[str]) -> np.ndarray:
    """The architectures (a mask) that have a value of every one of ``columns`` in every seed."""
    return ~np.any([np.isnan(table[c]).any(axis=0) for c in columns], axis=0)


def _partly_failed(table: dict[str, np.ndarray]) -> dict[str, int]:
    """{column: how many architectures its proxy failed on} for the columns that failed somewhere."""
    counts = {c: int((~defined(table, [c])).sum()) for c in table}
    return {c: n for c, n in counts.items() if n}


def aggregates(spec: EvaluationSpec, requested: Iterable[Iterable[str]] = ()) -> dict[str, list[str]]:
    """The eq. 15 aggregates of a run, {ranking name: its columns}: the docs/method.md §6 one per
    preset (``aggregate`` or ``aggregate@<preset>``) where the run scored its proxies, then each
    ``requested`` set of proxies, named ``aggregate(<names>)``. A name is a proxy of the run, taken
    at each preset where it has one (one ranking per preset), or a column such as ``vkdnw@exact``."""
    found: dict[str, list[str]] = {}
    for preset in spec.presets:
        agg_columns = [column(p, preset, spec.presets) for p in AGGREGATE_PROXIES]
        if all(c in spec.columns() for c in agg_columns):
            found["aggregate" + (f"@{preset}" if len(spec.presets) > 1 else "")] = agg_columns
    for names in requested:
        names = list(names)
        for name in names:
            if name not in (spec.columns() if "@" in name else spec.proxies):
                raise ValueError(f"--aggregate: {name!r} is not a column of this run (its proxies: "
                                 f"{', '.join(spec.proxies)}; presets: {', '.join(spec.presets)})")
        if len(set(names)) != len(names):
            raise ValueError(f"--aggregate: {','.join(names)} names a proxy twice")
        per_preset = {p: [n if "@" in n else column(n, p, spec.presets) for n in names] for p in spec.presets}
        distinct = {tuple(cols) for cols in per_preset.values()}
        label = f"aggregate({','.join(names)})"
        for preset, cols in per_preset.items():
            found[label + (f"@{preset}" if len(distinct) > 1 else "")] = cols
    return found


def compute_metrics(spec: EvaluationSpec, records: Iterable[dict], benchmark: Benchmark | None = None,
                    extra_aggregates: Iterable[Iterable[str]] = ()) -> dict:
    """KT / SPR / nDCG@k per column, for the aggregated and the model-driven rankings; each the
    mean (and std) over seeds, on the architectures scored without error for every seed, against
    ``spec.metric`` of ``benchmark`` (default: the bundled one, ``spec.ground_truth``).
    ``extra_aggregates``: further sets of proxies to aggregate by eq. 15 (see ``aggregates``),
    reported after the rest."""
    default = aggregates(spec)
    extra = {k: v for k, v in aggregates(spec, extra_aggregates).items() if k not in default}
    records = list(records)
    archs, failed, table = score_table(spec, records, benchmark)
    seeds = list(spec.seeds)
    if len(archs) < 2:
        return {"spec": spec.to_json(), "architectures": len(archs), "failed": failed, "rankings": {}}
    truth = spec.ground_truth(benchmark)
    accuracy = truth.values(archs, spec.dataset, spec.metric)
    ndcg_undefined = None
    try:
        relevance = truth.ndcg_relevance(accuracy, spec.dataset, spec.metric)
    except NoRelevanceError as error:
        relevance, ndcg_undefined = None, str(error)

    def summary(columns: list[str], score: Callable[[int, np.ndarray], np.ndarray]) -> dict:
        """A ranking by ``score(seed index, mask)`` over the architectures that have every one of
        ``columns`` (all of them unless a proxy failed somewhere; then the count is reported)."""
        mask = defined(table, columns)
        if mask.sum() < 2:
            per_seed = [{m: math.nan for m in ("kendall", "spearman", "ndcg")} for _ in seeds]
        else:
            per_seed = [_rank_metrics(score(i, mask), accuracy[mask], None if relevance is None else relevance[mask],
                                      spec.ndcg_k, s) for i, s in enumerate(seeds)]
        return {**_summary(per_seed), **({} if mask.all() else {"architectures": int(mask.sum())})}

    def aggregate_summary(agg_columns: list[str]) -> dict:
        return summary(agg_columns, lambda i, mask: metrics.aggregate({c: table[c][i][mask] for c in agg_columns},
                                                                       agg_columns))

    rankings: dict[str, dict] = {}
    for name, scores in table.items():
        rankings[name] = summary([name], lambda i, mask, scores=scores: scores[i][mask])
    for preset in spec.presets:
        suffix = f"@{preset}" if len(spec.presets) > 1 else ""
        if f"aggregate{suffix}" in default:
            rankings[f"aggregate{suffix}"] = aggregate_summary(default[f"aggregate{suffix}"])
        features = [c for c in table if not c.partition("@")[2] or c.endswith(f"@{preset}")]
        rankings[f"random_forest{suffix}"] = _forest(table, features, accuracy, relevance, spec.ndcg_k, seeds)
    for name, agg_columns in extra.items():
        rankings[name] = {**aggregate_summary(agg_columns), "proxies": agg_columns}
    best = _best_architecture(spec, archs, accuracy, table, truth)
    partly_failed = _partly_failed(table)
    engine = engine_summary(records)
    chunked = chunked_summary(records)
    return {"spec": spec.to_json(), "architectures": len(archs), "failed": failed, "rankings": rankings,
            "best": best, **({"partly_failed": partly_failed} if partly_failed else {}),
            **({"engine": engine} if engine else {}), **({"chunked": chunked} if chunked else {}),
            **({"ndcg_undefined": ndcg_undefined} if ndcg_undefined else {})}


def engine_summary(records: Iterable[dict]) -> dict[str, dict[str, dict]]:
    """{preset: {pass plan: {"networks", "median_seconds"}}} over the records that say what the engine did
    (``Job.record_engine_runs``; a run's records from before it was recorded, and borrowed Fisher scores, say
    nothing); the median over the networks scored whole (a resumed one's seconds count only the rest), None
    where there is none."""
    runs: dict[str, dict[str, list]] = {}
    for record in records:
        for preset, run in record.get("engine", {}).items():
            runs.setdefault(preset, {}).setdefault(run["plan"], []).append(
                None if record.get("resumed_blocks") else run["seconds"])
    summary = {}
    for preset, plans in runs.items():
        summary[preset] = {}
        for plan, seconds in sorted(plans.items(), key=lambda item: -len(item[1])):
            whole = [s for s in seconds if s is not None]
            summary[preset][plan] = {"networks": len(seconds),
                                     "median_seconds": float(np.median(whole)) if whole else None}
    return summary


def chunked_summary(records: Iterable[dict]) -> dict[str, Any]:
    """How many networks a worker pool scored in chunks of their batch (the same scores to rounding):
    ``sample_chunk`` {samples a chunk: networks} to fit beside others, ``least_memory`` the networks scored by the
    engine's leanest plans after their worker died; only the keys that have any."""
    records = list(records)
    sizes = Counter(str(r["sample_chunk"]) for r in records if r.get("sample_chunk") and not r.get("least_memory"))
    lean = sum(bool(r.get("least_memory")) for r in records)
    return {**({"sample_chunk": dict(sorted(sizes.items(), key=lambda item: -int(item[0])))} if sizes else {}),
            **({"least_memory": lean} if lean else {})}


def _forest(table: dict[str, np.ndarray], features: list[str], accuracy: np.ndarray, relevance: np.ndarray | None,
            ndcg_k: int, seeds: list[int]) -> dict:
    """The model-driven ranking on ``features`` (docs/method.md §6): per seed a random forest fitted on the
    ranks of the features of a seeded half of the architectures (at most ``RF_TRAIN_SIZE``) that have all
    of them, ranking the rest."""
    mask = defined(table, features)
    accuracy = accuracy[mask]
    relevance = None if relevance is None else relevance[mask]
    train_size = min(RF_TRAIN_SIZE, len(accuracy) // 2)
    per_seed = []
    for i, s in enumerate(seeds):
        if len(accuracy) - train_size < 2:  # nothing left to rank after training: undefined, not a crash
            per_seed.append({m: math.nan for m in ("kendall", "spearman", "ndcg")})
            continue
        x = np.column_stack([_ranks(table[c][i][mask]) for c in features])
        test, predicted = metrics.model_driven_ranking(x, accuracy, train_size=train_size, seed=s)
        per_seed.append(_rank_metrics(predicted, accuracy[test], None if relevance is None else relevance[test],
                                      ndcg_k, s))
    return {**_summary(per_seed), "train_size": train_size, "features": features,
            **({} if mask.all() else {"architectures": int(mask.sum())})}


def _best_architecture(spec, archs, accuracy, table, truth: Benchmark) -> dict:
    """The architecture the first ranking picks (aggregate if available), by mean rank over seeds."""
    agg_columns = [column(p, spec.presets[0], spec.presets) for p in AGGREGATE_PROXIES]
    by, columns = (("aggregate", agg_columns) if all(c in table for c in agg_columns) else
                   (spec.columns()[0], [spec.columns()[0]]))
    candidates = np.flatnonzero(defined(table, columns))  # those the ranking could score
    if not len(candidates):
        return {}
    scores = [metrics.aggregate({c: table[c][i][candidates] for c in columns}, columns) for i in range(len(spec.seeds))]
    mean_rank = np.mean([_ranks(s) for s in scores], axis=0)
    pick = int(candidates[np.argmax(mean_rank)])
    return {"by": by, "arch": archs[pick], "accuracy": float(accuracy[pick]),
            "accuracy_rank": int((accuracy > accuracy[pick]).sum()) + 1,
            "sample_best_accuracy": float(accuracy.max()), "dataset": spec.dataset,
            "shown": truth.show(float(accuracy[pick]), spec.dataset, spec.metric),
            "sample_best_shown": truth.show(float(accuracy.max()), spec.dataset, spec.metric)}
