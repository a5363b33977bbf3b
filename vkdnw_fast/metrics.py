"""How well a score ranks architectures by accuracy (docs/method.md §5), and rankings built from several
scores (docs/method.md §6): Kendall τ-b, Spearman ρ, nDCG@k, the log-rank aggregate, TE-NAS's rank sum and
the random-forest ("model-driven") ranking.

Scores are "higher is better". NaN or ±inf in a score is refused with a ValueError naming where
(``aggregate`` accepts ±inf, which ranks); a metric that is undefined (a constant input) raises
``UndefinedMetricError``, so no function returns NaN unless asked to (``evaluate_ranking``).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

DEFAULT_SEEDS = (0, 1, 2, 3, 4)
_SHOWN_POSITIONS = 10


class UndefinedMetricError(ValueError):
    """The metric has no value for this input (all scores, or all accuracies, are equal)."""


def _vector(values: Any, name: str, allow_inf: bool = False) -> np.ndarray:
    """``values`` as a 1-d float64 array; ValueError naming how many entries are bad and where."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = np.isnan(array) if allow_inf else ~np.isfinite(array)
    if bad.any():
        positions = np.flatnonzero(bad)
        shown = ", ".join(map(str, positions[:_SHOWN_POSITIONS]))
        if len(positions) > _SHOWN_POSITIONS:
            shown += ", ..."
        kind = "NaN" if allow_inf else "NaN or infinite"
        hint = "" if allow_inf else " (if ±inf is a meaningful extreme, rank-transform the scores first)"
        raise ValueError(f"{name} has {len(positions)} {kind} value(s) of {len(array)}, at positions [{shown}]{hint}")
    return array


def _score_accuracy_pair(scores: Any, accuracies: Any) -> tuple[np.ndarray, np.ndarray]:
    scores = _vector(scores, "scores")
    accuracies = _vector(accuracies, "accuracies")
    if len(scores) != len(accuracies):
        raise ValueError(f"{len(scores)} scores but {len(accuracies)} accuracies")
    if len(scores) < 2:
        raise ValueError(f"a ranking needs at least 2 architectures, got {len(scores)}")
    return scores, accuracies


def _require_variation(scores: np.ndarray, accuracies: np.ndarray, name: str) -> None:
    for values, what in ((scores, "scores"), (accuracies, "accuracies")):
        if np.all(values == values[0]):
            raise UndefinedMetricError(f"{name} is undefined: all {what} are equal")


def kendall(scores: Any, accuracies: Any) -> float:
    """Kendall's τ-b (ties in either variable accounted for)."""
    scores, accuracies = _score_accuracy_pair(scores, accuracies)
    _require_variation(scores, accuracies, "Kendall's tau")
    return float(stats.kendalltau(scores, accuracies, variant="b").statistic)


def spearman(scores: Any, accuracies: Any) -> float:
    """Spearman's ρ (Pearson correlation of average ranks)."""
    scores, accuracies = _score_accuracy_pair(scores, accuracies)
    _require_variation(scores, accuracies, "Spearman's rho")
    return float(stats.spearmanr(scores, accuracies).statistic)


def ndcg(scores: Any, accuracies: Any, k: int = 1000, seed: int = 0) -> float:
    """nDCG@k with exponential gain: (1/Z_k) Σ_{j≤k} (2^{acc_(j)} − 1) / log2(1 + j), where acc_(j)
    is the accuracy (in percent) of the architecture ranked j-th by descending score and Z_k the
    same sum over accuracies sorted descending. Tied scores are put in a random order drawn from
    ``seed``; over tie orders the mean equals ``sklearn.metrics.ndcg_score`` (which averages the
    gains of tied items). ``k`` larger than the number of architectures means all of them.
    """
    scores, accuracies = _score_accuracy_pair(scores, accuracies)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = min(int(k), len(scores))
    # Shuffle first, then a stable sort: tied scores keep the shuffled order.
    shuffled = np.random.default_rng(seed).permutation(len(scores))
    ranked = shuffled[np.argsort(-scores[shuffled], kind="stable")][:k]
    gains = np.exp2(accuracies) - 1.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(gains)[::-1][:k] @ discounts
    if ideal <= 0:
        raise UndefinedMetricError("nDCG is undefined: every accuracy is 0, so every gain is 0")
    return float(gains[ranked] @ discounts / ideal)


def ndcg_mean(scores: Any, accuracies: Any, k: int = 1000, seeds: Iterable[int] = DEFAULT_SEEDS) -> float:
    """The mean of ``ndcg`` over the tie orders drawn from ``seeds``."""
    seeds = list(seeds)
    if not seeds:
        raise ValueError("ndcg_mean needs at least one seed")
    return float(np.mean([ndcg(scores, accuracies, k, seed) for seed in seeds]))


def evaluate_ranking(
    scores: Any, accuracies: Any, k: int = 1000, seeds: Iterable[int] = DEFAULT_SEEDS, *,
    undefined_as_nan: bool = False, relevance: Any | None = None,
) -> dict[str, float]:
    """{'kendall', 'spearman', 'ndcg'} of ``scores`` against ``accuracies``; nDCG@k is the mean
    over the tie orders of ``seeds``, its gains taken from ``relevance`` (default: ``accuracies``;
    a benchmark whose metric is not an accuracy in percent says what to use,
    ``Benchmark.ndcg_relevance``). With ``undefined_as_nan`` a metric that is undefined for this
    input is NaN instead of an ``UndefinedMetricError``, for a summary over several rankings (seeds)
    that leaves it out where it is undefined and reports the others."""
    relevance = accuracies if relevance is None else relevance
    measures = {"kendall": lambda: kendall(scores, accuracies), "spearman": lambda: spearman(scores, accuracies),
                "ndcg": lambda: ndcg_mean(scores, relevance, k, seeds)}
    result = {}
    for name, measure in measures.items():
        try:
            result[name] = measure()
        except UndefinedMetricError:
            if not undefined_as_nan:
                raise
            result[name] = math.nan
    return result


def _ranks(table: Mapping[str, Any] | Any, proxies: Sequence[str], method: str) -> list[np.ndarray]:
    """The ascending ranks (``scipy.stats.rankdata`` ``method``) of each ``proxies`` column of
    ``table``; ±inf rank as extremes, NaN is refused."""
    if isinstance(proxies, str) or not len(proxies):
        raise ValueError(f"proxies must be a non-empty sequence of column names, got {proxies!r}")
    ranks: list[np.ndarray] = []
    for proxy in proxies:
        try:
            column = table[proxy]
        except (KeyError, IndexError):
            raise ValueError(f"the table has no column {proxy!r}") from None
        values = _vector(column, f"proxy {proxy!r}", allow_inf=True)
        if ranks and len(values) != len(ranks[0]):
            raise ValueError(f"proxy {proxy!r} has {len(values)} values, {proxies[0]!r} has {len(ranks[0])}")
        ranks.append(stats.rankdata(values, method=method))
    return ranks


def aggregate(table: Mapping[str, Any] | Any, proxies: Sequence[str]) -> np.ndarray:
    """The non-linear aggregate of docs/method.md eq. 15: Σ_m log rank_m over the ``proxies`` columns of
    ``table`` (a dict of arrays, or anything indexable by column name such as a DataFrame).

    rank_m is ascending (the largest value gets the largest rank, n), ties get their average rank.
    ±inf values rank as extremes; NaN is refused.
    """
    return np.sum([np.log(r) for r in _ranks(table, proxies, "average")], axis=0)


def rank_sum(table: Mapping[str, Any] | Any, proxies: Sequence[str]) -> np.ndarray:
    """TE-NAS's combination (Chen et al., ICLR 2021; ``proxies.tenas.TE_NAS_TERMS``): Σ_m rank_m,
    ranks ascending and dense as TE-NAS's pruning ranks them (tied values share a rank, the next
    larger value gets the next rank: 1, 1, 2, ...). ±inf values rank as extremes; NaN is refused.
    """
    return np.sum(_ranks(table, proxies, "dense"), axis=0)


def model_driven_ranking(
    features: Any, accuracies: Any, train_size: int = 1024, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Random-forest ranking (docs/method.md §6): fit on ``train_size`` architectures with known accuracy,
    predict the rest.

    ``features`` is (architectures × features), e.g. proxy values, FIM deciles, ℵ, FLOPs. The
    training architectures are a uniformly random subset drawn with ``np.random.default_rng(seed)``.
    The regressor is scikit-learn's ``RandomForestRegressor`` with its defaults (100 trees,
    squared-error splits, all features considered at each split, bootstrap samples, unlimited
    depth) and ``random_state=seed``. Returns (sorted indices of the test architectures, their
    predicted accuracies), to be evaluated against ``accuracies[test_index]``.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-d (architectures × features) array, got shape {features.shape}")
    accuracies = _vector(accuracies, "accuracies")
    if len(features) != len(accuracies):
        raise ValueError(f"{len(features)} rows of features but {len(accuracies)} accuracies")
    bad_rows, bad_columns = np.nonzero(~np.isfinite(features))
    if len(bad_rows):
        raise ValueError(
            f"features has {len(bad_rows)} NaN or infinite value(s), in columns "
            f"{sorted(set(bad_columns.tolist()))}, first at row {bad_rows[0]}"
        )
    if not 1 <= train_size < len(accuracies):
        raise ValueError(f"train_size must be in 1..{len(accuracies) - 1}, got {train_size}")
    order = np.random.default_rng(seed).permutation(len(accuracies))
    train_index, test_index = order[:train_size], np.sort(order[train_size:])
    from sklearn.ensemble import RandomForestRegressor  # here: scikit-learn takes a second to import

    forest = RandomForestRegressor(n_estimators=100, random_state=seed)
    forest.fit(features[train_index], accuracies[train_index])
    return test_index, forest.predict(features[test_index])
