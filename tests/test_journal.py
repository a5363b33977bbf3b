"""The engine's journal: a scoring cut short resumes at its first missing block of passes with the same
bits as one never interrupted, and an evaluation resumes its cells under way so."""
from __future__ import annotations

import json

import pytest
import torch

import vkdnw_fast as vf
from vkdnw_fast import journal
from vkdnw_fast.evaluation import EvaluationSpec, load_records, run_evaluation

from test_engine import batch, config, initialised

PLANS = [("residual_bn", "rows", None, "auto"), ("residual_bn", "forward", 2, "linearised"),
         ("residual_bn", "forward", 2, "jvp"), ("features_lt_classes", "features", None, "auto")]


_SAVE = journal.PassLog.save


class Killed(BaseException):
    """What the process would not survive: raised where nothing catches it, after a block is saved."""


def _saves(monkeypatch, kill_after: int | None = None) -> list:
    """The (directory, start, size) of every block saved from now on; the ``kill_after``-th save raises Killed
    once it is on disk."""
    saved = []

    def save(self, start, size, block):
        _SAVE(self, start, size, block)
        saved.append((self.directory.name, start, size))
        if len(saved) == kill_after:
            raise Killed
    monkeypatch.setattr(journal.PassLog, "save", save)
    return saved


def _matrix(name, strategy, chunk, seed=0, tangents="auto", preset="paper", sample_chunk=None):
    model = initialised(name, seed)
    return vf.fisher_matrix(model, batch(), config=config(preset, strategy=strategy, pass_chunk=chunk,
                                                          tangents=tangents, sample_chunk=sample_chunk))


@pytest.mark.parametrize("name, strategy, chunk, tangents", PLANS)
def test_an_interrupted_scoring_resumes_at_its_first_missing_block_with_the_same_bits(name, strategy, chunk, tangents,
                                                                                      tmp_path, monkeypatch):
    uninterrupted = _matrix(name, strategy, chunk, tangents=tangents)
    with journal.journaled(tmp_path / "whole"):
        whole = _saves(monkeypatch)
        assert torch.equal(_matrix(name, strategy, chunk, tangents=tangents), uninterrupted)
    assert len(whole) >= 3
    kill_after = len(whole) // 2
    with vf.journaled(tmp_path / "cut"), pytest.raises(Killed):  # as the README shows it
        _saves(monkeypatch, kill_after)
        _matrix(name, strategy, chunk, tangents=tangents)
    with vf.journaled(tmp_path / "cut"):
        resumed = _saves(monkeypatch)
        assert torch.equal(_matrix(name, strategy, chunk, tangents=tangents), uninterrupted)
    assert resumed == whole[kill_after:]


def test_a_scoring_in_chunks_of_samples_resumes_in_the_chunk_it_was_cut_in(tmp_path, monkeypatch):
    """Each chunk's passes keep a log of their own, in program order: cut in the second chunk, the resumed scoring
    takes the first chunk's blocks and those the second had saved, and runs the rest (``exact``: every chunk with
    the whole batch's BatchNorm statistics)."""
    def chunked():
        return _matrix("residual_bn", "rows", None, preset="exact", sample_chunk=3)
    uninterrupted = chunked()
    with journal.journaled(tmp_path / "whole"):
        whole = _saves(monkeypatch)
        assert torch.equal(chunked(), uninterrupted)
    logs = sorted({directory for directory, _, _ in whole})
    assert len(logs) >= 2
    kill_after = next(i for i, (directory, _, _) in enumerate(whole) if directory == logs[1]) + 1
    with journal.journaled(tmp_path / "cut"), pytest.raises(Killed):
        _saves(monkeypatch, kill_after)
        chunked()
    with journal.journaled(tmp_path / "cut"):
        resumed = _saves(monkeypatch)
        assert torch.equal(chunked(), uninterrupted)
    assert resumed == whole[kill_after:]


def test_the_blocks_of_another_computation_are_dropped_not_used(tmp_path, monkeypatch):
    """Another network in the same directory (a journal left from an older version of a run, say): its
    blocks do not fit this computation's fingerprint, so all are computed again."""
    uninterrupted = _matrix("residual_bn", "rows", None, seed=0)
    with journal.journaled(tmp_path / "fresh"):
        fresh = _saves(monkeypatch)
        _matrix("residual_bn", "rows", None, seed=0)
    with journal.journaled(tmp_path / "other"), pytest.raises(Killed):
        _saves(monkeypatch, 3)
        _matrix("residual_bn", "rows", None, seed=1)
    with journal.journaled(tmp_path / "other"):
        saved = _saves(monkeypatch)
        assert torch.equal(_matrix("residual_bn", "rows", None, seed=0), uninterrupted)
    assert [block[1:] for block in saved] == [block[1:] for block in fresh]


def test_a_damaged_block_is_computed_again_with_those_after_it(tmp_path, monkeypatch):
    uninterrupted = _matrix("residual_bn", "rows", None)
    with journal.journaled(tmp_path), pytest.raises(Killed):
        _saves(monkeypatch, 5)
        _matrix("residual_bn", "rows", None)
    (tmp_path / "pass0" / "2-1.pt").write_bytes(b"half a file")
    with journal.journaled(tmp_path):
        saved = _saves(monkeypatch)
        assert torch.equal(_matrix("residual_bn", "rows", None), uninterrupted)
    assert saved[0][1:] == (2, 1)


def test_a_journal_that_cannot_be_written_leaves_the_scoring_going_with_a_warning(tmp_path):
    uninterrupted = _matrix("residual_bn", "rows", None)
    (tmp_path / "pass0").write_text("a file where the journal wants a directory")
    with journal.journaled(tmp_path), pytest.warns(RuntimeWarning, match="cannot keep this scoring's finished passes"):
        assert torch.equal(_matrix("residual_bn", "rows", None), uninterrupted)


def test_a_block_size_halved_after_running_out_of_memory_is_the_size_resumed_at(tmp_path, monkeypatch):
    """Blocks of 8 tangents fail, 4 fit and are saved; the resumed scoring goes on with 4, as the
    uninterrupted one did (a vmapped block's size can change its bits)."""
    from test_engine import _vmap_out_of_memory_above
    _vmap_out_of_memory_above(4, [], monkeypatch, device="cpu")
    uninterrupted = _matrix("residual_bn", "forward", 8, tangents="jvp")
    with journal.journaled(tmp_path), pytest.raises(Killed):
        _saves(monkeypatch, 1)
        _matrix("residual_bn", "forward", 8, tangents="jvp")
    with journal.journaled(tmp_path):
        saved = _saves(monkeypatch)
        assert torch.equal(_matrix("residual_bn", "forward", 8, tangents="jvp"), uninterrupted)
    assert {size for _, _, size in saved[:-1]} == {4}


def test_an_evaluation_resumes_the_cell_it_was_stopped_in_and_removes_its_journal(tmp_path, monkeypatch):
    """Stopped during the paper preset's backward passes of its second cell, the run keeps the first cell's
    record and the second's finished blocks; resumed, in process or by a worker pool, it computes only the
    rest, records what a run never stopped records, and leaves no journal behind."""
    spec = EvaluationSpec(proxies=("vkdnw",), presets=("paper", "exact"), limit=2, sample_seed=0, seeds=(0,))
    run_evaluation(spec, tmp_path / "whole", progress=False)
    blocks = _saves(monkeypatch)
    run_evaluation(spec, tmp_path / "counted", progress=False)
    per_cell = len(blocks) // 2

    def values(directory):
        return {r["arch"]: r["values"] for r in load_records(directory)}
    for workers in (1, 2):
        cut = tmp_path / f"cut{workers}"
        _saves(monkeypatch, per_cell + 4)
        with pytest.raises(Killed):
            run_evaluation(spec, cut, progress=False)
        assert len(load_records(cut)) == 1
        assert len(list((cut / "journal").glob("*/pass0/*.pt"))) == 4
        resumed = _saves(monkeypatch)
        run_evaluation(spec, cut, progress=False, workers=workers)
        if workers == 1:  # a pool's workers save in processes of their own
            assert len(resumed) == per_cell - 4
        # The resumed cell's record says so (its seconds count only what it ran); the other's does not.
        assert sorted(r.get("resumed_blocks", 0) for r in load_records(cut)) == [0, 4]
        assert values(cut) == values(tmp_path / "whole")
        assert list((cut / "journal").iterdir()) == []
    assert json.loads((tmp_path / "cut1" / "run.json").read_text()) == json.loads(
        (tmp_path / "whole" / "run.json").read_text())


def test_the_journal_of_a_cell_recorded_before_it_was_removed_goes_when_the_run_resumes(tmp_path):
    spec = EvaluationSpec(proxies=("flops",), presets=("exact",), limit=2, sample_seed=0, seeds=(0,))
    run_evaluation(spec, tmp_path, progress=False)
    arch = load_records(tmp_path)[0]["arch"]
    left = journal.cell_directory(tmp_path / "journal", arch, 0) / "pass0"
    left.mkdir(parents=True)
    (left / "0-1.pt").write_bytes(b"")
    run_evaluation(spec, tmp_path, progress=False)
    assert list((tmp_path / "journal").iterdir()) == []


def test_a_search_resumes_the_candidate_it_was_stopped_in(tmp_path, monkeypatch):
    """The evolution's driver (``vkdnw-fast search``): stopped inside a candidate's passes, it resumes there;
    the record is an uninterrupted search's, and no journal is left once it finishes."""
    from vkdnw_fast.search import SearchConfig, run_search
    from test_search import evaluated

    cfg = SearchConfig(space={"name": "nb201", "dataset": "cifar10", "subset": "all"}, proxies=("vkdnw",),
                       iterations=4, population=2, seed=0)
    run_search(cfg, tmp_path / "whole", progress=False)
    blocks = _saves(monkeypatch)
    run_search(cfg, tmp_path / "counted", progress=False)
    per_candidate = len(blocks) // cfg.iterations
    kill_after = 2 * per_candidate + 3  # three blocks into the third candidate
    _saves(monkeypatch, kill_after)
    with pytest.raises(Killed):
        run_search(cfg, tmp_path / "cut", progress=False)
    assert len(evaluated(tmp_path / "cut")) == 2
    assert len(list((tmp_path / "cut" / "journal").glob("*/pass0/*.pt"))) == 3
    resumed = _saves(monkeypatch)
    run_search(cfg, tmp_path / "cut", progress=False)
    assert len(resumed) == len(blocks) - kill_after
    assert evaluated(tmp_path / "cut") == evaluated(tmp_path / "whole")
    assert not (tmp_path / "cut" / "journal").exists()


def test_the_readmes_quote_the_recorded_benchmark():
    """The journal's figures in README.md and bench/README.md are those of ``bench/results/journal_cpu.json``."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    record = json.loads((root / "bench/results/journal_cpu.json").read_text())
    overhead, resume = record["overhead"], record["resume"]
    assert overhead["same_bits"] and resume["same_bits"]
    assert f"it costs NB201 networks {100 * (overhead['journaled_over_plain'] - 1):.1f}%" in \
        " ".join((root / "README.md").read_text().split())
    table = (root / "bench/README.md").read_text()
    assert (f"| {overhead['plain_s']:.1f} s | {overhead['journaled_s']:.1f} s | {overhead['journaled_over_plain']:.3f} "
            f"(median per network {overhead['median_per_network_ratio']:.3f}) | yes |") in table
    assert f"| {resume['whole_s']:.1f} s | {resume['resumed_s']:.1f} s | {resume['resumed_over_whole']:.2f} | yes |" in table


def test_the_search_command_journals_each_candidate_in_its_run_directory(tmp_path, monkeypatch):
    from vkdnw_fast import backends
    from vkdnw_fast.search.cli import main

    directories = []
    real = backends.journaled

    def journaled(directory):
        directories.append(directory)
        return real(directory)
    monkeypatch.setattr(backends, "journaled", journaled)
    assert main(["--space", "nb201", "--budget", "2", "--population", "2", "--proxies", "vkdnw", "--seed", "5",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    assert directories and all(d.parent == tmp_path / "journal" for d in directories)
    assert not (tmp_path / "journal").exists()  # removed once the search finished
