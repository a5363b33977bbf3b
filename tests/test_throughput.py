"""The throughput benchmark's bookkeeping: same architectures, agreement with direct scoring and
with the reference, stage times that account for the work."""
from __future__ import annotations

import json

import pytest

from vkdnw_fast import cli, throughput
from vkdnw_fast.scoring import score_architecture
from vkdnw_fast.spaces import nb201


def test_throughput_run_on_cpu_agrees_with_direct_scoring():
    result = throughput.run("nb201", "cifar10", count=2, reference_count=1, device="cpu", seed=3, batch_size=8)
    archs = throughput.sample_archs(nb201.NB201Space("cifar10"), 2, 3)
    engine, with_proxies, ref = result["runs"]
    direct = [score_architecture(nb201.NB201Space("cifar10"), a, ["vkdnw"], seed=3, batch_size=8,
                                  presets=(throughput.BENCHMARK_PRESET,))["vkdnw"]
              for a in archs]
    assert engine["values"] == pytest.approx(direct, abs=1e-12)
    assert with_proxies["values"] == pytest.approx(direct, abs=1e-12)
    assert result["max_abs_difference_engine_reference"] < 1e-4
    assert engine["archs_per_minute"] == pytest.approx(60 * 2 / engine["seconds"])
    stages = engine["stage_seconds_per_arch"]
    assert {"build_overlapped", "prepare", "proxy:vkdnw", "forward", "backward", "spectrum"} <= set(stages)
    assert stages["forward"] + stages["backward"] <= stages["proxy:vkdnw"] <= engine["seconds"] / 2
    assert "proxy:jacov" in with_proxies["stage_seconds_per_arch"]
    assert "reference_jacobian" in ref["stage_seconds_per_arch"]
    assert result["engine_over_reference"] == pytest.approx(engine["archs_per_minute"] / ref["archs_per_minute"])


def test_throughput_cli_prints_and_saves(tmp_path, capsys):
    out = tmp_path / "tp.json"
    assert cli.main(["bench", "throughput", "--space", "mbv2", "--resolution", "32", "--count", "1",
                     "--reference-count", "1", "--batch-size", "4", "--preset", "exact", "--device", "cpu",
                     "--out", str(out)]) == 0
    assert "archs/min" in capsys.readouterr().out
    saved = json.loads(out.read_text())
    assert saved["space"] == "mbv2" and saved["command"].startswith("vkdnw-fast bench throughput --space mbv2 ")
