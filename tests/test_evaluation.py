"""The NB201 evaluation driver: resumable store, seeded samples, metrics against direct
computations, and the command line."""
from __future__ import annotations

import dataclasses
import functools
import gzip
import importlib
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

import vkdnw_fast as vf
from vkdnw_fast import benchmarks, cli, evaluation, metrics, spaces
from vkdnw_fast.backends import Job
from vkdnw_fast.runs import DirectoryInUseError, DirectoryLock
from vkdnw_fast.scoring import score_architecture
from vkdnw_fast.evaluation import EvaluationSpec, ResultStore, compute_metrics, run_evaluation
from vkdnw_fast.spaces import nb201

NB201 = benchmarks.get("nb201")


def test_store_appends_reloads_and_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultStore(path, DirectoryLock(tmp_path, "test")) as store:
        store.append({"arch": "a", "seed": 0, "values": {"x": 1.0}})
        store.append({"arch": "b", "seed": 0, "values": {"x": 2.0}})
    with open(path, "a") as handle:
        handle.write('{"arch": "c", "seed": 0, "val')      # a crash in the middle of a write
    assert set(ResultStore(path).records) == {("a", 0), ("b", 0)}
    assert path.read_text().count("\n") == 2                 # a reader leaves the file alone (a write may be under way)
    with ResultStore(path, DirectoryLock(tmp_path, "test")) as reopened:
        assert set(reopened.records) == {("a", 0), ("b", 0)}
        assert path.read_text().count("\n") == 2 and path.read_text().endswith("}\n")  # the writer drops it
        reopened.append({"arch": "c", "seed": 0, "values": {"x": 3.0}})
    assert ResultStore(path).records[("c", 0)]["values"] == {"x": 3.0}


def test_a_store_opened_for_reading_refuses_to_write(tmp_path):
    with pytest.raises(RuntimeError, match="opened for reading"):
        ResultStore(tmp_path / "results.jsonl").append({"arch": "a", "seed": 0, "values": {}})


def test_a_second_writer_of_an_evaluation_directory_is_refused_by_name(tmp_path):
    spec = _cheap_spec(limit=2, seeds=(0,))
    with evaluation.open_results(tmp_path, spec) as store:
        with pytest.raises(DirectoryInUseError, match=rf"{tmp_path} is being written by another evaluation "
                                                      rf"\(pid {os.getpid()}\)"):
            run_evaluation(spec, tmp_path, progress=False)
        assert cli.main(["evaluate", "--space", "nb201", "--dataset", "cifar10", "--proxies", "flops",
                         "--limit", "2", "--seeds", "1", "--out", str(tmp_path), "--quiet"]) == 2
        assert not (tmp_path / "results.jsonl").exists() and store.records == {}
    # released: the same evaluation now runs, and a finished run releases the directory in turn
    run_evaluation(spec, tmp_path, progress=False)
    assert len(ResultStore(tmp_path / "results.jsonl").records) == 2
    evaluation.open_results(tmp_path, spec).close()


def test_seeded_sample_is_reproducible_sorted_and_from_the_subset():
    spec = EvaluationSpec(proxies=("flops",), limit=50, sample_seed=7)
    sample = spec.archs()
    assert sample == EvaluationSpec(proxies=("flops",), limit=50, sample_seed=7).archs()
    assert sample != EvaluationSpec(proxies=("flops",), limit=50, sample_seed=8).archs()
    assert len(set(sample)) == 50 and set(sample) <= set(nb201.archs("unique"))
    indices = [nb201.index_of(a) for a in sample]
    assert indices == sorted(indices)
    assert len(EvaluationSpec(proxies=("flops",), limit=10**6).archs()) == 9444


def test_spec_rejects_bad_fields():
    with pytest.raises(ValueError, match="unknown proxies"):
        EvaluationSpec(proxies=("flopz",))
    with pytest.raises(ValueError, match="presets"):
        EvaluationSpec(proxies=("flops",), presets=("fast",))
    with pytest.raises(ValueError, match="unknown dataset"):
        EvaluationSpec(dataset="mnist", proxies=("flops",))


def _cheap_spec(**fields):
    return EvaluationSpec(**{"proxies": ("flops", "params", "naswot"), "limit": 6, "sample_seed": 3,
                             "seeds": (0, 1), **fields})


def _count_scorings(monkeypatch) -> list:
    """The (architecture, seed) pairs the evaluation scores from now on, appended as it scores them."""
    calls = []

    def counting_scorer(space, arch, proxies, *, seed, **kwargs):
        calls.append((arch, seed))
        return score_architecture(space, arch, proxies, seed=seed, **kwargs)
    monkeypatch.setattr(evaluation.run, "Job", functools.partial(Job, scorer=counting_scorer))
    return calls


def test_resume_computes_only_what_is_missing_and_gives_the_same_metrics(tmp_path, monkeypatch):
    spec = _cheap_spec()
    full = run_evaluation(spec, tmp_path / "full", progress=False)
    lines = (tmp_path / "full" / "results.jsonl").read_text().splitlines()
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "run.json").write_text(json.dumps(spec.to_json()))
    (partial / "results.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])  # crash mid-line
    calls = _count_scorings(monkeypatch)
    resumed = run_evaluation(spec, partial, progress=False)
    assert len(calls) == len(lines) - 5
    assert set(calls).isdisjoint({(json.loads(line)["arch"], json.loads(line)["seed"]) for line in lines[:5]})
    assert resumed["rankings"] == full["rankings"]


def test_a_checkpoint_carries_an_unfinished_run_into_a_fresh_clone(tmp_path, monkeypatch):
    spec = _cheap_spec()
    full = run_evaluation(spec, tmp_path / "full", progress=False)
    lines = (tmp_path / "full" / "results.jsonl").read_text().splitlines()
    runs, checkpoints = tmp_path / "runs", tmp_path / "checkpoints"
    run = runs / "tnb" / "unfinished"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps(spec.to_json()))
    (run / "results.jsonl").write_text("\n".join(lines[:5]) + "\n")

    script = Path(__file__).resolve().parents[1] / "bench" / "checkpoint.sh"

    def checkpoint(*args):
        return subprocess.run(["bash", str(script), *args], capture_output=True, text=True,
                              env={**os.environ, "RUNS": str(runs), "CHECKPOINTS": str(checkpoints)})
    assert "5 records saved" in checkpoint("save", str(run)).stdout
    assert (checkpoints / "tnb" / "unfinished" / "results.jsonl.gz").is_file()
    assert "not under" in checkpoint("save", str(tmp_path / "full")).stderr
    started = runs / "tnb" / "started"  # stopped before its first cell: nothing to save, and no error
    started.mkdir()
    (started / "run.json").write_text(json.dumps(spec.to_json()))
    saved = checkpoint("save", str(started))
    assert saved.returncode == 0 and "no records yet" in saved.stdout and not (checkpoints / "tnb" / "started").exists()
    shutil.rmtree(runs)  # what a new session's clone lacks
    assert "0 records kept, 5 restored from the checkpoint" in checkpoint("restore").stdout
    calls = _count_scorings(monkeypatch)
    assert run_evaluation(spec, run, progress=False)["rankings"] == full["rankings"]
    assert len(calls) == len(lines) - 5
    assert f"{len(lines)} records kept, 0 restored" in checkpoint("restore").stdout  # a run further on keeps all
    # A run that went on elsewhere from 3 of the checkpoint's 5 cells: the records of both are merged.
    (run / "results.jsonl").write_text("\n".join(lines[:3] + lines[7:]) + "\n")
    assert f"{len(lines) - 4} records kept, 2 restored" in checkpoint("restore").stdout
    assert sorted((run / "results.jsonl").read_text().splitlines()) == sorted(lines[:3] + lines[7:] + lines[3:5])
    other = runs / "tnb" / "other"
    shutil.copytree(checkpoints / "tnb" / "unfinished", checkpoints / "tnb" / "other")
    other.mkdir()
    (other / "run.json").write_text(json.dumps(_cheap_spec(sample_seed=4).to_json()))
    refused = checkpoint("restore")
    assert refused.returncode != 0 and "its run.json is another run's" in refused.stderr
    shutil.rmtree(checkpoints / "tnb" / "other")
    checkpoint("drop", str(run))
    assert not (checkpoints / "tnb" / "unfinished").exists()


def test_a_different_spec_in_the_same_directory_is_refused(tmp_path):
    run_evaluation(_cheap_spec(), tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"sample_seed \(stored 3, requested 4\)"):
        run_evaluation(_cheap_spec(sample_seed=4), tmp_path, progress=False)


def test_a_run_json_from_before_the_space_and_metric_fields_resumes(tmp_path):
    spec = _cheap_spec()
    written_by_older_code = {k: v for k, v in dataclasses.asdict(spec).items() if k not in ("space", "metric", "data")}
    (tmp_path / "run.json").write_text(json.dumps(written_by_older_code))
    evaluation.open_results(tmp_path, spec)
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads(json.dumps(written_by_older_code))
    with pytest.raises(ValueError, match=r"metric \(stored None, requested 'valid@12'\)"):
        evaluation.open_results(tmp_path, dataclasses.replace(spec, metric="valid@12"))
    with pytest.raises(ValueError, match=r"unknown EvaluationSpec field\(s\) \['budget'\]"):
        EvaluationSpec.from_json({**written_by_older_code, "budget": 3})


def test_a_run_is_extended_with_more_seeds_scoring_only_the_new_ones(tmp_path, monkeypatch):
    full = run_evaluation(_cheap_spec(seeds=(0, 1, 2)), tmp_path / "full", progress=False)
    calls = _count_scorings(monkeypatch)
    for seeds, new_calls in [((0,), [0] * 6), ((0, 1, 2), [1] * 6 + [2] * 6), ((0, 1), [])]:
        calls.clear()
        grown = run_evaluation(_cheap_spec(seeds=seeds), tmp_path / "grown", progress=False)
        assert [seed for _, seed in calls] == new_calls
        assert json.loads((tmp_path / "grown" / "run.json").read_text())["seeds"] == list(seeds)
        if seeds == (0, 1, 2):
            assert grown["rankings"] == full["rankings"]
    assert grown == evaluation.report(tmp_path / "full", seeds=(0, 1))[0]


def test_retry_failed_scores_the_failed_cells_again_and_only_them(tmp_path, monkeypatch):
    spec = _cheap_spec()
    full = run_evaluation(spec, tmp_path / "full", progress=False)
    first = spec.archs()[0]
    flaky = [(first, 1)]  # fails on its first attempt only, as an out-of-memory error on a busy device would

    def scorer(space, arch, proxies, *, seed, **kwargs):
        if (arch, seed) in flaky:
            flaky.remove((arch, seed))
            raise RuntimeError("CUDA out of memory")
        return score_architecture(space, arch, proxies, seed=seed, **kwargs)
    monkeypatch.setattr(evaluation.run, "Job", functools.partial(Job, scorer=scorer))
    out = tmp_path / "run"
    failed = run_evaluation(spec, out, progress=False)
    assert failed["failed"] == [first] and failed["architectures"] == 5
    calls = _count_scorings(monkeypatch)
    assert run_evaluation(spec, out, progress=False)["failed"] == [first] and calls == []  # reported, not rerun
    args = ["evaluate", "--space", "nb201", "--dataset", "cifar10", "--proxies", ",".join(spec.proxies),
            "--limit", "6", "--sample-seed", "3", "--seeds", "2", "--out", str(out), "--quiet", "--retry-failed"]
    assert cli.main(args) == 0
    assert calls == [(first, 1)]
    assert json.loads((out / "metrics.json").read_text())["rankings"] == full["rankings"]


def test_a_proxy_failing_on_an_architecture_leaves_it_out_of_that_proxys_rankings_only(tmp_path, monkeypatch):
    spec = _cheap_spec()
    full = run_evaluation(spec, tmp_path / "full", progress=False)
    first = spec.archs()[0]

    def scorer(space, arch, proxies, *, seed, failures, **kwargs):  # naswot fails on one cell in seed 1
        values = score_architecture(space, arch, proxies, seed=seed, failures=failures, **kwargs)
        if (arch, seed) == (first, 1):
            del values["naswot"]
            failures["naswot"] = "proxy 'naswot' failed on a cell: RuntimeError: boom"
        return values
    monkeypatch.setattr(evaluation.run, "Job", functools.partial(Job, scorer=scorer))
    out = tmp_path / "run"
    result = run_evaluation(spec, out, progress=False)
    records = evaluation.load_records(out)
    assert [r["proxy_errors"] for r in records if "proxy_errors" in r] == [{"naswot": "proxy 'naswot' failed on a "
                                                                          "cell: RuntimeError: boom"}]
    assert result["failed"] == [] and result["architectures"] == 6 and result["partly_failed"] == {"naswot": 1}
    for name in ("flops", "params"):  # ranked on every cell, as in the run without the failure
        assert result["rankings"][name] == full["rankings"][name]
    # naswot, and the forest on all three, rank the other five: naswot's figures are those of its scores there
    rest = [a for a in spec.archs() if a != first]
    by_key = {(r["arch"], r["seed"]): r["values"] for r in records}
    accuracy = NB201.values(rest, spec.dataset)
    direct = [metrics.evaluate_ranking(np.array([by_key[(a, s)]["naswot"] for a in rest]), accuracy, spec.ndcg_k,
                                       seeds=(s,)) for s in spec.seeds]
    assert result["rankings"]["naswot"]["architectures"] == result["rankings"]["random_forest"]["architectures"] == 5
    for m in ("kendall", "spearman", "ndcg"):
        assert result["rankings"]["naswot"][m]["mean"] == pytest.approx(np.mean([d[m] for d in direct]), abs=1e-12)
    table = evaluation.format_table(result)
    assert "naswot [5]" in table and "proxies that failed on some architectures" in table and "naswot 1" in table
    calls = _count_scorings(monkeypatch)
    retried = run_evaluation(spec, out, progress=False, retry_failed=True)
    assert calls == [(first, 1)] and retried["rankings"] == full["rankings"] and "partly_failed" not in retried


def test_a_run_scores_its_sample_whole_seeds_first_in_one_seeded_shuffled_order(tmp_path, monkeypatch):
    spec = _cheap_spec(limit=12)
    calls = _count_scorings(monkeypatch)
    run_evaluation(spec, tmp_path / "a", progress=False)
    first = list(calls)
    calls.clear()
    run_evaluation(spec, tmp_path / "b", progress=False)
    assert calls == first
    assert [s for _, s in first] == [0] * 12 + [1] * 12
    orders = [[a for a, s in first if s == seed] for seed in spec.seeds]
    assert orders[0] == orders[1] != spec.archs() and sorted(orders[0]) == sorted(spec.archs())


def test_a_resumed_run_starts_its_worker_pool_knowing_the_memory_and_time_its_cells_needed(tmp_path, started_pools):
    run_evaluation(_cheap_spec(limit=4, seeds=(0,)), tmp_path, workers=2, progress=False)
    records = evaluation.load_records(tmp_path)
    seen = [(r["arch"], r["peak_rss"], r["base_rss"], None) for r in records]
    assert len(seen) == 4 and all(peak >= base > 50 * 2**20 for _, peak, base, _ in seen)  # a worker with torch
    timed = sorted((r["arch"], r["seconds"]) for r in records)
    assert all(seconds > 0 for _, seconds in timed)
    first = len(started_pools)
    run_evaluation(_cheap_spec(limit=4, seeds=(0, 1)), tmp_path, workers=2, progress=False)
    assert [(p["seen"], p["peak"], p["timed"]) for p in started_pools[first:]] == [
        (sorted(seen), max(peak for _, peak, _, _ in seen), timed)]


def test_evaluate_memory_caps_what_its_worker_pool_shares(tmp_path, started_pools, capsys):
    argv = ["evaluate", "--space", "nb201", "--dataset", "cifar10", "--proxies", "flops", "--limit", "3",
            "--seeds", "1", "--quiet"]
    assert cli.main([*argv, "--workers", "2", "--memory", "3GiB", "--out", str(tmp_path / "pool")]) == 0
    assert [p["memory"] for p in started_pools] == [3 * 2**30]
    assert len(evaluation.load_records(tmp_path / "pool")) == 3
    capsys.readouterr()
    # One process, or Ray, has no pool to cap: said before any scoring, also for a finished run.
    for extra, out in ((["--workers", "1"], "pool"), (["--workers", "2", "--backend", "ray"], "ray")):
        assert cli.main([*argv, *extra, "--memory", "3GiB", "--out", str(tmp_path / out)]) == 2
        assert "--memory caps what a local worker pool's processes take together" in capsys.readouterr().err
    assert not (tmp_path / "ray").exists()
    with pytest.raises(SystemExit):
        cli.main([*argv, "--workers", "2", "--memory", "3 pages", "--out", str(tmp_path / "bad")])
    assert "'3 pages' is not a memory size; write e.g. 16GiB" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_finished_seeds_are_those_every_architecture_has_a_record_of(tmp_path):
    spec = _cheap_spec(seeds=(0, 1, 2))
    run_evaluation(spec, tmp_path / "full", progress=False)
    records = [json.loads(line) for line in (tmp_path / "full" / "results.jsonl").read_text().splitlines()]
    first = spec.archs()[0]
    failure = {"arch": first, "seed": 2, "error": "RuntimeError: out of memory"}  # reported, not rerun
    kept = [r for r in records if r["seed"] == 0 or r["arch"] != first] + [failure]
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "run.json").write_text(json.dumps(spec.to_json()))
    (partial / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert evaluation.finished_seeds(tmp_path / "full") == (0, 1, 2)
    assert evaluation.finished_seeds(partial) == (0, 2)
    with pytest.raises(FileNotFoundError, match="no run.json"):
        evaluation.finished_seeds(tmp_path)


def test_metrics_equal_direct_computations():
    spec = _cheap_spec(limit=40, seeds=(0, 1))
    archs = spec.archs()
    rng = np.random.default_rng(0)
    records = [{"arch": a, "seed": s, "values": {"flops": nb201.flops(a, "cifar10"), "params": float(i % 7),
                                                 "naswot": float(rng.normal())}}
               for s in spec.seeds for i, a in enumerate(archs)]
    result = compute_metrics(spec, records)
    accuracy = np.array([NB201.value(a, "cifar10") for a in archs])
    flops = np.array([nb201.flops(a, "cifar10") for a in archs])
    assert result["rankings"]["flops"]["kendall"]["mean"] == pytest.approx(stats.kendalltau(flops, accuracy)[0])
    assert result["rankings"]["flops"]["spearman"]["std"] == pytest.approx(0.0, abs=1e-12)
    naswot = [np.array([r["values"]["naswot"] for r in records if r["seed"] == s]) for s in spec.seeds]
    expected = np.mean([stats.spearmanr(v, accuracy)[0] for v in naswot])
    assert result["rankings"]["naswot"]["spearman"]["mean"] == pytest.approx(expected)
    ndcg_seed1 = metrics.ndcg(stats.rankdata(naswot[1]), accuracy, k=40, seed=1)
    ndcg_seed0 = metrics.ndcg(stats.rankdata(naswot[0]), accuracy, k=40, seed=0)
    assert result["rankings"]["naswot"]["ndcg"]["mean"] == pytest.approx((ndcg_seed0 + ndcg_seed1) / 2)
    assert result["rankings"]["random_forest"]["train_size"] == 20
    assert result["architectures"] == 40 and result["failed"] == []


def test_failed_architectures_are_reported_and_excluded():
    spec = _cheap_spec(limit=5, seeds=(0,))
    archs = spec.archs()
    records = [{"arch": a, "seed": 0, "values": {"flops": float(i), "params": float(i), "naswot": float(-i)}}
               for i, a in enumerate(archs[1:])]
    records.append({"arch": archs[0], "seed": 0, "error": "RuntimeError: boom"})
    result = compute_metrics(spec, records)
    assert result["failed"] == [archs[0]] and result["architectures"] == 4
    assert "failed architectures (excluded): 1" in evaluation.format_table(result)


def test_two_presets_and_the_aggregate_on_real_scores(tmp_path):
    spec = EvaluationSpec(proxies=("vkdnw_single", "jacov", "expressivity", "trainability", "flops"),
                          presets=("paper", "exact"), limit=4, sample_seed=1, seeds=(0,))
    result = run_evaluation(spec, tmp_path, progress=False)
    records = ResultStore(tmp_path / "results.jsonl").records
    archs = spec.archs()
    a = archs[0]
    direct = score_architecture(spaces.get("nb201", dataset="cifar10"), a, ("vkdnw_single",), presets=("exact",), seed=0)
    assert records[(a, 0)]["values"]["vkdnw_single@exact"] == pytest.approx(direct["vkdnw_single"], abs=1e-9)
    table = {c: np.array([records[(x, 0)]["values"][c] for x in archs])
             for c in ("vkdnw_single@paper", "jacov", "expressivity", "trainability", "flops")}
    aggregate = sum(np.log(stats.rankdata(v)) for v in table.values())
    accuracy = np.array([NB201.value(x, "cifar10") for x in archs])
    assert result["rankings"]["aggregate@paper"]["kendall"]["mean"] == pytest.approx(stats.kendalltau(aggregate, accuracy)[0])
    assert result["best"]["arch"] == archs[int(np.argmax(aggregate))]
    assert result["best"]["accuracy"] == pytest.approx(NB201.value(result["best"]["arch"], "cifar10"))


def test_each_record_says_which_plan_the_engine_took_for_each_preset(tmp_path):
    """The plan and passes each preset's Fisher proxies were scored by, as the engine reports them for the same
    network, and its seconds; counted in the metrics and the table; non-Fisher scorings say nothing."""
    spec = EvaluationSpec(proxies=("vkdnw", "flops"), presets=("paper", "exact"), limit=2, sample_seed=2, seeds=(0,))
    result = run_evaluation(spec, tmp_path, progress=False)
    records = ResultStore(tmp_path / "results.jsonl").records
    space = spaces.get("nb201", dataset="cifar10")
    for arch in spec.archs():
        record = records[(arch, 0)]
        for preset in spec.presets:
            engine = vf.score(space.build_model(arch), input_shape=space.input_shape, config=preset)
            assert {k: record["engine"][preset][k] for k in ("plan", "passes")} == {"plan": engine.plan,
                                                                                    "passes": engine.passes}
        assert 0 < sum(run["seconds"] for run in record["engine"].values()) < record["seconds"]
    for preset in spec.presets:
        plans = {records[(arch, 0)]["engine"][preset]["plan"] for arch in spec.archs()}
        assert result["engine"][preset] == {plan: {
            "networks": sum(records[(a, 0)]["engine"][preset]["plan"] == plan for a in spec.archs()),
            "median_seconds": pytest.approx(float(np.median([records[(a, 0)]["engine"][preset]["seconds"]
                                                             for a in spec.archs()
                                                             if records[(a, 0)]["engine"][preset]["plan"] == plan])))}
            for plan in plans}
    line = next(line for line in evaluation.format_table(result).splitlines() if line.startswith("engine pass plans"))
    assert all(f"{preset} {plan} {run['networks']} (median " in line
               for preset, plans in result["engine"].items() for plan, run in plans.items())
    sizes_only = run_evaluation(dataclasses.replace(spec, proxies=("flops",)), tmp_path / "sizes", progress=False)
    assert "engine" not in sizes_only
    assert all("engine" not in r for r in ResultStore(tmp_path / "sizes" / "results.jsonl").records.values())


def test_the_engines_median_seconds_leave_out_resumed_networks():
    run = {"paper": {"plan": "forward", "passes": 128}}
    records = [{"engine": {"paper": {**run["paper"], "seconds": s}}, **extra}
               for s, extra in ((10.0, {}), (30.0, {}), (1.0, {"resumed_blocks": 3}))]
    records.append({"values": {}})  # a record from before the engine's runs were kept
    summary = evaluation.rankings.engine_summary(records)
    assert summary == {"paper": {"forward": {"networks": 3, "median_seconds": 20.0}}}
    resumed_only = evaluation.rankings.engine_summary(records[2:])
    assert resumed_only == {"paper": {"forward": {"networks": 1, "median_seconds": None}}}


def test_the_table_counts_the_networks_scored_in_chunks_of_their_batch(tmp_path):
    """A worker pool's records say sample_chunk (started in chunks to fit beside others) or least_memory (scored
    again by the leanest plans, 16 samples a chunk, after its worker died): the summary counts each, the latter
    once, and the table says so."""
    records = [{"sample_chunk": 32}, {"sample_chunk": 16}, {"sample_chunk": 32}, {"least_memory": True},
               {"least_memory": True, "sample_chunk": 32}, {"values": {}}]
    summary = evaluation.rankings.chunked_summary(records)
    assert summary == {"sample_chunk": {"32": 2, "16": 1}, "least_memory": 2}
    assert evaluation.rankings.chunked_summary(records[-1:]) == {}
    spec = _cheap_spec(limit=3, seeds=(0,))
    run_evaluation(spec, tmp_path, progress=False)
    path = tmp_path / "results.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([json.dumps({**json.loads(lines[0]), "sample_chunk": 16}), *lines[1:]]) + "\n")
    result = evaluation.compute_metrics(spec, evaluation.load_records(tmp_path))
    assert result["chunked"] == {"sample_chunk": {"16": 1}}
    assert ("networks scored in chunks of their batch (the same scores to rounding): 1 by 16 samples to fit beside "
            "others") in evaluation.format_table(result).splitlines()
    assert "chunked" not in run_evaluation(spec, tmp_path / "plain", progress=False)
    assert ("networks scored in chunks of their batch (the same scores to rounding): 2 by 32 samples, 1 by 16 "
            "samples to fit beside others; 2 by the leanest plans after their worker died"
            ) in evaluation.format_table({**result, "chunked": summary}).splitlines()


def test_cli_evaluate_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["nb201", "evaluate", "--limit", "5", "--seeds", "1", "--proxies", "flops,params",
                     "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "flops" in printed and "best by flops" in printed and (out / "scatter.png").stat().st_size > 1000
    assert cli.main(["nb201", "report", str(out)]) == 0
    assert capsys.readouterr().out.strip() in printed
    assert cli.main(["nb201", "report", str(out), "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved.pop("command") == f"vkdnw-fast nb201 report {out} --json"
    assert saved == json.loads((out / "metrics.json").read_text())


def test_cli_errors_are_clear(tmp_path, capsys):
    assert cli.main(["nb201", "evaluate", "--proxies", "flopz", "--out", str(tmp_path)]) == 2
    assert "unknown proxies ['flopz']" in capsys.readouterr().err
    assert cli.main(["nb201", "report", str(tmp_path / "nothing")]) == 2
    assert "holds no evaluation" in capsys.readouterr().err


def test_cli_score_matches_the_api(tmp_path, capsys, monkeypatch):
    (tmp_path / "tiny_nets.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self, classes=10):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3)\n"
        "        self.fc = torch.nn.Linear(4, classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["score", "--model", "tiny_nets:Net", "--model-args", '{"classes": 5}', "--input-shape",
                     "3,8,8", "--batch-size", "16", "--preset", "exact", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    import tiny_nets
    expected = vf.score(tiny_nets.Net(5), input_shape=(3, 8, 8), batch_size=16, config="exact")
    assert printed["vkdnw"] == pytest.approx(expected.vkdnw, abs=1e-12)
    assert printed["aleph"] == 2 and printed["num_weights"] == 2
    for strategy in ("rows", "features", "forward"):  # a forced plan: the same score, by that plan
        assert cli.main(["score", "--model", "tiny_nets:Net", "--model-args", '{"classes": 5}', "--input-shape",
                         "3,8,8", "--batch-size", "16", "--preset", "exact", "--strategy", strategy, "--json"]) == 0
        forced = json.loads(capsys.readouterr().out)
        assert forced["plan"] == strategy and forced["strategy"].startswith(strategy)
        assert forced["vkdnw"] == pytest.approx(expected.vkdnw, abs=1e-8)
    assert cli.main(["score", "--model", "tiny_nets:Net", "--model-args", '{"classes": 5}', "--input-shape",
                     "3,8,8", "--batch-size", "16", "--preset", "exact", "--sample-chunk", "6", "--json"]) == 0
    chunked = json.loads(capsys.readouterr().out)
    assert chunked["strategy"].endswith(", in 3 chunks of 6 samples")
    assert chunked["vkdnw"] == pytest.approx(expected.vkdnw, abs=1e-8)
    assert cli.main(["score", "--model", "tiny_nets:Net", "--input-shape", "3,8,8", "--sample-chunk", "0"]) == 2
    assert "FisherConfig.sample_chunk must be None or a positive int, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("output, flag", [("{'aux': h, 'out': self.fc(h)}", "out"), ("(h, self.fc(h))", "1")])
def test_cli_score_takes_the_logits_from_a_structured_output(tmp_path, capsys, monkeypatch, output, flag):
    module = f"structured_nets_{flag}"  # one module per case: an import is cached for the session
    (tmp_path / f"{module}.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3)\n"
        "        self.fc = torch.nn.Linear(4, 5)\n"
        "    def forward(self, x):\n"
        "        h = torch.relu(self.conv(x)).mean((2, 3))\n"
        f"        return {output}\n"
        "class Bare(Net):\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = ["score", "--model", f"{module}:Net", "--input-shape", "3,8,8", "--batch-size", "16", "--json"]
    assert cli.main(argv) == 2
    assert "pass logits=" in capsys.readouterr().err
    assert cli.main([*argv, "--logits", flag]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = vf.score(importlib.import_module(module).Bare(), input_shape=(3, 8, 8), batch_size=16)
    assert printed["vkdnw"] == pytest.approx(expected.vkdnw, abs=1e-12)
    assert printed["eigenvalues"] == pytest.approx(expected.eigenvalues.tolist(), rel=1e-12)


def test_a_constant_ranking_is_reported_as_undefined_not_a_crash():
    spec = _cheap_spec(limit=6, seeds=(0, 1))
    records = [{"arch": a, "seed": s, "values": {"flops": float(i), "params": 1.0, "naswot": float(i % 2)}}
               for s in spec.seeds for i, a in enumerate(spec.archs())]
    result = compute_metrics(spec, records)
    assert result["rankings"]["params"]["kendall"] == {"mean": None, "std": None, "undefined_seeds": 2}
    assert result["rankings"]["flops"]["kendall"]["mean"] is not None
    row = next(line for line in evaluation.format_table(result).splitlines() if line.startswith("params"))
    assert row.split()[1:3] == ["n/a", "n/a"]          # nDCG stays defined: ties break at random
    assert result["rankings"]["params"]["ndcg"]["mean"] is not None


@pytest.mark.parametrize("limit", [2, 3])
def test_too_few_architectures_for_the_random_forest_leave_it_undefined(limit):
    """Half the sample trains the forest: with fewer than two left to rank (2), or one training
    architecture and so a constant prediction (3), its row is n/a instead of a crash."""
    spec = _cheap_spec(limit=limit, seeds=(0,))
    archs = spec.archs()
    records = [{"arch": a, "seed": 0, "values": {"flops": nb201.flops(a, "cifar10"), "params": float(i),
                                                 "naswot": float(-i)}} for i, a in enumerate(archs)]
    result = compute_metrics(spec, records)
    accuracy = np.array([NB201.value(a, "cifar10") for a in archs])
    assert result["rankings"]["random_forest"]["kendall"] == {"mean": None, "std": None, "undefined_seeds": 1}
    assert result["rankings"]["params"]["kendall"]["mean"] == pytest.approx(
        stats.kendalltau(np.arange(limit), accuracy)[0])


def test_evaluation_on_a_worker_pool_equals_in_process(tmp_path):
    # The same bits: VKDNW's paper preset once told the two apart in the last bit, from an in-process run's
    # second candidate on, when torch ran more threads than it reported.
    spec = _cheap_spec(limit=4, seeds=(0, 1), proxies=("flops", "naswot", "vkdnw"), presets=("paper", "exact"))
    alone = run_evaluation(spec, tmp_path / "one", progress=False)
    pooled = run_evaluation(spec, tmp_path / "two", workers=2, progress=False)
    one = ResultStore(tmp_path / "one" / "results.jsonl").records
    two = ResultStore(tmp_path / "two" / "results.jsonl").records
    assert {k: v["values"] for k, v in one.items()} == {k: v["values"] for k, v in two.items()}
    assert alone["rankings"] == pooled["rankings"]


def test_report_can_rescale_ndcg_and_select_seeds(tmp_path):
    spec = _cheap_spec(limit=6, seeds=(0, 1))
    run_evaluation(spec, tmp_path, progress=False)
    results, table = evaluation.report(tmp_path, ndcg_k=3, seeds=(1,))
    assert results["spec"]["ndcg_k"] == 3 and tuple(results["spec"]["seeds"]) == (1,) and "nDCG@3" in table
    assert "±" not in table and "±" in evaluation.report(tmp_path)[1]  # a spread only over several seeds
    records = [r for r in ResultStore(tmp_path / "results.jsonl").records.values() if r["seed"] == 1]
    direct = compute_metrics(dataclasses.replace(spec, ndcg_k=3, seeds=(1,)), records)
    assert results["rankings"] == direct["rankings"]
    with pytest.raises(ValueError, match="not all among"):
        evaluation.report(tmp_path, seeds=(7,))


def test_report_reads_a_published_run(tmp_path, capsys):
    spec = _cheap_spec(limit=5, seeds=(0,))
    live = run_evaluation(spec, tmp_path / "live", progress=False)
    published = tmp_path / "published"
    published.mkdir()
    (published / "run.json").write_text((tmp_path / "live" / "run.json").read_text())
    with open(tmp_path / "live" / "results.jsonl", "rb") as plain, gzip.open(published / "results.jsonl.gz", "wb") as packed:
        packed.write(plain.read())
    assert evaluation.report(published)[0]["rankings"] == live["rankings"]
    assert cli.main(["nb201", "report", str(published), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["command"] == f"vkdnw-fast nb201 report {published} --json"
    assert printed["rankings"] == live["rankings"]
    with pytest.raises(FileNotFoundError, match="holds no results"):
        evaluation.load_records(tmp_path)


PUBLISHED = Path(__file__).resolve().parents[1] / "bench" / "results" / "nb201"


def _flat(tree, prefix=""):
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}/").items()}
    return {prefix: tree}


@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
def test_the_published_scores_give_the_published_metrics(dataset):
    """The README's reproduction table comes from committed per-architecture scores: recompute it."""
    directory = PUBLISHED / dataset
    saved = json.loads((directory / "metrics.json").read_text())
    assert saved["command"].startswith(f"vkdnw-fast nb201 report bench/results/nb201/{dataset} ")
    results, table = evaluation.report(directory, ndcg_k=saved["spec"]["ndcg_k"], seeds=tuple(saved["spec"]["seeds"]))
    assert table + "\n" == (directory / "table.txt").read_text()  # the published table, to the byte
    assert results["architectures"] == saved["architectures"] >= 1000 and not results["failed"]
    recomputed, published = _flat(results["rankings"]), _flat(saved["rankings"])
    assert recomputed.keys() == published.keys()
    for key, value in published.items():
        assert recomputed[key] == (pytest.approx(value, abs=1e-9) if isinstance(value, float) else value), key


COMMITTED_RUNS = sorted(p.parent for pattern in ("nb201_all/*/metrics.json", "nb201_every_proxy/*/metrics.json",
                                                 "tnb/*/metrics.json", "nb101*/metrics.json")
                        for p in PUBLISHED.parent.glob(pattern))


@pytest.mark.parametrize("directory", COMMITTED_RUNS, ids=lambda p: p.relative_to(PUBLISHED.parent).as_posix())
def test_every_committed_run_recomputes_to_its_table(directory):
    """The other committed evaluations (whole NB201 space, NAS-Bench-101, TransNAS-Bench-101 samples):
    their tables come from their committed per-architecture scores and the bundled ground truth."""
    saved = json.loads((directory / "metrics.json").read_text())
    results, table = evaluation.report(directory, ndcg_k=saved["spec"]["ndcg_k"], seeds=tuple(saved["spec"]["seeds"]))
    if (directory / "table.txt").exists():
        assert table + "\n" == (directory / "table.txt").read_text()
    assert results["architectures"] == saved["architectures"] and results["failed"] == saved["failed"]
    recomputed, published = _flat(results["rankings"]), _flat(saved["rankings"])
    assert recomputed.keys() == published.keys()
    for key, value in published.items():
        assert recomputed[key] == (pytest.approx(value, abs=1e-9) if isinstance(value, float) else value), key


README_ROWS = {"VKDNW_single, `paper` preset": "vkdnw_single@paper", "VKDNW_single, `exact` preset": "vkdnw_single@exact",
               "aggregate (eq. 15), `paper`": "aggregate@paper", "aggregate (eq. 15), `exact`": "aggregate@exact",
               "random forest (500 train / 500 test), `paper`": "random_forest@paper",
               "random forest (500 train / 500 test), `exact`": "random_forest@exact"}


def test_the_readme_table_is_the_published_run():
    """The README's Table I reproduction quotes the committed metrics: five seeds (CIFAR-100: two), both
    presets."""
    readme = (PUBLISHED.parents[2] / "README.md").read_text()
    cells = {}
    for line in readme.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if parts[0] in README_ROWS:
            cells[README_ROWS[parts[0]]] = parts[1:4]
    assert cells.keys() == set(README_ROWS.values())
    for column, (dataset, seeds) in enumerate([("cifar10", 5), ("cifar100", 2), ("ImageNet16-120", 5)]):
        saved = json.loads((PUBLISHED / dataset / "metrics.json").read_text())
        assert saved["spec"]["seeds"] == list(range(seeds)) and saved["spec"]["presets"] == ["paper", "exact"]
        for key, row in cells.items():
            quoted = [float(v) for v in row[column].split(" / ")]
            assert quoted == [round(saved["rankings"][key][m]["mean"], 3) for m in ("kendall", "spearman", "ndcg")], key


@pytest.mark.parametrize("dataset", ["cifar10", "ImageNet16-120"])
def test_the_sample_spread_record_describes_the_published_sample(dataset):
    """bench/results/nb201/sample_spread.json (the README's sampling argument) speaks of the sample the
    reproduction scored: its sample-seed-0 and full-set rows are recomputed on that sample's architectures."""
    record = json.loads((PUBLISHED / "sample_spread.json").read_text())
    spec = EvaluationSpec.from_json(json.loads((PUBLISHED / dataset / "run.json").read_text()))
    assert (record["limit"], record["ndcg_k"]["sample"]) == (spec.limit, 106) and spec.sample_seed == 0
    pool = nb201.archs("unique")
    sample = spec.archs()
    for archs, key, k in [(pool, "full_set", 1000), (sample, "sample_seed_0", 106)]:
        accuracy = np.array([NB201.value(a, dataset) for a in archs])
        for name, score in [("flops", [nb201.flops(a, dataset) for a in archs]),
                            ("aleph", [nb201.aleph(a) for a in archs])]:
            recorded = record["results"][dataset][name][key]
            assert stats.kendalltau(score, accuracy)[0] == pytest.approx(recorded["kendall"], abs=1e-4)
            assert stats.spearmanr(score, accuracy)[0] == pytest.approx(recorded["spearman"], abs=1e-4)
            assert metrics.ndcg_mean(score, accuracy, k=k) == pytest.approx(recorded["ndcg"], abs=1e-4)


def test_the_table_sets_the_published_figures_of_the_same_ranking_beside_a_run():
    from vkdnw_fast.evaluation.published import paper_row, published
    # The VKDNW paper's aggregate and AZ-NAS on the unique set, as issue #16 quotes them.
    assert published("aggregate@exact", "cifar100", "unique") == ("VKDNW Table I", (0.753, 0.919, 0.636))
    assert published("aggregate(flops,trainability,progressivity,expressivity)", "ImageNet16-120", "paper") \
        == ("VKDNW Table I", (0.673, 0.859, 0.534))
    assert paper_row("aggregate(te_nas_lr,te_nas_ntk)@paper") == "TE-NAS"
    assert paper_row("aggregate(flops,jacov)") is None and paper_row("vkdnw@exact") is None
    assert published("jacov", "cifar10", "all")[0] == "VKDNW Table VI"
    spec = _cheap_spec(proxies=("flops", "params"), subset="unique")
    records = [{"arch": a, "seed": s, "values": {"flops": float(i), "params": float(i % 3)}}
               for s in spec.seeds for i, a in enumerate(spec.archs())]
    lines = evaluation.format_table(compute_metrics(spec, records)).splitlines()
    assert lines[1].endswith("VKDNW Table I (KT / SPR / nDCG@1000, whole set)   "
                             "NAS-Bench-Suite-Zero (SPR, 10 samples of 1,000)")
    flops, params = (next(line for line in lines if line.startswith(name)) for name in ("flops", "params"))
    # Each source's figures under its label: VKDNW's row for FLOPs; Suite-Zero's SPR for both.
    assert flops[lines[1].index("VKDNW"):].split() == ["0.623", "/", "0.799", "/", "0.745", "0.69"]
    assert params[lines[1].index("VKDNW"):].strip() == "0.72" and params.index("0.72") == lines[1].index("NAS-Bench")
    nb101 = dataclasses.replace(spec, space="nb101", dataset="cifar10", subset=None)
    records = [{"arch": a, "seed": s, "values": {"flops": float(i), "params": float(i % 3)}}
               for s in nb101.seeds for i, a in enumerate(nb101.archs())]
    assert "VKDNW" not in evaluation.format_table(compute_metrics(nb101, records))



def test_each_proxys_own_paper_is_set_beside_it_as_printed():
    """The own papers' figures (ZiCo's Table 1, NASWOT's Figure 3, the zero-cost-nas notebook's Table 1)
    under a third label, "–" for the measure a paper does not give, each with the decimals it was
    printed with; outside NAS-Bench-201 only NASWOT's NAS-Bench-101 figure."""
    from vkdnw_fast.evaluation.published import beside, own_paper, shown_figures

    assert own_paper("zico", "nb201", "cifar100") == (0.61, 0.81)
    kt, spr = own_paper("naswot_128", "nb201", "ImageNet16-120")
    assert kt == 0.549 and math.isnan(spr)
    assert own_paper("meco", "nb201", "cifar100") is None and own_paper("aggregate(zico,meco)", "nb201", "cifar10") is None
    assert beside("grasp@exact", "nb201", "cifar10")["own paper"][1] == 0.514
    assert "own paper" not in beside("synflow", "nb101", "cifar10")
    assert shown_figures("own paper", beside("naswot", "nb101", "cifar10")["own paper"]) == "0.285 / –"
    assert own_paper("naswot", "tnb_micro", "class_scene") is None
    assert [shown_figures("own paper", (v,)) for v in (0.61, 0.574, 0.9, 0.36)] == ["0.61", "0.574", "0.90", "0.36"]
    spec = _cheap_spec(proxies=("synflow", "params"), subset="unique")
    records = [{"arch": a, "seed": s, "values": {"synflow": float(i), "params": float(i % 3)}}
               for s in spec.seeds for i, a in enumerate(spec.archs())]
    lines = evaluation.format_table(compute_metrics(spec, records)).splitlines()
    assert lines[1].endswith("own paper (KT / SPR, its own protocol)")
    synflow = next(line for line in lines if line.startswith("synflow"))
    assert synflow[lines[1].index("own paper"):] == "– / 0.737"

def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_sigterm_closes_the_worker_pool_and_keeps_what_finished(tmp_path):
    import signal
    import subprocess
    import time

    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "vkdnw_fast.cli", "nb201", "evaluate", "--dataset", "cifar10",
                                "--limit", "60", "--proxies", "flops,naswot", "--seeds", "1", "--workers", "2",
                                "--quiet", "--out", str(out)], stderr=subprocess.PIPE, text=True)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 240
    while not (results.exists() and len(results.read_text().splitlines()) >= 2):
        assert process.poll() is None and time.monotonic() < deadline, "the run did not start scoring"
        time.sleep(0.2)
    workers = _children(process.pid)
    assert workers  # the pool's processes (and its resource tracker)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130
    assert "interrupted; what finished is saved, and the same command resumes" in process.stderr.read()
    deadline = time.monotonic() + 60
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "workers outlived the run"
    finished = [json.loads(line) for line in results.read_text().splitlines() if line.endswith("}")]
    assert 2 <= len(finished) < 60 and all("values" in r for r in finished)


def test_each_preparation_starts_from_the_network_as_built():
    # Presets needing preparations of their own (here: two memory formats, interleaved); the last one
    # prepares the network built for the call in place, so the earlier ones must not have changed it.
    space = spaces.from_spec({"name": "nb201", "dataset": "cifar10"})
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"
    contiguous = vf.FisherConfig.preset("exact", memory_format="contiguous")
    presets = ("paper", contiguous, "exact")
    together = score_architecture(space, arch, ["vkdnw", "naswot"], presets=presets, seed=4)
    for preset, name in zip(presets, ("paper", "custom", "exact")):
        alone = score_architecture(space, arch, ["vkdnw", "naswot"], presets=(preset,), seed=4)
        assert together[f"vkdnw@{name}"] == pytest.approx(alone["vkdnw"], rel=1e-12)
        if preset == presets[0]:  # the other proxies are scored with the first preset's preparation
            assert together["naswot"] == pytest.approx(alone["naswot"], rel=1e-12)


def test_a_given_model_is_left_untouched_unless_consumed():
    space = spaces.from_spec({"name": "nb201", "dataset": "cifar10"})
    arch = "|nor_conv_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|"
    built_here = score_architecture(space, arch, ["vkdnw", "naswot"], seed=4)
    given = space.build_model(arch)
    as_built = {k: v.clone() for k, v in given.state_dict().items()}
    assert score_architecture(space, arch, ["vkdnw", "naswot"], seed=4, model=given) == built_here
    assert all(torch.equal(v, as_built[k]) for k, v in given.state_dict().items())
    assert score_architecture(space, arch, ["vkdnw", "naswot"], seed=4, model=given, consume_model=True) == built_here
    # Consumed: initialised from the seed in place, so its weights are no longer the builder's.
    assert not all(torch.equal(v, as_built[k]) for k, v in given.state_dict().items())


def readme_table(header_start: str) -> tuple[list[str], list[list[str]]]:
    """(header cells, body rows as lists of cells) of the README's Markdown table whose header line
    starts with ``header_start``."""
    readme = (PUBLISHED.parents[2] / "README.md").read_text().splitlines()
    header = next(i for i, line in enumerate(readme) if line.startswith(header_start))
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in itertools.takewhile(lambda line: line.startswith("|"), readme[header + 2:])]
    return [c.strip() for c in readme[header].strip("|").split("|")], cells


def quoted_figures(ranking: dict) -> str:
    """A ranking's KT / SPR / nDCG as the README's tables quote them (n/a where undefined)."""
    return " / ".join("n/a" if ranking[m]["mean"] is None else f"{ranking[m]['mean']:.3f}"
                      for m in ("kendall", "spearman", "ndcg"))


def test_the_readme_every_proxy_tables_quote_the_committed_runs():
    """The README's every-proxy tables, one per dataset with a committed run: our KT / SPR / nDCG, the
    published figures beside them as ``published.beside`` gives them (VKDNW Table I to three decimals,
    Suite-Zero's SPR to two, the proxy's own paper's KT / SPR as printed, "–" where the paper gives only
    one), and the first table's time per network from ``proxy_times_cpu.json``."""
    from vkdnw_fast.evaluation.published import beside

    def two(figures):
        return " / ".join("–" if math.isnan(v) else f"{v:.2f}" for v in figures)

    def as_printed(figures):
        return " / ".join("–" if math.isnan(v) else f"{v:.2f}" if round(v, 2) == v else f"{v:.3f}" for v in figures)

    times = json.loads((PUBLISHED.parent / "proxy_times_cpu.json").read_text())["summary"]["alone_s_median"]
    names = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "ImageNet16-120": "ImageNet16-120"}
    runs = {d: PUBLISHED.parent / "nb201_every_proxy" / d / "metrics.json" for d in names}
    datasets = [d for d, path in runs.items() if path.exists()]
    assert datasets[0] == "cifar10"
    for i, dataset in enumerate(datasets):
        run = json.loads(runs[dataset].read_text())
        columns, rows = readme_table(f"| proxy | {names[dataset]}: ours |")
        assert columns[2:5] == ["VKDNW Table I", "Suite-Zero", "own paper"]
        assert [cells[0].strip("`") for cells in rows] == [n for n in run["rankings"] if not n.startswith("random_forest")]
        for cells in rows:
            proxy = cells[0].strip("`")
            found = beside(proxy, "nb201", dataset)
            assert cells[1] == quoted_figures(run["rankings"][proxy]), (proxy, dataset)
            assert cells[2] == " / ".join(f"{v:.3f}" for v in found.get("VKDNW Table I", ())), (proxy, dataset)
            assert cells[3] == two(found.get("NAS-Bench-Suite-Zero", ())), (proxy, dataset)
            assert cells[4] == as_printed(found.get("own paper", ())), (proxy, dataset)
            if i == 0:
                assert cells[5] == f"{times[proxy]:.2g}", proxy


ENSEMBLE_ROWS = {"ensemble, `exact`": ("ensemble.json", "exact"),
                 "ensemble, `paper` (with VKDNW_single)": ("ensemble.json", "paper"),
                 "every label-free proxy, `exact` (seed 0)": ("ensemble_every_proxy.json", "exact"),
                 "every label-free proxy, `paper` (seed 0)": ("ensemble_every_proxy.json", "paper")}


def test_the_readme_ensemble_table_quotes_bench_ensemble_results():
    """The README's label-free ensembles: each row the committed ``bench/ensemble.py`` result it names,
    beside the VKDNW paper's published VKDNW_agg and AZ-NAS rows."""
    from vkdnw_fast.evaluation.published import table_row

    columns, rows = readme_table("| ranking | CIFAR-10 (selection) |")
    datasets = ["cifar10", "cifar100", "ImageNet16-120"]
    assert [c.split(" (")[0] for c in columns[1:]] == ["CIFAR-10", "CIFAR-100", "ImageNet16-120"]
    quoted = {cells[0]: cells[1:] for cells in rows}
    assert ENSEMBLE_ROWS.keys() <= quoted.keys()
    for label, (name, preset) in ENSEMBLE_ROWS.items():
        saved = json.loads((PUBLISHED.parent / name).read_text())["presets"][preset]["datasets"]
        assert quoted[label] == [quoted_figures(saved[d]["ensemble"]) for d in datasets], label
    for label, row in [("VKDNW_agg, paper (Table I)", "VKDNW_agg"), ("AZ-NAS, VKDNW paper's Table I", "AZ-NAS")]:
        assert quoted[label] == [" / ".join(f"{v:.3f}" for v in table_row(row, d)) for d in datasets], label


def test_our_zen_agrees_with_suite_zeros_and_its_heat_map_figure_is_the_whole_space():
    """Zen reads no data (Gaussian weights and inputs, NASLib's as ours), so ours on the every-proxy run's
    1,000 cells must rank them as NAS-Bench-Suite-Zero's published scores do (issue #16: >= 0.95); and its
    heat-map figure for Zen is the Spearman over all 15,625 cells with NASLib's validation accuracy (within
    its 10-sample spread), which the unique set's far lower figure (README) is not."""
    from vkdnw_fast.data import naslib_zen_table, nb201_extra_table
    from vkdnw_fast.evaluation.published import suite_zero

    theirs, extra = naslib_zen_table(), nb201_extra_table()
    row = {a: i for i, a in enumerate(theirs["arch"])}
    for dataset, column in [("cifar10", "cifar10"), ("cifar100", "cifar100"), ("ImageNet16-120", "imagenet16")]:
        with gzip.open(PUBLISHED.parent / "nb201_every_proxy" / dataset / "results.jsonl.gz", "rt") as handle:
            ours = {r["arch"]: r["values"]["zen"] for r in map(json.loads, handle) if "error" not in r}
        assert len(ours) == 1000
        published = theirs[f"zen_{column}"][[row[a] for a in ours]]
        assert stats.spearmanr(list(ours.values()), published)[0] >= 0.95, dataset
        whole = stats.spearmanr(theirs[f"zen_{column}"], extra[f"{column}_valid_naslib"])[0]
        assert whole == pytest.approx(suite_zero("zen", "nb201", dataset), abs=0.02), dataset


def test_the_readme_quotes_the_shared_forward_saving_measured():
    """The time of the whole proxy set against the sum of its proxies alone, as bench_proxies.py recorded."""
    summary = json.loads((PUBLISHED.parent / "proxy_times_cpu.json").read_text())["summary"]["saving_median"]
    readme = (PUBLISHED.parents[2] / "README.md").read_text().replace("\n", " ")
    assert (f"together they take {1 - summary['without_te_nas_ntk']:.2f}× the sum of their times alone "
            f"(the median network), {1 - summary['all']:.2f}× with `te_nas_ntk`") in readme


def test_the_readme_nb101_table_quotes_the_committed_runs():
    """NAS-Bench-101: every proxy of the three committed runs on the bundled cells (VKDNW's with the
    paper's aggregate first), with NAS-Bench-Suite-Zero's SPR and the proxy's own paper beside it where
    they have it. A proxy two runs share was scored on the same cells with the same seed, so their
    figures must be equal."""
    from vkdnw_fast.evaluation.published import suite_zero

    columns, rows = readme_table("| proxy | NAS-Bench-101: ours |")
    assert columns == ["proxy", "NAS-Bench-101: ours", "Suite-Zero", "own paper"]
    rankings = {}
    for run in ("nb101_vkdnw", "nb101", "nb101_label_free"):
        saved = json.loads((PUBLISHED.parent / run / "metrics.json").read_text())
        assert saved["architectures"] == 292
        for name, ranking in saved["rankings"].items():
            if name.startswith(("random_forest", "fim_q")):
                continue
            if name in rankings:
                assert ranking == rankings[name], (run, name)
            rankings.setdefault(name, ranking)
    assert [cells[0].strip("`") for cells in rows] == list(rankings)
    for proxy, ours, suite, own in rows:
        name = proxy.strip("`")
        published = suite_zero(name, "nb101", "cifar10")
        assert ours == quoted_figures(rankings[name]), name
        assert suite == ("" if published is None else f"{published:.2f}"), name
        assert own == ("0.285 / –" if name in ("naswot", "naswot_128") else ""), name  # NASWOT's Figure 3
