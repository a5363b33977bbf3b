"""Ranking metrics: hand-computed cases, scikit-learn as oracle, and the docs/method.md §5 calibration table
(FLOPs and ℵ of every NAS-Bench-201 cell against the bundled accuracies)."""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from vkdnw_fast import benchmarks, metrics
from vkdnw_fast.spaces import nb201

NB201 = benchmarks.get("nb201")

LOG2_3 = math.log2(3)
# scikit-learn's input-type check casts gains near 2^95 to int along the way; harmless here.
SKLEARN_CAST_WARNING = "ignore:invalid value encountered in cast:RuntimeWarning"


def test_kendall_by_hand():
    # 5 concordant pairs, 1 discordant: (5 - 1) / 6
    assert metrics.kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3, abs=1e-12)
    # one tie in the scores: tau-b = (5 - 0) / sqrt((6 - 1) * (6 - 0))
    assert metrics.kendall([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30), abs=1e-12)
    assert metrics.kendall([4, 3, 2, 1], [1, 2, 3, 4]) == pytest.approx(-1.0, abs=1e-12)


def test_spearman_by_hand():
    # rank differences (0, 1, -1, 0): 1 - 6 * 2 / (4 * 15)
    assert metrics.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8, abs=1e-12)
    # ranks (1.5, 1.5, 3, 4) vs (1, 2, 3, 4): covariance 4.5, variances 4.5 and 5
    assert metrics.spearman([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5), abs=1e-12)


def test_ndcg_by_hand():
    # accuracies 1, 2, 3 % give gains 1, 3, 7; the scores rank them 0, 2, 1
    scores, accuracies = [0.3, 0.1, 0.2], [1.0, 2.0, 3.0]
    full = (1 + 7 / LOG2_3 + 3 / 2) / (7 + 3 / LOG2_3 + 1 / 2)
    top_two = (1 + 7 / LOG2_3) / (7 + 3 / LOG2_3)
    assert metrics.ndcg(scores, accuracies, k=3) == pytest.approx(full, rel=1e-12)
    assert metrics.ndcg(scores, accuracies, k=1000) == pytest.approx(full, rel=1e-12)  # k capped at n
    assert metrics.ndcg(scores, accuracies, k=2) == pytest.approx(top_two, rel=1e-12)
    assert metrics.ndcg(scores, accuracies, k=1) == pytest.approx(1 / 7, rel=1e-12)
    assert metrics.ndcg(accuracies, accuracies, k=3) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.filterwarnings(SKLEARN_CAST_WARNING)
@pytest.mark.parametrize("k", [1, 10, 100, 300, 1000])
def test_ndcg_equals_sklearn_without_ties(k):
    rng = np.random.default_rng(3)
    accuracies = rng.uniform(0, 95, size=300)
    scores = accuracies + rng.normal(0, 10, size=300)
    assert len(np.unique(scores)) == 300
    expected = ndcg_score([2**accuracies - 1], [scores], k=k)
    assert metrics.ndcg(scores, accuracies, k=k, seed=11) == pytest.approx(expected, rel=1e-12)


def brute_force_ndcgs(scores, accuracies, k):
    """nDCG@k of every order of the tied scores, by enumerating them."""
    gains = [2.0**a - 1 for a in accuracies]
    ideal = sum(g / math.log2(j + 2) for j, g in enumerate(sorted(gains, reverse=True)[:k]))
    groups = [[i for i in range(len(scores)) if scores[i] == value] for value in sorted(set(scores), reverse=True)]
    values = []
    for group_orders in itertools.product(*(itertools.permutations(group) for group in groups)):
        ranking = [i for order in group_orders for i in order]
        values.append(sum(gains[i] / math.log2(j + 2) for j, i in enumerate(ranking[:k])) / ideal)
    return values


@pytest.mark.filterwarnings(SKLEARN_CAST_WARNING)
@pytest.mark.parametrize("k", [2, 4])
def test_ndcg_with_ties_averages_the_tie_orders(k):
    scores = [5, 5, 5, 1, 1, 0]
    accuracies = [90.0, 94.0, 92.0, 93.0, 80.0, 91.0]
    possible = brute_force_ndcgs(scores, accuracies, k)
    assert len(possible) == 12
    seeds = range(1200)
    observed = [metrics.ndcg(scores, accuracies, k=k, seed=seed) for seed in seeds]
    assert all(min(abs(value - p) for p in possible) < 1e-12 for value in observed)
    assert {round(value, 9) for value in observed} == {round(p, 9) for p in possible}
    exact_mean = float(np.mean(possible))
    standard_error = float(np.std(possible)) / math.sqrt(len(observed))
    assert abs(metrics.ndcg_mean(scores, accuracies, k=k, seeds=seeds) - exact_mean) < 4 * standard_error
    # scikit-learn's tie-averaged gain is that same expectation
    assert ndcg_score([2 ** np.array(accuracies) - 1], [scores], k=k) == pytest.approx(exact_mean, rel=1e-12)
    assert metrics.ndcg(scores, accuracies, k=k, seed=5) == metrics.ndcg(scores, accuracies, k=k, seed=5)


def test_non_finite_or_bad_input_is_refused():
    with pytest.raises(ValueError, match=r"scores has 2 NaN or infinite value\(s\) of 5, at positions \[1, 3\]"):
        metrics.ndcg([1, np.nan, 2, np.inf, 0], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match=r"accuracies has 1 NaN or infinite value\(s\) of 3, at positions \[0\]"):
        metrics.kendall([1, 2, 3], [np.nan, 2, 3])
    with pytest.raises(ValueError, match=r"scores has 1 .*positions \[2\]"):
        metrics.spearman([1, 2, -np.inf], [1, 2, 3])
    with pytest.raises(ValueError, match="3 scores but 2 accuracies"):
        metrics.kendall([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="all scores are equal"):
        metrics.kendall([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="all accuracies are equal"):
        metrics.spearman([1, 2, 3], [4, 4, 4])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.ndcg([1, 2], [1, 2], k=0)
    with pytest.raises(ValueError, match="every accuracy is 0"):
        metrics.ndcg([1, 2], [0, 0], k=2)
    with pytest.raises(ValueError, match="at least one seed"):
        metrics.ndcg_mean([1, 2], [1, 2], seeds=[])


def test_evaluate_ranking_by_hand():
    result = metrics.evaluate_ranking([0.3, 0.1, 0.2], [1.0, 2.0, 3.0], k=3)
    assert set(result) == {"kendall", "spearman", "ndcg"}
    # pairs (0,1) and (0,2) discordant, (1,2) concordant; rank differences (2, -1, -1)
    assert result["kendall"] == pytest.approx(-1 / 3, abs=1e-12)
    assert result["spearman"] == pytest.approx(1 - 6 * 6 / (3 * 8), abs=1e-12)
    assert result["ndcg"] == pytest.approx((1 + 7 / LOG2_3 + 3 / 2) / (7 + 3 / LOG2_3 + 1 / 2), rel=1e-12)


def test_evaluate_ranking_can_report_an_undefined_metric_as_nan():
    constant = [2.0, 2.0, 2.0]
    with pytest.raises(metrics.UndefinedMetricError, match="Kendall's tau is undefined: all scores are equal"):
        metrics.evaluate_ranking(constant, [1.0, 2.0, 3.0], k=3)
    result = metrics.evaluate_ranking(constant, [1.0, 2.0, 3.0], k=3, seeds=(4,), undefined_as_nan=True)
    assert math.isnan(result["kendall"]) and math.isnan(result["spearman"])
    assert result["ndcg"] == metrics.ndcg(constant, [1.0, 2.0, 3.0], k=3, seed=4)  # ties broken at random
    with pytest.raises(ValueError, match="NaN or infinite"):  # bad input stays an error
        metrics.evaluate_ranking([1.0, np.nan, 2.0], [1.0, 2.0, 3.0], undefined_as_nan=True)


def test_aggregate_sums_log_ranks_with_ties_averaged():
    table = {"a": [1.0, 2.0, 2.0, 3.0], "b": [4.0, 3.0, 2.0, 1.0], "c": [-np.inf, 0.0, 5.0, 0.0]}
    # ranks a: 1, 2.5, 2.5, 4; b: 4, 3, 2, 1; c: 1, 2.5, 4, 2.5
    expected_ab = [math.log(1) + math.log(4), math.log(2.5) + math.log(3), math.log(2.5) + math.log(2), math.log(4) + math.log(1)]
    np.testing.assert_allclose(metrics.aggregate(table, ["a", "b"]), expected_ab, rtol=1e-12)
    expected_c = [0.0, math.log(2.5), math.log(4), math.log(2.5)]
    np.testing.assert_allclose(metrics.aggregate(table, ["a", "b", "c"]), np.add(expected_ab, expected_c), rtol=1e-12)
    # anything indexable by column name, e.g. a numpy structured array
    records = np.array(list(zip(table["a"], table["b"])), dtype=[("a", float), ("b", float)])
    np.testing.assert_allclose(metrics.aggregate(records, ["a", "b"]), expected_ab, rtol=1e-12)


def test_aggregate_refuses_bad_tables():
    with pytest.raises(ValueError, match=r"proxy 'a' has 1 NaN value\(s\) of 3, at positions \[1\]"):
        metrics.aggregate({"a": [1, np.nan, 2]}, ["a"])
    with pytest.raises(ValueError, match="no column 'z'"):
        metrics.aggregate({"a": [1, 2]}, ["a", "z"])
    with pytest.raises(ValueError, match="proxy 'b' has 3 values, 'a' has 2"):
        metrics.aggregate({"a": [1, 2], "b": [1, 2, 3]}, ["a", "b"])
    with pytest.raises(ValueError, match="non-empty sequence"):
        metrics.aggregate({"a": [1, 2]}, "a")


def test_model_driven_ranking_learns_a_ranking_and_is_seeded():
    rng = np.random.default_rng(0)
    accuracies = rng.uniform(50, 95, size=1300)
    features = np.column_stack([accuracies + rng.normal(0, 1, size=1300), rng.normal(size=1300)])
    test_index, predicted = metrics.model_driven_ranking(features, accuracies, train_size=1024, seed=0)
    assert len(test_index) == len(predicted) == 276
    assert np.all(np.diff(test_index) > 0)
    # the feature is accuracy + N(0, 1) noise, so the forest ranks well but not perfectly
    assert 0.85 < metrics.kendall(predicted, accuracies[test_index]) < 0.99
    again_index, again = metrics.model_driven_ranking(features, accuracies, train_size=1024, seed=0)
    assert np.array_equal(again_index, test_index) and np.array_equal(again, predicted)
    other_index, _ = metrics.model_driven_ranking(features, accuracies, train_size=1024, seed=1)
    assert not np.array_equal(other_index, test_index)
    with pytest.raises(ValueError, match=r"features has 1 NaN or infinite value\(s\), in columns \[1\], first at row 5"):
        bad = features.copy()
        bad[5, 1] = -np.inf
        metrics.model_driven_ranking(bad, accuracies)
    with pytest.raises(ValueError, match="train_size must be in 1..1299"):
        metrics.model_driven_ranking(features, accuracies, train_size=1300)


# ---------------------------------------------------------------- docs/method.md §5 calibration

DATASET_COLUMNS = {"cifar10": "C10", "cifar100": "C100", "ImageNet16-120": "IN16"}
# (proxy, set) -> {dataset: (KT, SPR, nDCG@1000)}, from docs/method.md §5
CALIBRATION = {
    ("flops", "unique"): {"C10": (0.623, 0.799, 0.745), "C100": (0.588, 0.764, 0.576), "IN16": (0.547, 0.718, 0.401)},
    ("aleph", "unique"): {"C10": (0.626, 0.767, 0.671), "C100": (0.646, 0.787, 0.524), "IN16": (0.623, 0.764, 0.505)},
    ("flops", "all"): {"C10": (0.578, 0.753, 0.729), "C100": (0.553, 0.728, 0.563), "IN16": (0.520, 0.691, 0.387)},
    ("aleph", "all"): {"C10": (0.580, 0.723, 0.647), "C100": (0.594, 0.737, 0.497), "IN16": (0.574, 0.716, 0.480)},
}
NDCG_TOLERANCE = {"flops": 0.005, "aleph": 0.015}  # ℵ has 7 distinct values: nDCG moves with tie order


@functools.lru_cache(maxsize=None)
def proxy_scores(proxy: str, dataset: str) -> np.ndarray:
    """The proxy for every cell in NATS index order."""
    if proxy == "flops":
        return np.array([nb201.flops(arch, dataset) for arch in nb201.archs()])
    return np.array([nb201.aleph(arch, "layers") for arch in nb201.archs()], dtype=float)


@pytest.mark.parametrize("proxy, subset", list(CALIBRATION))
@pytest.mark.parametrize("dataset", list(DATASET_COLUMNS))
def test_calibration_table(proxy, subset, dataset):
    indices = nb201.subset_indices(subset)
    scores = proxy_scores(proxy, dataset)[indices]
    result = metrics.evaluate_ranking(scores, NB201.values(nb201.archs(subset), dataset), k=1000, seeds=range(5))
    kendall, spearman, ndcg = CALIBRATION[(proxy, subset)][DATASET_COLUMNS[dataset]]
    assert result["kendall"] == pytest.approx(kendall, abs=0.002)
    assert result["spearman"] == pytest.approx(spearman, abs=0.002)
    assert result["ndcg"] == pytest.approx(ndcg, abs=NDCG_TOLERANCE[proxy])


def test_both_alephs_rank_alike():
    layers = proxy_scores("aleph", "cifar10")
    tensors = np.array([nb201.aleph(arch, "parameter_tensors") for arch in nb201.archs()], dtype=float)
    np.testing.assert_array_equal(tensors, 21 + 3 * (layers - 8))  # an increasing affine map
    assert len(np.unique(layers[nb201.subset_indices("unique")])) == 7
