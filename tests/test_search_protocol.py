"""The repeated-run search algorithms (naswot, random, rea, area) and their protocol runner, on a small
space with a ground truth where the right answer is known by brute force, and on NAS-Bench-201 for
the protocol's figures that the NASWOT paper reports."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vkdnw_fast import benchmarks, spaces
from vkdnw_fast.backends import Job
from vkdnw_fast.benchmarks import Benchmark
from vkdnw_fast.evaluation import EvaluationSpec, run_evaluation
from vkdnw_fast.evaluation.store import open_results
from vkdnw_fast.runs import DirectoryLock
from vkdnw_fast.search import SearchConfig, SearchError, Store
from vkdnw_fast.search.algorithms import get_algorithm
from vkdnw_fast.search.cli import main
from vkdnw_fast.search.protocol import _borrowed, run_protocol
from vkdnw_fast.spaces import SearchSpace

WIDTHS = 20


class LineSpace(SearchSpace):
    """Architectures "0".."19": an MLP whose hidden width is 2 + the architecture's number."""

    name = "line"
    input_shape = (4,)
    num_classes = 3

    def validate(self, arch):
        if arch not in {str(k) for k in range(WIDTHS)}:
            raise ValueError(f"{arch!r} is not one of 0..{WIDTHS - 1}")
        return arch

    def sample(self, rng):
        return str(int(rng.integers(WIDTHS)))

    def mutate(self, arch, rng):
        return str((int(arch) + int(rng.choice([-1, 1]))) % WIDTHS)

    def build_model(self, arch):
        hidden = 2 + int(arch)
        return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3))

    def cost(self, arch):
        hidden = 2 + int(arch)
        return {"flops": 4.0 * hidden + 3 * hidden, "params": 4.0 * hidden + hidden + 3 * hidden + 3, "layers": 2.0}

    def enumerate(self):
        return iter(str(k) for k in range(WIDTHS))


def truth(arch: str) -> float:
    """A ground truth with one best architecture (BEST = 13) that is not the largest, rising towards it one
    mutation step at a time (so evolution can climb to it)."""
    return 70.0 - abs(int(arch) - 13)


BEST = max((str(k) for k in range(WIDTHS)), key=truth)


class LineBenchmark(Benchmark):
    name = space = "line"
    default_metric = "test@10"
    space_size = WIDTHS

    def archs(self):
        return [str(k) for k in range(WIDTHS)]

    def datasets(self):
        return ("toy",)

    def metrics(self, dataset):
        if dataset != "toy":
            raise ValueError(f"unknown dataset {dataset!r}")
        return ("test@10", "valid@10", "valid@1")

    def values(self, archs, dataset, metric=None):
        metric = self.check_metric(dataset, metric)
        offset = {"test@10": 0.0, "valid@10": -1.0, "valid@1": -30.0}[metric]
        return np.array([truth(a) + offset for a in archs])


@pytest.fixture(autouse=True)
def line_space():
    """The toy space and benchmark in the registries for one test (scored in-process only)."""
    spaces.registry._SPACES._classes["line"] = LineSpace
    benchmarks.registry._BENCHMARKS._classes["line"] = LineBenchmark
    yield
    del spaces.registry._SPACES._classes["line"], benchmarks.registry._BENCHMARKS._classes["line"]


def config(algorithm, **fields):
    base = dict(space={"name": "line"}, proxies=("params",), iterations=10, seed=0, init_seed=0,
                fitness="valid@1", fitness_dataset="toy", population=4, warmup=8)
    base.update(fields)
    return SearchConfig(algorithm=algorithm, **base)


def test_naswot_with_every_architecture_drawn_returns_the_proxys_argmax(tmp_path):
    results = run_protocol(config("naswot", iterations=400), runs=3, out=tmp_path, progress=False)
    runs = json.loads((tmp_path / "runs.json").read_text())
    # 400 draws with replacement from 20 cover all of them for these seeds; then the answer is the
    # largest network, params' argmax, and the best in the sample is the space's optimum.
    assert all(run["arch"] == "19" for run in runs)
    assert results["optimal_in_sample"]["toy"]["test"] == [truth(BEST), 0.0]
    assert results["accuracy"]["toy"]["test"] == [truth("19"), 0.0]
    assert results["proxy_evaluations_per_run"] == 400 and results["benchmark_queries_per_run"] == 0
    scores = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert sorted(r["arch"] for r in scores) == sorted(str(k) for k in range(WIDTHS))  # each scored once
    # The search time counts every draw at its recorded scoring time, repeats included.
    seconds = {r["arch"]: r["seconds"] for r in scores}
    rng = np.random.default_rng(0)
    drawn = [str(int(rng.integers(WIDTHS))) for _ in range(400)]
    assert runs[0]["search_seconds"] == pytest.approx(sum(seconds[a] for a in drawn))


def test_naswot_picks_the_best_of_its_own_sample(tmp_path):
    results = run_protocol(config("naswot", iterations=5), runs=4, out=tmp_path, progress=False)
    for run in json.loads((tmp_path / "runs.json").read_text()):
        rng = np.random.default_rng(run["seed"])
        drawn = [str(int(rng.integers(WIDTHS))) for _ in range(5)]
        assert run["arch"] == max(drawn, key=int)  # params grows with the width
        assert run["accuracy"]["toy"]["valid"] == truth(run["arch"]) - 1.0
    found = [truth(run["arch"]) for run in json.loads((tmp_path / "runs.json").read_text())]
    assert results["accuracy"]["toy"]["test"] == pytest.approx([np.mean(found), np.std(found, ddof=1)])


def test_random_returns_one_of_its_sample(tmp_path):
    run_protocol(config("random", proxies=(), iterations=6), runs=5, out=tmp_path, progress=False)
    assert not (tmp_path / "scores.jsonl").exists() or not (tmp_path / "scores.jsonl").read_text()
    for run in json.loads((tmp_path / "runs.json").read_text()):
        rng = np.random.default_rng(run["seed"])
        assert run["arch"] in [str(int(rng.integers(WIDTHS))) for _ in range(6)]


def test_rea_with_the_ground_truth_as_fitness_finds_the_optimum(tmp_path):
    results = run_protocol(config("rea", proxies=(), iterations=60), runs=5, out=tmp_path, progress=False)
    assert [run["arch"] for run in json.loads((tmp_path / "runs.json").read_text())] == [BEST] * 5
    assert results["benchmark_queries_per_run"] == 60 and results["search_seconds_per_run"] == 0


def test_rea_keeps_the_youngest_population_and_mutates_the_tournament_winner():
    rng = np.random.default_rng(3)
    algorithm = get_algorithm("rea")(config("rea", proxies=(), iterations=30), LineSpace(), rng)
    born = []
    for slot in range(30):
        arch, parent = algorithm.propose()
        if slot >= 4:  # after the 4 founders: a neighbour of a living member
            assert parent in [member[0] for member in algorithm.population]
            assert (int(arch) - int(born[parent])) % WIDTHS in (1, WIDTHS - 1)
        born.append(arch)
        algorithm.integrate(slot, arch, {"fitness": truth(arch)})
        assert [member[0] for member in algorithm.population] == list(range(max(0, slot - 3), slot + 1))
    assert algorithm.result().best_arch == max(born, key=truth)


def test_area_starts_from_the_proxys_top_of_its_warmup():
    rng = np.random.default_rng(1)
    algorithm = get_algorithm("area")(config("area", iterations=10, warmup=8), LineSpace(), rng)
    warmup, founders = [], []
    while not algorithm.done():
        arch, _ = algorithm.propose()
        kind = algorithm.evaluates()
        if kind == "proxy":
            warmup.append(arch)
            algorithm.integrate(len(warmup) - 1, arch, {"params": float(int(arch))})
        else:
            founders.append(arch)
            algorithm.integrate(len(warmup) + len(founders) - 1, arch, {"fitness": truth(arch)})
    assert len(warmup) == 8 and len(founders) == 10  # queries count, proxy scores do not
    ranked = sorted(range(8), key=lambda i: -int(warmup[i]))
    assert founders[:4] == [warmup[i] for i in ranked[:4]]


def test_runs_share_and_resume_their_scores(tmp_path, monkeypatch):
    calls = []
    original = Job.__init__

    def counting(self, *args, **kwargs):
        calls.append(args)
        original(self, *args, **kwargs)
    first = run_protocol(config("naswot", iterations=8), runs=6, out=tmp_path, progress=False)
    monkeypatch.setattr(Job, "__init__", counting)
    again = run_protocol(config("naswot", iterations=8), runs=6, out=tmp_path, progress=False)
    assert calls == [] and again == first  # nothing scored twice; the same answer
    more = run_protocol(config("naswot", iterations=8), runs=9, out=tmp_path, progress=False)
    assert more["runs"] == 9
    with pytest.raises(ValueError, match=r"iterations \(stored 8, requested 9\)"):
        run_protocol(config("naswot", iterations=9), runs=6, out=tmp_path, progress=False)


def test_a_second_search_or_evaluation_in_a_busy_directory_is_refused_by_name(tmp_path):
    with DirectoryLock(tmp_path, "search"):
        with pytest.raises(SearchError, match=rf"{tmp_path} is being written by another search \(pid {os.getpid()}\)"):
            run_protocol(config("naswot"), runs=2, out=tmp_path, progress=False)
        with pytest.raises(SearchError, match="another search"):
            Store(tmp_path)  # the evolutionary search's record takes the same lock
        assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock"]  # nothing written meanwhile
    first = run_protocol(config("naswot"), runs=2, out=tmp_path, progress=False)
    assert run_protocol(config("naswot"), runs=2, out=tmp_path, progress=False) == first  # released after each


def test_scores_can_come_from_an_evaluation_run(tmp_path, monkeypatch):
    spec = EvaluationSpec(space="line", dataset="toy", proxies=("params", "flops"), presets=("exact",), seeds=(0,))
    run_evaluation(spec, tmp_path / "evaluation", progress=False)
    own = run_protocol(config("naswot", iterations=12), runs=4, out=tmp_path / "own", progress=False)
    monkeypatch.setattr(Job, "__init__", lambda *a, **k: pytest.fail("nothing should be scored"))
    borrowed = run_protocol(config("naswot", iterations=12), runs=4, out=tmp_path / "borrowed", progress=False,
                            scores_from=tmp_path / "evaluation")
    # The same scores, so the same answers (the search time is the evaluation's recorded one).
    assert borrowed["accuracy"] == own["accuracy"] and borrowed["scores_from"] == str(tmp_path / "evaluation")
    archs = [[run["arch"] for run in json.loads((tmp_path / d / "runs.json").read_text())] for d in ("own", "borrowed")]
    assert archs[0] == archs[1]
    with pytest.raises(ValueError, match=r"the search needs \['naswot'\] with preset 'exact'"):
        run_protocol(config("naswot", proxies=("naswot",), iterations=3), runs=1, out=tmp_path / "x", progress=False,
                     scores_from=tmp_path / "evaluation")
    open_results(tmp_path / "nb201", EvaluationSpec(space="nb201", dataset="cifar10", proxies=("params",),
                                                    presets=("exact",), seeds=(0,))).close()
    with pytest.raises(ValueError, match=rf"--scores-from {tmp_path / 'nb201'} scored the space .*nb201.*, the search "
                                         r"scores \{'name': 'line'"):
        run_protocol(config("naswot"), runs=1, out=tmp_path / "y", progress=False, scores_from=tmp_path / "nb201")


def test_a_borrowed_cell_whose_needed_proxy_failed_is_a_failed_candidate(tmp_path):
    spec = EvaluationSpec(space="line", dataset="toy", proxies=("params", "flops"), presets=("exact",), seeds=(0,))
    run_evaluation(spec, tmp_path / "evaluation", progress=False)
    path = tmp_path / "evaluation" / "results.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    # cell 0: params (which the search reads) failed; cell 1: flops (which it does not) failed; cell 2: all.
    del records[0]["values"]["params"]
    records[0]["proxy_errors"] = {"params": "proxy 'params' failed on 0: RuntimeError: boom"}
    del records[1]["values"]["flops"]
    records[1]["proxy_errors"] = {"flops": "proxy 'flops' failed on 1: RuntimeError: boom"}
    records[2] = {k: v for k, v in records[2].items() if k != "values"} | {"error": "RuntimeError: all"}
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    borrowed = _borrowed(tmp_path / "evaluation", config("naswot"))
    assert borrowed[records[0]["arch"]] == {"arch": records[0]["arch"], "seed": 0, "seconds": records[0]["seconds"],
                                            "error": "proxy 'params' failed on 0: RuntimeError: boom"}
    assert borrowed[records[1]["arch"]]["values"] == {"params": records[1]["values"]["params"]}
    assert borrowed[records[2]["arch"]]["error"] == "RuntimeError: all"


def test_cli_refuses_flags_an_algorithm_does_not_use(tmp_path, capsys):
    for argv, message in [
        (["--algorithm", "rea", "--budget", "5", "--samples", "3"], "--samples not used by --algorithm rea"),
        (["--algorithm", "naswot", "--samples", "3"], "--algorithm naswot needs --proxy NAME"),
        (["--algorithm", "random", "--samples", "3", "--proxy", "params"], "--proxy not used by --algorithm random"),
        (["--algorithm", "random"], "--algorithm random needs --samples N"),
        (["--algorithm", "evolution", "--budget", "3", "--warmup", "4"], "--warmup not used by --algorithm evolution"),
        (["--algorithm", "random", "--samples", "3", "--memory", "2GiB"], "--memory not used by --algorithm random"),
        (["--algorithm", "naswot", "--proxy", "params", "--samples", "3", "--memory", "2GiB"],
         "--memory caps what a local worker pool's processes take together (--workers 2 or more), not one process"),
        (["--algorithm", "evolution", "--budget", "3", "--workers", "2", "--backend", "ray", "--memory", "2G"],
         "--memory caps what a local worker pool's processes take together (--workers 2 or more), not the ray "
         "backend"),
    ]:
        with pytest.raises(SystemExit):
            main(["--space", "nb201", *argv, "--out", str(tmp_path / "x")])
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--algorithm", "naswot", "--proxy", "params", "--samples", "3", "--runs", "2"],
                                  ["--algorithm", "evolution", "--proxies", "params", "--budget", "4",
                                   "--population", "2"]])
def test_cli_memory_caps_what_the_scoring_worker_pool_shares(tmp_path, started_pools, argv):
    assert main(["--space", "nb201", *argv, "--workers", "2", "--memory", "1.5GiB", "--no-progress",
                 "--out", str(tmp_path)]) == 0
    assert [p["memory"] for p in started_pools] == [3 * 2**29]


def test_cli_runs_the_protocol_on_nb201_and_sets_the_paper_beside_it(tmp_path, capsys):
    assert main(["--space", "nb201", "--algorithm", "random", "--samples", "10", "--runs", "40",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["command"].startswith("vkdnw-fast search --space nb201 --algorithm random")
    assert results["paper"]["optimal_in_sample"]["test"]["cifar10"] == [93.06, 0.59]
    assert set(results["accuracy"]) == {"cifar10", "cifar100", "ImageNet16-120"}
    assert set(results["accuracy"]["cifar100"]) == {"test", "valid"}
    nb = benchmarks.get("nb201")
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert runs[7]["accuracy"]["cifar100"]["test"] == nb.value(runs[7]["arch"], "cifar100")
    assert "(paper 69.76 ± 1.25)" in capsys.readouterr().out


class EvenLineBenchmark(LineBenchmark):
    """The line space's ground truth for its even architectures only: a partial benchmark."""

    def archs(self):
        return [str(k) for k in range(0, WIDTHS, 2)]


def test_a_partial_benchmark_is_searched_within_and_evolution_on_it_refused(tmp_path):
    partial = EvenLineBenchmark()
    assert LineBenchmark().complete() and not partial.complete()
    results = run_protocol(config("naswot", iterations=400), runs=3, out=tmp_path, benchmark=partial, progress=False)
    # Every draw is one of the 10 held architectures, so the answer is params' argmax among them.
    assert [run["arch"] for run in json.loads((tmp_path / "runs.json").read_text())] == ["18"] * 3
    assert results["drawn_from"] == "the 10 architectures the line benchmark holds"
    scored = {json.loads(line)["arch"] for line in (tmp_path / "scores.jsonl").read_text().splitlines()}
    assert scored == set(partial.archs())
    whole = run_protocol(config("naswot", iterations=400), runs=1, out=tmp_path / "whole", progress=False)
    assert whole["drawn_from"] == "the whole space" and whole["accuracy"]["toy"]["test"][0] == truth("19")
    for algorithm in ("rea", "area"):
        with pytest.raises(ValueError, match=f"{algorithm} mutates architectures, and the line benchmark given "
                                             "holds 10 of the space's 20"):
            run_protocol(config(algorithm), runs=1, out=tmp_path / algorithm, benchmark=partial, progress=False)


def test_nb101s_bundled_subset_and_partial_nats_files_are_searched_within(tmp_path, capsys):
    """NAS-Bench-101's bundled 292 cells and NATS-Bench API files for three architectures: random search
    draws among them (every answer has a ground truth), REA is refused naming the option for the rest."""
    nb101 = benchmarks.get("nb101")
    assert not nb101.complete() and len(nb101.archs()) == 292
    assert main(["--space", "nb101", "--algorithm", "random", "--samples", "10", "--runs", "30", "--no-progress",
                 "--out", str(tmp_path / "nb101")]) == 0
    held = set(nb101.archs())
    runs = json.loads((tmp_path / "nb101" / "runs.json").read_text())
    assert all(run["arch"] in held for run in runs)
    assert len({run["arch"] for run in runs}) > 20
    assert runs[3]["accuracy"]["cifar10"]["valid"] == nb101.value(runs[3]["arch"], "cifar10")
    assert "drawn from the 292 architectures the nb101 benchmark holds" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--space", "nb101", "--algorithm", "rea", "--budget", "20", "--out", str(tmp_path / "rea")])
    assert "holds 292 of the space's 423,624" in capsys.readouterr().err

    pytest.importorskip("nats_bench")
    fixture = Path(__file__).parent / "data" / "NATS-sss-v1_0-50262-simple"  # indices 0, 11 and 284
    assert main(["--space", "nats_sss", "--algorithm", "random", "--samples", "40", "--runs", "10",
                 "--nats-path", str(fixture), "--no-progress", "--out", str(tmp_path / "sss")]) == 0
    results = json.loads((tmp_path / "sss" / "results.json").read_text())
    assert results["drawn_from"] == "the 3 architectures the nats_sss benchmark holds"
    # 40 draws among 3 include index 284, the best of them (cifar10 test@90: 79.79, 85.77, 89.51 in
    # NATS-Bench's files; tests/test_benchmarks_nats.py reads them the same way).
    assert results["optimal_in_sample"]["cifar10"]["test"] == pytest.approx([89.51, 0.0])
    runs = json.loads((tmp_path / "sss" / "runs.json").read_text())
    expected = {"8:8:8:8:8": 79.79, "8:8:8:16:32": 85.77, "8:8:40:32:40": 89.51}  # indices 0, 11, 284
    assert {run["arch"] for run in runs} <= set(expected)
    for run in runs:
        assert run["accuracy"]["cifar10"]["test"] == pytest.approx(expected[run["arch"]])
    with pytest.raises(SystemExit):
        main(["--space", "nats_sss", "--algorithm", "rea", "--budget", "20", "--nats-path", str(fixture),
              "--out", str(tmp_path / "sss_rea")])
    assert "holds 3 of the space's 32,768, so its children would mostly have no ground truth: give the whole " \
           "benchmark (--nats-path)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--space", "nats_sss", "--algorithm", "random", "--samples", "5"],
     "the nats_sss benchmark needs --nats-path (its data is not bundled)"),
    (["--space", "nb201", "--algorithm", "random", "--samples", "5", "--benchmark-path", "x.pkl"],
     "--benchmark-path does not apply to the nb201 benchmark (it reads --nats-path)"),
    (["--space", "nb101", "--algorithm", "random", "--samples", "5", "--nats-path", "x"],
     "--nats-path does not apply to the nb101 benchmark (it reads --benchmark-path)"),
    (["--space", "nb201", "--algorithm", "evolution", "--budget", "5", "--nats-path", "x"],
     "--nats-path not used by --algorithm evolution"),
    (["--space", "nats_sss", "--algorithm", "random", "--samples", "5", "--nats-path", "no/such/folder"],
     "no/such/folder: no such directory; --nats-path takes NATS-Bench's API folder"),
])
def test_the_search_command_names_a_missing_or_misplaced_ground_truth(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--no-progress", "--out", str(tmp_path / "x")])
    assert message in capsys.readouterr().err


def test_rea_fitness_defaults_to_the_benchmarks_own_metric_on_the_spaces_task(tmp_path):
    # NAS-Bench-201 has 12-epoch validation accuracies: NASWOT's REA fitness; TransNAS-Bench-101 has one
    # metric per task, queried on the task the space was built for; a dataset the benchmark lacks is named.
    assert main(["--space", "nb201", "--algorithm", "rea", "--budget", "20", "--runs", "2", "--no-progress",
                 "--out", str(tmp_path / "nb201")]) == 0
    saved = json.loads((tmp_path / "nb201" / "run.json").read_text())
    assert (saved["fitness"], saved["fitness_dataset"]) == ("valid@12", "cifar10")
    assert main(["--space", "tnb_micro", "--task", "class_scene", "--algorithm", "rea", "--budget", "30",
                 "--runs", "2", "--no-progress", "--out", str(tmp_path / "tnb")]) == 0
    saved = json.loads((tmp_path / "tnb" / "run.json").read_text())
    assert (saved["fitness"], saved["fitness_dataset"]) == ("valid@25", "class_scene")
    tnb = benchmarks.get("tnb_micro")
    results = json.loads((tmp_path / "tnb" / "results.json").read_text())
    for run in json.loads((tmp_path / "tnb" / "runs.json").read_text()):
        assert run["accuracy"]["class_scene"]["valid"] == tnb.value(run["arch"], "class_scene")
    assert results["fitness"] == "valid@25 on class_scene"
    with pytest.raises(ValueError, match="no dataset or task 'cifar10' to query the fitness on"):
        run_protocol(SearchConfig(space={"name": "tnb_micro", "dataset": "class_scene"}, proxies=(), iterations=5,
                                  algorithm="rea", population=4, fitness_dataset="cifar10"),
                     runs=1, out=tmp_path / "bad", progress=False)


COMMITTED = Path(__file__).resolve().parents[1] / "bench" / "results"


def _check_naswot_rows(directory, scored, proxy, cells, space, benchmark, split, metric=None):
    """A committed NASWOT search: each of its first runs' answer is the best-scoring draw of its seed's sample
    of ``space`` under the ``cells`` committed scores in ``scored``, and its table is the mean ± std of the
    answers' ``metric`` on every dataset of ``benchmark``."""
    results = json.loads((directory / "results.json").read_text())
    runs = json.loads(gzip.open(directory / "runs.json.gz", "rt").read())
    scores = {r["arch"]: r["values"][proxy] for r in map(json.loads, gzip.open(scored / "results.jsonl.gz", "rt"))}
    assert results["proxy"] == proxy and len(runs) == results["runs"] == 500
    assert len(scores) == cells
    for run in runs[:10]:
        rng = np.random.default_rng(run["seed"])
        drawn = [space.sample(rng) for _ in range(results["samples"])]
        assert run["arch"] == max(drawn, key=scores.__getitem__)  # max keeps the first of equals, as naswot
    for dataset in benchmark.datasets():
        found = benchmark.values([run["arch"] for run in runs], dataset, metric)
        assert results["accuracy"][dataset][split] == pytest.approx([np.mean(found), np.std(found, ddof=1)])


def _check_area_replays(directory, scored, tmp_path):
    """A committed AREA search: its first runs, replayed on the committed scores in ``scored`` (nothing left
    to score), return the committed answers."""
    saved = json.loads((directory / "run.json").read_text())
    config = SearchConfig.from_dict({k: v for k, v in saved.items() if k not in ("runs", "scores_from")})
    replayed = run_protocol(config, 3, tmp_path, scores_from=scored, progress=False)
    committed = json.loads(gzip.open(directory / "runs.json.gz", "rt").read())[:3]
    assert [run["arch"] for run in json.loads((tmp_path / "runs.json").read_text())] == \
        [run["arch"] for run in committed]
    assert not (tmp_path / "scores.jsonl").exists() or not (tmp_path / "scores.jsonl").read_text()
    assert replayed["algorithm"] == "area"


@pytest.mark.parametrize("name, proxy, scored", [("naswot128_n10", "naswot_128", "c10_naswot128"),
                                                  ("naswot128_n100", "naswot_128", "c10_naswot128"),
                                                  ("naswot128_n1000", "naswot_128", "c10_naswot128"),
                                                  ("vkdnw_single_n10", "vkdnw_single", "c10_vkdnw_single"),
                                                  ("vkdnw_single_n100", "vkdnw_single", "c10_vkdnw_single"),
                                                  ("vkdnw_single_n1000", "vkdnw_single", "c10_vkdnw_single")])
def test_the_committed_naswot_rows_follow_from_the_committed_whole_space_scores(name, proxy, scored):
    """The README's NASWOT rows, from the committed scores of all 15,625 cells: 200-epoch test accuracies."""
    _check_naswot_rows(COMMITTED / "nb201_search" / name, COMMITTED / "nb201_all" / scored, proxy, 15625,
                       spaces.get("nb201", dataset="cifar10", subset="all"), benchmarks.get("nb201"), "test",
                       "test@200")


@pytest.mark.parametrize("name, scored", [("area_naswot128_q300", "c10_naswot128"),
                                          ("area_vkdnw_single_q300", "c10_vkdnw_single")])
def test_the_committed_area_runs_replay_from_the_committed_scores(name, scored, tmp_path):
    """The README's AREA rows, on the committed scores of the cells they drew."""
    _check_area_replays(COMMITTED / "nb201_search" / name, COMMITTED / "nb201_all" / scored, tmp_path)


# TransNAS-Bench-101's micro searches borrow one whole-space scoring per task, published and named by each
# search (`scores_from`); each task's rows are tested as soon as they are published (bench/transnas_search.sh).
TNB_NASWOT_ROWS = sorted(COMMITTED.glob("tnb_search/*_naswot128_n*"))
TNB_AREA_ROWS = sorted(COMMITTED.glob("tnb_search/*_area_naswot128_q300"))


def _tnb_scores(directory):
    results = json.loads((directory / "run.json").read_text())
    scores = COMMITTED.parents[1] / results["scores_from"]
    assert scores.parent == COMMITTED / "tnb"  # the published copy, which a clone holds
    return scores, results


@pytest.mark.parametrize("directory", TNB_NASWOT_ROWS, ids=lambda p: p.name)
def test_the_committed_transnas_naswot_rows_follow_from_the_committed_whole_space_scores(directory):
    """The README's TransNAS-Bench-101 NASWOT rows, from the committed scores of all 4,096 micro cells on the
    run's task: the validation metric of every task."""
    scored, saved = _tnb_scores(directory)
    _check_naswot_rows(directory, scored, "naswot_128", 4096, spaces.from_spec(saved["space"]),
                       benchmarks.get("tnb_micro"), "valid")


@pytest.mark.parametrize("directory", TNB_AREA_ROWS, ids=lambda p: p.name)
def test_the_committed_transnas_area_runs_replay_from_the_committed_scores(directory, tmp_path):
    """The README's TransNAS-Bench-101 AREA rows, on the committed scores of the task's whole space."""
    _check_area_replays(directory, _tnb_scores(directory)[0], tmp_path)


def _quoted(mean_std: list[float]) -> str:
    return f"{mean_std[0]:.2f} ± {mean_std[1]:.2f}"


# README row -> (search directory, results.json field, split); the optimal-in-sample rows are the NASWOT
# runs' samples (the random runs with the same seeds draw the same ones).
_SEARCH_ROWS = {
    "random, N = 10": ("random_n10", "accuracy", "test"),
    "random, N = 100": ("random_n100", "accuracy", "test"),
    "NASWOT (`naswot_128`), N = 10": ("naswot128_n10", "accuracy", "test"),
    "NASWOT (`naswot_128`), N = 100": ("naswot128_n100", "accuracy", "test"),
    "NASWOT (`naswot_128`), N = 1,000": ("naswot128_n1000", "accuracy", "test"),
    "NASWOT's algorithm with `vkdnw_single`, N = 10 (new)": ("vkdnw_single_n10", "accuracy", "test"),
    "NASWOT's algorithm with `vkdnw_single`, N = 100 (new)": ("vkdnw_single_n100", "accuracy", "test"),
    "NASWOT's algorithm with `vkdnw_single`, N = 1,000 (new)": ("vkdnw_single_n1000", "accuracy", "test"),
    "optimal in a sample of 10": ("naswot128_n10", "optimal_in_sample", "test"),
    "optimal in a sample of 100": ("naswot128_n100", "optimal_in_sample", "test"),
    "optimal in a sample of 1,000": ("naswot128_n1000", "optimal_in_sample", "test"),
    "REA, 300 queries": ("rea_q300", "accuracy", "test"),
    "AREA (`naswot_128`, 20 scored + 300 queries), valid": ("area_naswot128_q300", "accuracy", "valid"),
    "AREA, test": ("area_naswot128_q300", "accuracy", "test"),
    "AREA with `vkdnw_single` (new), valid": ("area_vkdnw_single_q300", "accuracy", "valid"),
    "AREA with `vkdnw_single`, test": ("area_vkdnw_single_q300", "accuracy", "test"),
    "AREA (`naswot_128`, 20 scored + 300 queries)": ("area_naswot128_q300", "accuracy", "valid"),
}


def test_the_readme_nb201_search_table_quotes_the_committed_searches():
    """Our figure in each cell (the paper's follows in brackets) is the committed run's mean ± std."""
    from test_evaluation import readme_table

    _, rows = readme_table("| algorithm | runs | CIFAR-10 | CIFAR-100 | ImageNet16-120 |")
    assert len(rows) == 15
    for name, runs, *cells in rows:
        directory, field, split = _SEARCH_ROWS[name]
        results = json.loads((COMMITTED / "nb201_search" / directory / "results.json").read_text())
        assert int(runs) == results["runs"], name
        for dataset, cell in zip(("cifar10", "cifar100", "ImageNet16-120"), cells):
            assert cell.split(" (")[0] == _quoted(results[field][dataset][split]), (name, dataset)


def test_the_readme_transnas_search_table_quotes_the_committed_searches():
    """The TransNAS-Bench-101 micro table: the final validation metric, each task from its own searches."""
    from test_evaluation import readme_table

    _, rows = readme_table("| algorithm | runs | `class_scene` | `class_object` |")
    assert len(rows) == 10
    for name, runs, *cells in rows:
        directory, field, _ = _SEARCH_ROWS[name]
        for task, cell in zip(("class_scene", "class_object"), cells):
            results = json.loads((COMMITTED / "tnb_search" / f"{task}_{directory}" / "results.json").read_text())
            assert int(runs) == results["runs"], name
            assert cell == _quoted(results[field][task]["valid"]), (name, task)
