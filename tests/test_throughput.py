"""The throughput benchmark's bookkeeping: same architectures, agreement with direct scoring and
with the reference, stage times that account for the work."""
from __future__ import annotations

import json

import pytest

from vkdnw_fast import cli, throughput
from vkdnw_fast.scoring import score_architecture
from vkdnw_fast.spaces import nb201


def _runs(result):
    return {run_["label"]: run_ for run_ in result["runs"]}


def test_throughput_run_on_cpu_agrees_with_direct_scoring():
    result = throughput.run("nb201", "cifar10", count=2, reference_count=1, device="cpu", seed=3, batch_size=8)
    archs = throughput.sample_archs(nb201.NB201Space("cifar10"), 2, 3)
    runs = _runs(result)
    engine, with_proxies = runs["engine: vkdnw"], runs["engine: vkdnw + aggregation proxies"]
    ref = runs["reference torch.func: vkdnw"]
    direct = [score_architecture(nb201.NB201Space("cifar10"), a, ["vkdnw"], seed=3, batch_size=8,
                                  presets=(throughput.BENCHMARK_PRESET,))["vkdnw"]
              for a in archs]
    assert engine["values"] == pytest.approx(direct, abs=1e-12)
    assert with_proxies["values"] == pytest.approx(direct, abs=1e-12)
    assert ref["values"] == pytest.approx(direct[:1], abs=1e-4)
    assert result["max_abs_difference_engine_reference"] == pytest.approx(abs(direct[0] - ref["values"][0]), abs=1e-12)
    assert not result["interrupted"] and engine["count"] == engine["of"] == 2 and ref["count"] == 1
    assert engine["archs_per_minute"] == pytest.approx(60 * 2 / engine["seconds"])
    stages = engine["stage_seconds_per_arch"]
    assert {"build_overlapped", "prepare", "proxy:vkdnw", "forward", "backward", "spectrum"} <= set(stages)
    # The stage times come from their own pass over the first architectures; within it they nest.
    assert stages["forward"] + stages["backward"] <= stages["proxy:vkdnw"]
    assert engine["stage_archs"] == 2
    assert "proxy:jacov" in with_proxies["stage_seconds_per_arch"]
    assert "reference_jacobian" in ref["stage_seconds_per_arch"]
    assert result["engine_over_reference"] == pytest.approx(engine["archs_per_minute"] / ref["archs_per_minute"])


def test_a_worker_pool_scores_the_same_networks_to_the_same_bits(capsys):
    result = throughput.run("nb201", "cifar10", count=3, reference_count=1, device="cpu", seed=3, batch_size=8,
                            with_aggregation=False, workers=2)
    runs = _runs(result)
    pooled, engine = runs["engine: vkdnw, 2 workers"], runs["engine: vkdnw"]
    assert pooled["values"] == engine["values"] and pooled["count"] == 3 and pooled["workers"] == 2
    assert result["max_abs_difference_pooled_in_process"] == 0.0
    assert result["pooled_over_in_process"] == pytest.approx(pooled["archs_per_minute"] / engine["archs_per_minute"])
    assert "worker pool / in process:" in throughput.format_report(result)
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        throughput.run("nb201", count=1, reference_count=1, device="cpu", workers=0)


def test_a_stop_reports_what_was_measured_and_skips_the_remaining_runs(monkeypatch, tmp_path, capsys):
    """SIGTERM from a time limit arrives as KeyboardInterrupt (cli.terminate_as_interrupt)."""
    calls = []
    real = throughput.score_architecture

    def stopping(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 7:  # the engine's stage pass (its 4 architectures), then 2 of them timed
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(throughput, "score_architecture", stopping)
    out = tmp_path / "tp.json"
    code = cli.main(["bench", "throughput", "--count", "4", "--reference-count", "1", "--batch-size", "4",
                     "--device", "cpu", "--out", str(out)])
    assert code == 130
    assert "stopped after 2 of 4" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    runs = _runs(saved)
    assert saved["interrupted"] and list(runs) == ["reference torch.func: vkdnw", "engine: vkdnw"]
    engine = runs["engine: vkdnw"]
    assert engine["interrupted"] and engine["count"] == 2 and engine["of"] == 4 and len(engine["values"]) == 2
    assert engine["archs_per_minute"] == pytest.approx(60 * 2 / engine["seconds"])
    assert saved["max_abs_difference_engine_reference"] < 1e-4


def test_reference_count_must_lie_within_the_sample():
    with pytest.raises(ValueError, match="reference_count must lie in 1..2, got 3"):
        throughput.run("nb201", "cifar10", count=2, reference_count=3, device="cpu")


def test_throughput_cli_prints_and_saves(tmp_path, capsys):
    out = tmp_path / "tp.json"
    assert cli.main(["bench", "throughput", "--space", "mbv2", "--resolution", "32", "--count", "1",
                     "--reference-count", "1", "--batch-size", "4", "--preset", "exact", "--device", "cpu",
                     "--out", str(out)]) == 0
    assert "archs/min" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["space"] == "mbv2" and saved["command"].startswith("vkdnw-fast bench throughput --space mbv2 ")


def test_throughput_without_aggregation_compares_the_vkdnw_run_with_the_reference():
    result = throughput.run("nb201", "cifar10", count=2, reference_count=1, device="cpu", seed=3, batch_size=8,
                            with_aggregation=False)
    assert list(_runs(result)) == ["reference torch.func: vkdnw", "engine: vkdnw"]
    ref, engine = result["runs"]
    assert result["max_abs_difference_engine_reference"] == pytest.approx(abs(engine["values"][0] - ref["values"][0]))
    assert result["max_abs_difference_engine_reference"] < 1e-4
    assert result["engine_over_reference"] == pytest.approx(engine["archs_per_minute"] / ref["archs_per_minute"])
