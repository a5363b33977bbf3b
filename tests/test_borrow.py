"""``evaluate --scores-from``: an evaluation takes the scores another run holds of the same networks instead
of computing them again, and computes only the rest."""
from __future__ import annotations

import dataclasses
import functools
import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from vkdnw_fast import cli, evaluation
from vkdnw_fast.backends import Job
from vkdnw_fast.config import PRESETS, FisherConfig
from vkdnw_fast.evaluation import EvaluationSpec, load_records, run_evaluation
from vkdnw_fast.scoring import score_architecture


def _spec(proxies, presets=("exact",), **fields):
    return EvaluationSpec(**{"proxies": proxies, "presets": presets, "limit": 4, "sample_seed": 3, "seeds": (0, 1),
                             **fields})


def _scorings(monkeypatch) -> dict:
    """{(arch, seed): the proxies scored} of the evaluations run from now on."""
    calls = {}

    def scorer(space, arch, proxies, *, seed, **kwargs):
        calls[(arch, seed)] = tuple(proxies)
        return score_architecture(space, arch, proxies, seed=seed, **kwargs)
    monkeypatch.setattr(evaluation.run, "Job", functools.partial(Job, scorer=scorer))
    return calls


def _values(directory) -> dict:
    return {(r["arch"], r["seed"]): r["values"] for r in load_records(directory)}


def test_the_proxies_another_run_scored_are_taken_and_only_the_rest_computed(tmp_path, monkeypatch):
    full = run_evaluation(_spec(("flops", "naswot", "params")), tmp_path / "full", progress=False)
    run_evaluation(_spec(("naswot", "flops")), tmp_path / "source", progress=False)
    published = tmp_path / "published"  # the layout bench/publish_run.sh leaves: results.jsonl.gz
    published.mkdir()
    shutil.copy(tmp_path / "source" / "run.json", published)
    with gzip.open(published / "results.jsonl.gz", "wb") as handle:
        handle.write((tmp_path / "source" / "results.jsonl").read_bytes())
    for source in (tmp_path / "source", published):
        out = tmp_path / f"from_{source.name}"
        calls = _scorings(monkeypatch)
        result = run_evaluation(_spec(("flops", "naswot", "params")), out, progress=False, scores_from=source)
        assert set(calls) == set(_values(tmp_path / "full")) and set(calls.values()) == {("params",)}
        assert _values(out) == _values(tmp_path / "full")
        assert {tuple(r["borrowed"]) for r in load_records(out)} == {("flops", "naswot")}
        assert result["rankings"] == full["rankings"]


def test_a_fisher_proxy_is_taken_at_each_preset_the_source_scored_it_at(tmp_path, monkeypatch):
    two = _spec(("vkdnw", "flops"), presets=("paper", "exact"), seeds=(0,))
    run_evaluation(two, tmp_path / "two", progress=False)
    source = _values(tmp_path / "two")
    calls = _scorings(monkeypatch)
    run_evaluation(_spec(("vkdnw", "naswot"), seeds=(0,)), tmp_path / "exact", progress=False,
                   scores_from=tmp_path / "two")
    assert set(calls.values()) == {("naswot",)}
    assert {k: v["vkdnw"] for k, v in _values(tmp_path / "exact").items()} == \
        {k: v["vkdnw@exact"] for k, v in source.items()}
    calls.clear()  # every column there, the presets in another order: nothing is scored
    run_evaluation(dataclasses.replace(two, presets=("exact", "paper")), tmp_path / "both", progress=False,
                   scores_from=tmp_path / "two")
    assert calls == {} and _values(tmp_path / "both") == source
    calls.clear()  # a preset the source lacks: the Fisher proxy is scored here, at both
    run_evaluation(_spec(("vkdnw", "flops"), presets=("exact",), seeds=(0,)), tmp_path / "one", progress=False)
    run_evaluation(two, tmp_path / "again", progress=False, scores_from=tmp_path / "one")
    assert set(calls.values()) == {("vkdnw",)} and _values(tmp_path / "again") == source


def test_what_failed_in_the_source_is_scored_here(tmp_path, monkeypatch):
    spec = _spec(("flops", "naswot"))
    run_evaluation(spec, tmp_path / "full", progress=False)
    records = load_records(tmp_path / "full")
    partly, whole = records[0], records[1]
    del partly["values"]["naswot"]
    partly["proxy_errors"] = {"naswot": "proxy 'naswot' failed: RuntimeError: boom"}
    records[1] = {"arch": whole["arch"], "seed": whole["seed"], "seconds": 1.0, "error": "RuntimeError: boom"}
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(tmp_path / "full" / "run.json", source)
    (source / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    calls = _scorings(monkeypatch)
    run_evaluation(spec, tmp_path / "run", progress=False, scores_from=source)
    assert calls == {(partly["arch"], partly["seed"]): ("naswot",), (whole["arch"], whole["seed"]): ("flops", "naswot")}
    assert _values(tmp_path / "run") == _values(tmp_path / "full")


def test_a_source_of_another_space_or_with_nothing_to_lend_is_refused_by_name(tmp_path, monkeypatch):
    run_evaluation(_spec(("flops",), seeds=(0,)), tmp_path / "source", progress=False)
    with pytest.raises(ValueError, match=f"--scores-from {tmp_path / 'source'} scored the space .*cifar10.* this "
                                         "evaluation scores .*cifar100"):
        run_evaluation(_spec(("flops",), dataset="cifar100"), tmp_path / "a", progress=False,
                       scores_from=tmp_path / "source")
    with pytest.raises(ValueError, match=r"holds none of the proxies \['naswot'\].*it scored \['flops'\]"):
        run_evaluation(_spec(("naswot",)), tmp_path / "b", progress=False, scores_from=tmp_path / "source")
    with pytest.raises(FileNotFoundError, match="holds no evaluation"):
        run_evaluation(_spec(("flops",)), tmp_path / "c", progress=False, scores_from=tmp_path / "nothing")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before the run is opened
    # A proxy other than the Fisher ones is scored on the first preset's network: another initialisation there
    # is another network, whose scores are not these.
    monkeypatch.setitem(PRESETS, "as_built", FisherConfig(init=None))
    with pytest.raises(ValueError, match="holds none of the proxies"):
        run_evaluation(_spec(("flops",), presets=("as_built",)), tmp_path / "d", progress=False,
                       scores_from=tmp_path / "source")


def test_cli_evaluate_takes_scores_from_a_run_and_says_which(tmp_path, capsys):
    common = ["nb201", "evaluate", "--limit", "4", "--seeds", "1"]
    assert cli.main(common + ["--proxies", "flops", "--out", str(tmp_path / "source"), "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(common + ["--proxies", "flops,params", "--out", str(tmp_path / "run"),
                              "--scores-from", str(tmp_path / "source")]) == 0
    assert f"taking flops from {tmp_path / 'source'} for 4 of the 4 (architecture, seed) left to score" \
        in capsys.readouterr().err
    assert [r["borrowed"] for r in load_records(tmp_path / "run")] == [["flops"]] * 4


def test_the_transnas_vkdnw_script_takes_the_label_free_scores_of_its_samples(tmp_path):
    """bench/transnas_vkdnw.sh passes --scores-from the published label-free run of the same sample, nothing
    where no such run exists (another LIMIT), and scores no sample whose VKDNW run is published already: a
    stand-in `python` on PATH prints the command."""
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "python").write_text('#!/bin/sh\necho "$@"\n')
    (tmp_path / "python").chmod(0o755)

    def command(space, task, **settings):
        env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "SPACES": space, "TASKS": task, **settings}
        done = subprocess.run(["bash", "bench/transnas_vkdnw.sh", "run"], cwd=root, env=env,
                              capture_output=True, text=True, check=True)
        return done.stdout.split()

    samples = [(space, task) for space in ("tnb_micro", "tnb_macro") for task in ("class_scene", "class_object")]
    for space, task in samples:
        lender = f"bench/results/tnb/{space}_{task}_label_free100"
        assert (root / lender).is_dir()
        words = command(space, task)
        if (root / f"bench/results/tnb/{space}_{task}_vkdnw100").is_dir():
            assert words == f"{space}_{task}_vkdnw100: published in bench/results/tnb/, not scored again".split()
        else:
            assert words[words.index("--scores-from") + 1] == lender and "--limit" in words and "100" in words
        assert "--scores-from" not in command(space, task, LIMIT="7")
