"""Repeated runs of a search algorithm against a benchmark: the protocol the NASWOT paper reports
(R runs with seeds S..S+R-1; mean ± std of the returned architecture's true accuracy).

The runs share one score per (architecture, init seed): every run's scores are computed with
``config.init_seed`` (default 0), whatever the run's search seed, and kept in ``DIR/scores.jsonl``
(the evaluation's result-store format, appended as each score finishes). So 500 runs of N = 1000
cost one scoring of the architectures they draw, an interrupted run loses at most the scores in
flight, and re-running the command resumes. A run itself is cheap and deterministic given its seed
and the scores: it is recomputed, not recorded. Scores can also be taken from an evaluation run
(``scores_from``: ``vkdnw-fast evaluate``'s directory, e.g. a published scoring of the whole space).

How a run gets its scores: the runner first plays every run with the scores at hand, treating a
missing one as a failed score and noting it; then scores everything noted on the backend (local
processes or Ray, with a progress bar); then plays the runs again, until nothing is missing. For the
sampling algorithms and ``area`` one pass finds every score they need, because what they score does
not depend on the scores.

``DIR/results.json``: the configuration, ``accuracy`` {dataset: {split: [mean, std]}} of the
returned architectures over the runs (the benchmark's final-epoch metrics: test, and valid where the
benchmark has it), ``optimal_in_sample`` (the same for the best architecture of each run's sample by
that metric, for the sampling algorithms), the mean search time per run and what it counts, and the
paper's row where the protocol matches. ``DIR/runs.json``: each run's answer.

The fitness of ``rea`` and ``area`` (a benchmark query standing for a trained architecture) is, unless
the configuration names it, NASWOT's: the 12-epoch validation accuracy where the benchmark has it
(NAS-Bench-201), otherwise the benchmark's default metric, on the space's dataset or task.

A benchmark that holds part of its space (NAS-Bench-101's bundled 292 cells, a user's partial API
files) is searched within: ``naswot`` and ``random`` draw uniformly from the architectures it holds
(``results.json`` says so under ``drawn_from``), so every answer has a ground truth; ``rea`` and
``area`` are refused, since their mutations would leave it.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from .. import benchmarks, spaces
from ..backends import Job, score_all
from ..benchmarks import Benchmark, parse_metric
from ..benchmarks.registry import file_options
from ..evaluation.store import ResultStore, lending_spec, load_records
from ..runs import DirectoryLock, check_saved_config
from ..scoring import column
from .algorithms import get_algorithm
from .config import SearchConfig
from .report import mean_std
from .store import SearchError

RUN, SCORES, RESULTS, RUNS = "run.json", "scores.jsonl", "results.json", "runs.json"
DEFAULT_INIT_SEED = 0

# NASWOT (Mellor et al., ICML 2021) Table 2(a): NAS-Bench-201, search on CIFAR-10, test accuracy mean ±
# std over 500 runs (AREA: 50 runs, validation accuracy only), search time on one 1080Ti.
PAPER_TABLE_2A = {
    ("naswot", 10): {"seconds": 3.05, "test": {"cifar10": (92.44, 1.13), "cifar100": (68.62, 2.04),
                                               "ImageNet16-120": (41.31, 4.11)}},
    ("naswot", 100): {"seconds": 30.01, "test": {"cifar10": (92.81, 0.99), "cifar100": (69.48, 1.70),
                                                 "ImageNet16-120": (43.10, 3.16)}},
    ("naswot", 1000): {"seconds": 306.19, "test": {"cifar10": (92.96, 0.81), "cifar100": (69.98, 1.22),
                                                   "ImageNet16-120": (44.44, 2.10)}},
    ("optimal", 10): {"test": {"cifar10": (93.06, 0.59), "cifar100": (69.76, 1.25), "ImageNet16-120": (43.30, 1.87)}},
    ("optimal", 100): {"test": {"cifar10": (93.84, 0.23), "cifar100": (71.56, 0.78), "ImageNet16-120": (45.67, 0.64)}},
    ("random", None): {"test": {"cifar10": (86.61, 13.46), "cifar100": (60.83, 12.58),
                                "ImageNet16-120": (33.13, 9.66)}},
    ("rea", None): {"test": {"cifar10": (93.92, 0.30), "cifar100": (71.84, 0.99), "ImageNet16-120": (45.54, 1.03)},
                    "valid": {"cifar10": (91.19, 0.31), "cifar100": (71.81, 1.12), "ImageNet16-120": (45.15, 0.89)}},
    ("area", None): {"valid": {"cifar10": (91.20, 0.27), "cifar100": (71.95, 0.99), "ImageNet16-120": (45.70, 1.05)}},
}


class _WithinBenchmark:
    """``space`` restricted to the architectures a partial benchmark holds (those of them the space
    admits, e.g. NAS-Bench-201's live cells for ``subset="unique"``): uniform draws among them."""

    def __init__(self, space, benchmark: Benchmark):
        self.space = space
        self.archs = [arch for arch in benchmark.archs() if space.is_feasible(arch)[0]]
        if not self.archs:
            raise ValueError(f"the {benchmark.name} benchmark given holds none of the architectures of "
                             f"the space {space.name}")

    def sample(self, rng: np.random.Generator) -> str:
        return self.archs[int(rng.integers(len(self.archs)))]

    def validate(self, arch: str) -> str:
        return self.space.validate(arch)

    def cost(self, arch: str) -> dict[str, float]:
        return self.space.cost(arch)


def _searched(space, benchmark: Benchmark, algorithm: str):
    """The space, or the part of it a partial benchmark holds (module docstring)."""
    if benchmark.complete():
        return space
    if get_algorithm(algorithm).mutates:
        raise ValueError(f"{algorithm} mutates architectures, and the {benchmark.name} benchmark given holds "
                         f"{len(benchmark.archs()):,} of the space's {benchmark.space_size:,}, so its children "
                         f"would mostly have no ground truth: give the whole benchmark "
                         f"({' or '.join(file_options(benchmark))}), or search it with naswot or random")
    return _WithinBenchmark(space, benchmark)


@dataclasses.dataclass
class _Play:
    """One run played against the scores at hand."""

    seed: int
    arch: str | None
    sample: list[str] | None
    search_seconds: float
    proxy_evaluations: int
    queries: int


class _Scores:
    """The proxies' values by architecture: this directory's store, then ``scores_from``'s records."""

    def __init__(self, store: ResultStore, config: SearchConfig, scores_from: str | Path | None):
        self.store, self.config, self.init_seed = store, config, config.scoring_seed
        self.borrowed = {} if scores_from is None else _borrowed(scores_from, config)

    def get(self, arch: str) -> dict[str, Any] | None:
        return self.store.records.get((arch, self.init_seed)) or self.borrowed.get(arch)


def _borrowed(directory: str | Path, config: SearchConfig) -> dict[str, dict[str, Any]]:
    """The records of an evaluation run that hold the configuration's scores (same space spec, proxies,
    preset and init seed), re-keyed by architecture with the configuration's column names."""
    spec = lending_spec(directory, config.space, config.data, "the search")
    if config.preset not in spec.presets or not set(config.proxies) <= set(spec.proxies):
        raise ValueError(f"{directory} holds proxies {list(spec.proxies)} with presets {list(spec.presets)}; "
                         f"the search needs {list(config.proxies)} with preset {config.preset!r}")
    names = {p: column(p, config.preset, spec.presets) for p in config.proxies}
    borrowed = {}
    for record in load_records(directory):
        if record["seed"] != config.scoring_seed:
            continue
        if "error" not in record and all(c in record["values"] for c in names.values()):
            borrowed[record["arch"]] = {**record, "values": {p: record["values"][c] for p, c in names.items()}}
        else:  # where a proxy the search needs failed, the candidate fails
            errors = record.get("proxy_errors", {})
            reason = record.get("error") or "; ".join(errors.get(c, f"{c}: not scored") for c in names.values()
                                                      if c not in record["values"])
            borrowed[record["arch"]] = {"arch": record["arch"], "seed": record["seed"], "seconds": record["seconds"],
                                        "error": reason}
    return borrowed


def _play(config: SearchConfig, seed: int, space, benchmark: Benchmark, scores: _Scores,
          missing: dict[str, None]) -> _Play:
    config = dataclasses.replace(config, seed=seed)
    rng = np.random.default_rng(seed)
    algorithm = get_algorithm(config.algorithm)(config, space, rng)
    slot, seconds, evaluations, queries, incomplete = 0, 0.0, 0, 0, False
    while not algorithm.done():
        arch, _ = algorithm.propose()
        arch = space.validate(arch)
        kind = algorithm.evaluates()
        values: dict[str, Any] | None = {}
        if kind == "proxy":
            record = scores.get(arch)
            evaluations += 1
            if record is None:
                missing[arch] = None
                incomplete, values = True, None
            else:
                seconds += record["seconds"] or 0.0  # None: a worker died on Ray, which reports no time
                values = record.get("values")
        elif kind == "fitness":
            queries += 1
            values = {"fitness": benchmark.value(arch, config.fitness_dataset, config.fitness)}
        algorithm.integrate(slot, arch, values)
        slot += 1
    if incomplete:
        return _Play(seed, None, None, seconds, evaluations, queries)
    result = algorithm.result()
    sample = getattr(algorithm, "sample", None)
    return _Play(seed, result.best_arch, sample, seconds, evaluations, queries)


def _final_metrics(benchmark: Benchmark, dataset: str) -> dict[str, str]:
    """{split: metric} of the benchmark's longest schedule for ``dataset`` (e.g. test@200, valid@200)."""
    metrics = [parse_metric(m) + (m,) for m in benchmark.metrics(dataset)]
    longest = max(epochs for _, epochs, _ in metrics)
    return {split: metric for split, epochs, metric in metrics if epochs == longest}


def _summary(values: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, list[float]]]:
    return {dataset: {split: list(mean_std(v)) for split, v in splits.items()} for dataset, splits in values.items()}


def with_fitness(config: SearchConfig, benchmark: Benchmark) -> SearchConfig:
    """``config`` with its fitness metric and dataset written out (see the module docstring), after
    checking that the benchmark has them."""
    dataset = config.fitness_dataset
    if dataset is None:
        dataset = config.space.get("dataset") or benchmark.datasets()[0]
    if dataset not in benchmark.datasets():
        raise ValueError(f"the {benchmark.name} benchmark has no dataset or task {dataset!r} to query the fitness on; "
                         f"it has {list(benchmark.datasets())}")
    metric = config.fitness
    if metric is None:
        metric = "valid@12" if "valid@12" in benchmark.metrics(dataset) else None
    return dataclasses.replace(config, fitness=benchmark.check_metric(dataset, metric), fitness_dataset=dataset)


def run_protocol(config: SearchConfig, runs: int, out: str | Path, *, benchmark: Benchmark | None = None,
                 scores_from: str | Path | None = None, backend: str = "local", workers: int = 1,
                 address: str | None = None, device: str | None = None, progress: bool = True,
                 command: str | None = None, memory: int | None = None) -> dict[str, Any]:
    """Run ``config``'s algorithm ``runs`` times (seeds ``config.seed`` .. + runs - 1) in ``out`` and
    write ``results.json`` and ``runs.json`` there (see the module docstring); returns the results."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    algorithm = get_algorithm(config.algorithm)
    if algorithm.done is get_algorithm("evolution").done:
        raise ValueError(f"the {config.algorithm} algorithm runs under the search driver (run_search), "
                         "not as repeated protocol runs")
    config = config if config.init_seed is not None else dataclasses.replace(config, init_seed=DEFAULT_INIT_SEED)
    space = spaces.from_spec(config.space)
    if config.proxies:  # only scoring reads the data
        config.check_data()
    benchmark = benchmarks.get(config.space["name"]) if benchmark is None else benchmark
    config = with_fitness(config, benchmark)
    space = _searched(space, benchmark, config.algorithm)
    out = Path(out)
    with DirectoryLock(out, "search", SearchError) as lock:
        saved = {**config.to_dict(), "scores_from": None if scores_from is None else str(scores_from)}
        if (out / RUN).exists():
            # More (or fewer) runs reuse the scores; anything else is another protocol.
            check_saved_config(out, json.loads((out / RUN).read_text()), saved, ignore=("runs",))
        (out / RUN).write_text(json.dumps({**saved, "runs": runs}, indent=2) + "\n")
        scores = _Scores(ResultStore(out / SCORES, lock), config, scores_from)
        seeds = range(config.seed, config.seed + runs)

        for _ in range(100):  # passes; more than two only for algorithms whose draws depend on scores
            missing: dict[str, None] = {}
            plays = [_play(config, seed, space, benchmark, scores, missing) for seed in seeds]
            if not missing:
                break
            score_all([(arch, config.scoring_seed) for arch in missing],
                      lambda seed: Job(config.space, config.proxies, (config.preset,), seed, device,
                                       data=config.data_source()),
                      lambda arch, seed, record: scores.store.append(record), kind=backend, workers=workers,
                      address=address, progress=progress, desc=f"{config.algorithm} scores", memory=memory,
                      journal=out / "journal")
        else:
            raise SearchError(f"{out}: the runs still lack scores after 100 passes")

        datasets = benchmark.datasets()
        finals = {dataset: _final_metrics(benchmark, dataset) for dataset in datasets}
        found = {d: {s: [] for s in finals[d]} for d in datasets}
        optimal = {d: {s: [] for s in finals[d]} for d in datasets}
        records = []
        for play in plays:
            record = {"seed": play.seed, "arch": play.arch, "search_seconds": play.search_seconds,
                      "proxy_evaluations": play.proxy_evaluations, "queries": play.queries, "accuracy": {}}
            for dataset, metrics in finals.items():
                record["accuracy"][dataset] = {}
                for split, metric in metrics.items():
                    value = benchmark.value(play.arch, dataset, metric)
                    record["accuracy"][dataset][split] = value
                    found[dataset][split].append(value)
                    if play.sample is not None:
                        optimal[dataset][split].append(float(np.max(benchmark.values(play.sample, dataset, metric))))
            records.append(record)
        results = {
            "command": command, "algorithm": config.algorithm, "proxy": config.proxies[0] if config.proxies else None,
            "space": config.space, "preset": config.preset if config.proxies else None, "init_seed": config.scoring_seed,
            "runs": runs, "seeds": [config.seed, config.seed + runs - 1], "metrics": finals,
            **_budget(config),
            "accuracy": _summary(found),
            "optimal_in_sample": _summary(optimal) if plays[0].sample is not None else None,
            "search_seconds_per_run": float(np.mean([p.search_seconds for p in plays])),
            "search_seconds_counts": _what_time_counts(config),
            "proxy_evaluations_per_run": float(np.mean([p.proxy_evaluations for p in plays])),
            "benchmark_queries_per_run": float(np.mean([p.queries for p in plays])),
            "scores_from": None if scores_from is None else str(scores_from),
            "data": config.data,
            "drawn_from": (f"the {len(space.archs):,} architectures the {benchmark.name} benchmark holds"
                           if isinstance(space, _WithinBenchmark) else "the whole space"),
        }
        results["paper"] = paper_row(results)
        (out / RUNS).write_text(json.dumps(records, indent=1) + "\n")
        (out / RESULTS).write_text(json.dumps(results, indent=2) + "\n")
        return results


def _budget(config: SearchConfig) -> dict[str, Any]:
    if config.algorithm in ("naswot", "random"):
        return {"samples": config.iterations}
    budget = {"budget_queries": config.iterations, "population": config.population, "tournament": config.tournament,
              "fitness": f"{config.fitness} on {config.fitness_dataset}"}
    return {**budget, "warmup": config.warmup} if config.algorithm == "area" else budget


def _what_time_counts(config: SearchConfig) -> str:
    if not config.proxies:
        return "nothing: no architecture is scored (benchmark queries only; no training time is simulated)"
    return ("the recorded scoring seconds of every proxy-scored draw, repeats included (each draw is "
            "scored in the paper's protocol); cached scores count at the time recorded when they were computed")


def paper_row(results: dict[str, Any]) -> dict[str, Any] | None:
    """NASWOT Table 2(a)'s row for this protocol, where it matches (NAS-Bench-201, search on CIFAR-10)."""
    space = results["space"]
    if space.get("name") != "nb201" or space.get("dataset") != "cifar10" or space.get("subset", "all") != "all":
        return None
    algorithm = results["algorithm"]
    if algorithm == "naswot" and results["proxy"] not in ("naswot", "naswot_128"):
        return None
    key = (algorithm, results.get("samples")) if algorithm == "naswot" else (algorithm, None)
    row = PAPER_TABLE_2A.get(key)
    optimal = PAPER_TABLE_2A.get(("optimal", results.get("samples"))) if algorithm in ("naswot", "random") else None
    if row is None and optimal is None:
        return None
    return {"source": "NASWOT (Mellor et al., ICML 2021) Table 2(a)", "row": row, "optimal_in_sample": optimal}


def format_results(results: dict[str, Any]) -> str:
    """The results as a table, with the paper's numbers beside them where the protocol matches."""
    budget = (f"N = {results['samples']}" if "samples" in results else f"{results['budget_queries']} queries")
    proxy = f", proxy {results['proxy']}" if results["proxy"] else ""
    lines = [f"{results['algorithm']} ({budget}{proxy}), {results['runs']} runs, seeds "
             f"{results['seeds'][0]}..{results['seeds'][1]}; search time {results['search_seconds_per_run']:.1f} s per run"]
    if results.get("drawn_from", "the whole space") != "the whole space":
        lines.append(f"  drawn from {results['drawn_from']} (a part of the space)")
    paper = results.get("paper") or {}
    rows = [("returned", results["accuracy"], (paper.get("row") or {}))]
    if results.get("optimal_in_sample"):
        rows.append(("optimal in sample", results["optimal_in_sample"], paper.get("optimal_in_sample") or {}))
    for label, accuracy, theirs in rows:
        for dataset, splits in accuracy.items():
            for split, (mean, std) in splits.items():
                published = (theirs.get(split) or {}).get(dataset)
                beside = f"   (paper {published[0]:.2f} ± {published[1]:.2f})" if published else ""
                lines.append(f"  {label:<18} {dataset:<15} {split:<6} {mean:6.2f} ± {std:5.2f}{beside}")
    return "\n".join(lines)


__all__ = ["run_protocol", "format_results", "paper_row", "PAPER_TABLE_2A"]
