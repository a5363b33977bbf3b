"""NATS-Bench through the real ``nats_bench`` package, on its own API files for indices 0, 11, 284
of the size (SSS) and topology (TSS = NAS-Bench-201) spaces: accuracies, and the builders' sizes
against the package's ``get_cost_info``."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from nats_bench import create

from vkdnw_fast.benchmarks.nats import NATSBenchmark
from vkdnw_fast.benchmarks.nb201 import compare_with_nats
from vkdnw_fast.data import nb201_table
from vkdnw_fast.proxies.size import count_macs
from vkdnw_fast.spaces import nats_sss, nb201

DATA = Path(__file__).parent / "data"
SSS_PATH, TSS_PATH = DATA / "NATS-sss-v1_0-50262-simple", DATA / "NATS-tss-v1_0-3ffb9-simple"
INDICES = (0, 11, 284)
DATASETS = {"cifar10": (32, 10), "cifar100": (32, 100), "ImageNet16-120": (16, 120)}
TABLE_COLUMNS = {"cifar10": "cifar10_test", "cifar100": "cifar100_test", "ImageNet16-120": "imagenet16_test"}


@pytest.fixture(scope="module")
def sss_api():
    return create(str(SSS_PATH), "sss", fast_mode=True, verbose=False)


@pytest.fixture(scope="module")
def tss_api():
    return create(str(TSS_PATH), "tss", fast_mode=True, verbose=False)


def test_indices_and_strings_agree_with_the_package(sss_api, tss_api):
    for index in INDICES:
        assert sss_api.arch(index) == nats_sss.arch_of(index)
        assert sss_api.query_index_by_arch(nats_sss.arch_of(index)) == nats_sss.index_of(sss_api.arch(index)) == index
        assert tss_api.arch(index) == nb201.archs()[index]
        assert nb201.index_of(tss_api.arch(index)) == index
    assert sss_api.get_net_config(0, "cifar10")["genotype"] == nats_sss.GENOTYPE
    assert sss_api.get_net_config(284, "cifar10")["channels"] == "8:8:40:32:40"


@pytest.mark.parametrize("index", INDICES)
@pytest.mark.parametrize("dataset", DATASETS)
def test_sss_sizes_equal_the_packages(sss_api, index, dataset):
    """params (M) = ours / 1e6; flops (M) = (ours + num_classes) / 1e6: NATS's counter adds the
    classifier's bias additions to the conv + linear multiply-accumulates."""
    side, classes = DATASETS[dataset]
    arch = nats_sss.arch_of(index)
    cost = sss_api.get_cost_info(index, dataset)
    model = nats_sss.SSSNetwork(arch, classes)
    assert round(cost["params"] * 1e6) == nats_sss.params(arch, dataset) == sum(p.numel() for p in model.parameters())
    assert cost["flops"] * 1e6 == pytest.approx(nats_sss.flops(arch, dataset) + classes, abs=1e-3)
    assert nats_sss.flops(arch, dataset) == count_macs(model.eval(), torch.randn(1, 3, side, side))


@pytest.mark.parametrize("index", INDICES)
@pytest.mark.parametrize("dataset", DATASETS)
def test_tss_sizes_equal_the_packages(tss_api, index, dataset):
    """The same relation for NAS-Bench-201's network and its conv + linear MAC count."""
    _, classes = DATASETS[dataset]
    arch = nb201.archs()[index]
    cost = tss_api.get_cost_info(index, dataset)
    model = nb201.NB201Network(arch, classes)
    assert round(cost["params"] * 1e6) == nb201.params(arch, dataset) == sum(p.numel() for p in model.parameters())
    assert cost["flops"] * 1e6 == pytest.approx(nb201.flops(arch, dataset) + classes, abs=1e-3)


def test_sss_accuracies_read_through_the_package():
    benchmark = NATSBenchmark(SSS_PATH)
    assert (benchmark.space, benchmark.default_metric) == ("nats_sss", "test@90")
    assert benchmark.datasets() == ("cifar10", "cifar100", "ImageNet16-120")
    assert benchmark.metrics("cifar100") == ("test@12", "valid@12", "test@90", "valid@90")
    archs = [nats_sss.arch_of(i) for i in INDICES]
    expected = {  # get_more_info(i, dataset, hp, is_random=False): mean over the seeds, %
        ("cifar10", "test@90"): [79.79, 85.77, 89.51],
        ("cifar10", "valid@90"): [76.888, 83.724, 86.796],  # cifar10-valid, x-valid
        ("cifar100", "test@90"): [32.30, 53.68, 62.70],
        ("cifar100", "valid@90"): [32.24, 54.46, 62.78],
        ("ImageNet16-120", "test@90"): [15.5333333, 25.4666666, 32.7666666],
        ("ImageNet16-120", "valid@12"): [14.1444444, 20.7222222, 26.8888889],
        ("cifar10", "test@12"): [71.72, 79.8133333, 84.1966667],
    }
    for (dataset, metric), values in expected.items():
        np.testing.assert_allclose(benchmark.values(archs, dataset, metric), values, atol=1e-6)
    assert benchmark.value("8:8:8:16:32", "imagenet16") == pytest.approx(25.4666666, abs=1e-6)


def test_tss_accuracies_through_the_package_equal_the_bundled_table():
    benchmark = NATSBenchmark(TSS_PATH, "tss")
    assert (benchmark.space, benchmark.default_metric) == ("nb201", "test@200")
    archs = [nb201.archs()[i] for i in INDICES]
    table = nb201_table()
    for dataset, column in TABLE_COLUMNS.items():
        np.testing.assert_allclose(benchmark.values(archs, dataset), table[column][list(INDICES)], atol=1e-6)
    np.testing.assert_allclose(benchmark.values(archs, "cifar10", "valid@200"),
                               table["cifar10valid_valid_nb201"][list(INDICES)], atol=1e-6)
    np.testing.assert_allclose(benchmark.values(archs, "cifar10"), [85.8633333, 91.5833333, 88.79], atol=1e-6)
    np.testing.assert_allclose(benchmark.values(archs, "cifar10", "valid@12"), [63.364, 63.278, 72.876], atol=1e-6)
    # NB201's benchmark reads these files through the same class, and the bundled table agrees.
    assert compare_with_nats(TSS_PATH, indices=INDICES) == []


def test_bad_queries_say_what_is_wrong(monkeypatch):
    with pytest.raises(ValueError, match="unknown NATS-Bench search space 'size'; use one of \\['sss', 'tss'\\]"):
        NATSBenchmark(SSS_PATH, "size")
    benchmark = NATSBenchmark(SSS_PATH)
    with pytest.raises(ValueError, match="no metric 'test@200' for cifar10; it has \\['test@12', 'valid@12', 'test@90', 'valid@90'\\]"):
        benchmark.value("8:8:8:8:8", "cifar10", "test@200")
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        benchmark.value("8:8:8:8:8", "svhn")
    with pytest.raises(ValueError, match="position 0 is '7'"):
        benchmark.value("7:8:8:8:8", "cifar10")
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ImportError, match="pip install 'vkdnw_fast\\[nats\\]'"):
        NATSBenchmark(SSS_PATH).value("8:8:8:8:8", "cifar10")


def test_a_partial_api_folder_is_evaluated_on_what_it_holds():
    """The fixture holds 3 of the 32,768 configurations: an evaluation ranks those, not the whole space."""
    from vkdnw_fast.evaluation import EvaluationSpec

    benchmark = NATSBenchmark(SSS_PATH)
    assert not benchmark.complete() and benchmark.space_size == 32768
    spec = EvaluationSpec(space="nats_sss", proxies=("params",), seeds=(0,))
    assert spec.archs(benchmark) == [nats_sss.arch_of(i) for i in INDICES]
