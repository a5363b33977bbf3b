"""NAS-Bench-101 ground truth: the bundled 500-row subset (NASLib's encoding) and NASLib's pickle format."""
from __future__ import annotations

import ast
import csv
import gzip
import pickle
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from vkdnw_fast.benchmarks.nb101 import SUBSET_CSV, NB101Benchmark
from vkdnw_fast.spaces import nb101

FIXTURE = Path(__file__).parent / "data" / "nb101_30cells_108epochs.pkl"


@pytest.fixture(scope="module")
def rows() -> list[tuple[tuple[int, ...], float]]:
    with gzip.open(SUBSET_CSV, "rt", newline="") as handle:
        return [(ast.literal_eval(row["arch"]), float(row["val_accuracy"])) for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def records() -> dict:
    with open(FIXTURE, "rb") as handle:
        return pickle.load(handle)


def test_every_subset_row_decodes_to_a_valid_cell(rows):
    assert len(rows) == 500
    archs = [nb101.from_naslib(encoding) for encoding, _ in rows]  # raises on any invalid row
    assert len({nb101.spec_hash(arch) for arch in archs}) == 292
    assert archs.count("01.00|") == 55  # input wired straight to the output, every other vertex pruned


def test_rows_of_one_cell_are_draws_among_its_three_runs(rows):
    """NASLib's query returns one of a cell's 3 runs at random, so the rows sharing a hash hold at most
    3 distinct accuracies; a wrong decoding or hash would merge different cells and break this."""
    by_cell = defaultdict(set)
    for encoding, accuracy in rows:
        by_cell[nb101.spec_hash(nb101.from_naslib(encoding))].add(accuracy)
    assert max(len(values) for values in by_cell.values()) == 3


def test_naslib_op_codes_agree_with_the_benchmark_records(rows, records):
    """One subset cell is also a fixture record (found by the hash, which depends on the ops): its
    row is exactly one of the record's runs (final_validation_accuracy, %)."""
    shared = [(encoding, accuracy) for encoding, accuracy in rows
              if nb101.spec_hash(nb101.from_naslib(encoding)) in records]
    assert len(shared) == 1
    encoding, accuracy = shared[0]
    runs = records[nb101.spec_hash(nb101.from_naslib(encoding))][1][108]
    assert min(abs(accuracy - 100 * run["final_validation_accuracy"]) for run in runs) < 1e-6
    assert accuracy == pytest.approx(93.28926206)


def test_bundled_subset_values_are_the_mean_of_each_cells_rows(rows):
    benchmark = NB101Benchmark()
    assert (benchmark.name, benchmark.space, benchmark.default_metric) == ("nb101", "nb101", "valid@108")
    assert benchmark.datasets() == ("cifar10",) and benchmark.metrics("cifar10") == ("valid@108",)
    archs = benchmark.archs()
    assert len(archs) == 292 and len({nb101.spec_hash(arch) for arch in archs}) == 292
    assert all(nb101.canonical(arch) == arch for arch in archs)
    trivial = [accuracy for encoding, accuracy in rows if nb101.from_naslib(encoding) == "01.00|"]
    assert benchmark.value("01.00|", "cifar10") == pytest.approx(np.mean(trivial)) == pytest.approx(83.387056264)
    values = benchmark.values(archs, "cifar10")
    assert values.shape == (292,) and values.max() == pytest.approx(94.71153617)


def test_isomorphic_strings_find_the_same_record():
    benchmark = NB101Benchmark()
    a = "01110.00001.00001.00001.00000|conv3x3-bn-relu,maxpool3x3,maxpool3x3"
    b = "01110.00001.00001.00001.00000|maxpool3x3,maxpool3x3,conv3x3-bn-relu"
    assert a != b and benchmark.value(a, "cifar10") == benchmark.value(b, "cifar10")


def test_bad_queries_say_what_is_wrong():
    benchmark = NB101Benchmark()
    with pytest.raises(ValueError, match="one dataset, 'cifar10'; got 'cifar100'"):
        benchmark.values(["01.00|"], "cifar100")
    with pytest.raises(ValueError, match="no metric 'test@108' for cifar10; it has \\['valid@108'\\]"):
        benchmark.value("01.00|", "cifar10", "test@108")
    missing = "0100000.0010000.0001000.0000100.0000010.0000001.0000000|" + ",".join(["conv3x3-bn-relu"] * 5)
    with pytest.raises(ValueError, match=f"hash {nb101.spec_hash(missing)}\\) is not in the nb101 benchmark's bundled subset"):
        benchmark.value(missing, "cifar10")


def test_naslib_pickle_means_over_runs(records):
    benchmark = NB101Benchmark(FIXTURE)
    assert benchmark.metrics("cifar10") == ("valid@108", "test@108")
    archs = benchmark.archs()
    assert [nb101.spec_hash(arch) for arch in archs] == list(records)
    for arch, (_, computed) in zip(archs, records.values()):
        runs = computed[108]
        assert len(runs) == 3
        assert benchmark.value(arch, "cifar10") == pytest.approx(100 * np.mean([r["final_validation_accuracy"] for r in runs]))
        assert benchmark.value(arch, "cifar10", "test@108") == pytest.approx(100 * np.mean([r["final_test_accuracy"] for r in runs]))
    first = records["ff92c322c5d9d3d587d9c146a63d0807"][1][108]
    assert [r["final_validation_accuracy"] for r in first] == pytest.approx([0.92558092, 0.92798477, 0.92467946])
    assert benchmark.values([archs[0]], "cifar10")[0] == pytest.approx(92.6081728)
