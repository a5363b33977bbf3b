"""Ground truth as objects: the NAS-Bench-201 benchmark on the bundled table and through the NATS-Bench
API, its registry, and the errors for what it does not have."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from vkdnw_fast import benchmarks
from vkdnw_fast.benchmarks.nb201 import NB201Benchmark, compare_with_nats
from vkdnw_fast.data import nb201_table
from vkdnw_fast.spaces import nb201

MIXED = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
BUNDLED = NB201Benchmark()


def test_accuracy_known_values():
    # Maxima recorded in data/README.md (NATS-Bench 200-epoch test accuracy, mean over seeds).
    archs = nb201.archs()
    assert BUNDLED.value(archs[6111], "cifar10") == pytest.approx(94.3733, abs=1e-4)
    assert BUNDLED.value(archs[13714], "cifar10") == pytest.approx(94.3733, abs=1e-4)
    assert BUNDLED.value(archs[9930], "cifar100") == pytest.approx(73.5133, abs=1e-4)
    assert BUNDLED.value(archs[857], "ImageNet16-120") == pytest.approx(47.3111, abs=1e-4)
    assert BUNDLED.value(archs[857], "imagenet16") == BUNDLED.value(archs[857], "ImageNet16-120")
    assert BUNDLED.value(archs[1], "cifar10") == pytest.approx(93.66)
    unique = BUNDLED.values(nb201.archs("unique"), "cifar100")
    assert len(unique) == 9444
    assert unique[:5].tolist() == [BUNDLED.value(arch, "cifar100") for arch in nb201.archs("unique")[:5]]


def test_the_other_metrics_are_the_published_ones():
    # Cell 0 at 12 epochs as the NATS-Bench API's own files have it (tests/test_benchmarks_nats.py reads
    # them through the package): cifar10-valid 63.364 (mean of 62.712 and 64.016), test 69.55.
    cell = nb201.archs()[0]
    assert BUNDLED.value(cell, "cifar10", "valid@12") == pytest.approx(63.364, abs=1e-6)
    assert BUNDLED.value(cell, "cifar10", "test@12") == pytest.approx(69.55, abs=1e-6)
    # valid@200: CIFAR-10's cifar10-valid mean over seeds, the others NASLib's single-seed values.
    assert BUNDLED.value(cell, "cifar10", "valid@200") == nb201_table()["cifar10valid_valid_nb201"][0]
    assert BUNDLED.value(cell, "cifar100", "valid@200") == pytest.approx(53.67999999, abs=1e-8)
    assert BUNDLED.value(nb201.archs()[1], "imagenet16", "valid@12") == pytest.approx(35.43333335, abs=1e-8)


def test_what_the_benchmark_has():
    assert benchmarks.available() == ["nats_sss", "nb101", "nb201", "tnb_macro", "tnb_micro"]
    benchmark = benchmarks.get("nb201")
    assert isinstance(benchmark, NB201Benchmark) and benchmark.name == "nb201" and benchmark.space == "nb201"
    assert benchmark.archs() == nb201.archs("all")
    assert benchmark.datasets() == ("cifar10", "cifar100", "ImageNet16-120")
    assert benchmark.metrics("imagenet16") == ("test@200", "valid@200", "valid@12", "test@12")
    assert benchmark.default_metric == "test@200"
    # any valid form of a cell; the values in the order asked, as float64
    permuted = "|nor_conv_3x3~0|+|avg_pool_3x3~1|none~0|+|nor_conv_1x1~2|skip_connect~0|none~1|"
    picked = [nb201.archs()[i] for i in (42, 7, 15000)] + [permuted]
    values = benchmark.values(picked, "cifar10", "test@200")
    assert values.dtype == np.float64
    table = nb201_table()["cifar10_test"]
    assert values.tolist() == [table[42], table[7], table[15000], table[nb201.index_of(MIXED)]]
    assert benchmark.value(permuted, "cifar10") == values[-1]


@pytest.mark.parametrize("call, message", [
    (lambda b: b.value(MIXED, "mnist"), "unknown dataset 'mnist'"),
    (lambda b: b.value(MIXED, "cifar10", "valid@90"),
     r"no metric 'valid@90' for cifar10; it has \['test@200', 'valid@200', 'valid@12', 'test@12'\]"),
    (lambda b: b.value(MIXED, "cifar10", "test"), "a metric is named '<split>@<epochs>'"),
    (lambda b: b.values([MIXED, "|none~0|"], "cifar10"), "expected 3 nodes"),
])
def test_what_it_does_not_have_is_named(call, message):
    with pytest.raises(ValueError, match=message):
        call(BUNDLED)


def test_registry_errors():
    with pytest.raises(ValueError, match=r"unknown benchmark 'nb301'; benchmarks are \['nats_sss', 'nb101', 'nb201', 'tnb_macro', 'tnb_micro'\]"):
        benchmarks.get("nb301")
    with pytest.raises(ValueError, match="bad arguments for the nb201 benchmark: .*'path'"):
        benchmarks.get("nb201", path="/data")


def test_parse_metric():
    assert benchmarks.parse_metric("valid@12") == ("valid", 12)
    for bad in ("test", "test@", "@200", "test@0", "Test@200", 200):
        with pytest.raises(ValueError, match="'<split>@<epochs>'"):
            benchmarks.parse_metric(bad)


class FakeNatsAPI:
    def __init__(self, path, offset_at):
        self.path, self.offset_at, self.queries = path, offset_at, []

    def get_more_info(self, index, dataset, hp, is_random):
        self.queries.append((index, dataset, hp, is_random))
        column = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "ImageNet16-120": "imagenet16_test"}[dataset]
        value = float(nb201_table()[column][index])
        return {"test-accuracy": value + (0.5 if (index, dataset) == self.offset_at else 0.0)}


@pytest.fixture
def fake_nats(monkeypatch, tmp_path):
    """A stand-in ``nats_bench`` module whose API returns the CSV values, except +0.5 at (7, cifar100),
    over API files in ``tmp_path`` (fast mode's layout, empty) for the indices 0..19."""
    created = []
    for index in range(20):
        (tmp_path / f"{index:06d}.pickle.pbz2").touch()

    def create(path, search_space, fast_mode, verbose):
        assert search_space == "tss"
        created.append(FakeNatsAPI(path, offset_at=(7, "cifar100")))
        return created[-1]

    monkeypatch.setitem(sys.modules, "nats_bench", types.SimpleNamespace(create=create))
    return created


def test_accuracy_through_the_nats_api(fake_nats, tmp_path):
    arch = nb201.archs()[7]
    official = benchmarks.get("nb201", nats_path=tmp_path)
    assert official.value(arch, "cifar100") == BUNDLED.value(arch, "cifar100") + 0.5
    assert fake_nats[0].path == str(tmp_path)
    assert fake_nats[0].queries == [(7, "cifar100", "200", False)]
    assert official.value(arch, "imagenet16") == float(nb201_table()["imagenet16_test"][7])
    assert len(fake_nats) == 1  # the API files are opened once per benchmark
    assert BUNDLED.value(arch, "cifar100") == float(nb201_table()["cifar100_test"][7])
    mismatches = compare_with_nats(tmp_path, indices=range(20))
    csv_value = float(nb201_table()["cifar100_test"][7])
    assert mismatches == [(7, "cifar100", csv_value, csv_value + 0.5)]
    assert compare_with_nats(tmp_path, datasets=["cifar10", "ImageNet16-120"], indices=range(20)) == []


def test_missing_nats_bench_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "nats_bench", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install .vkdnw_fast\[nats\]. \(or nats_bench\)"):
        NB201Benchmark(nats_path=tmp_path / "missing").value(MIXED, "cifar10")
