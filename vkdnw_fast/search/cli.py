"""``vkdnw-fast search``: architecture search on any registered space, with any registered algorithm.

    vkdnw-fast search --space nb201 --algorithm naswot --proxy naswot_128 --samples 100 --runs 500 --out DIR
    vkdnw-fast search --space nb201 --algorithm random --samples 100 --runs 500 --out DIR
    vkdnw-fast search --space nb201 --algorithm rea --budget 300 --runs 50 --out DIR
    vkdnw-fast search --space nb201 --algorithm area --proxy naswot_128 --budget 300 --runs 50 --out DIR
    vkdnw-fast search --space nb201 --dataset cifar10 --budget 100 --seed 0 --out DIR [--runs 5]   (evolution)
    vkdnw-fast search --space mbv2 --flops-budget 450M --max-layers 14 --iterations 100000 \\
        --population 1024 --proxies flops,expressivity,progressivity,vkdnw,trainability --out DIR

``evolution`` (the default) is the proxy-driven evolutionary search: its directory holds the durable
record (``search.sqlite``); re-running the same command there, or adding ``--resume``, continues the
search to the answer an uninterrupted run gives; on NAS-Bench-201 the found architecture's true
accuracy is reported next to the optimum and to random search with the same budget.
``naswot``, ``random``, ``rea`` and ``area`` run ``--runs R`` times (seeds S..S+R-1) against the
space's benchmark, sharing one score per (architecture, ``--init-seed``) in DIR/scores.jsonl
(resumable), and write DIR/results.json (see ``search.protocol``). Flags an algorithm does not use
are refused. ``--data PATH`` (the algorithms that score: evolution, naswot, area) scores on real
images and labels instead of Gaussian noise (``vkdnw_fast.datasets``; stored with the run).
``main(argv)`` runs it standalone (``python -m vkdnw_fast.search.cli``).
"""
from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from pathlib import Path

from .. import benchmarks, spaces
from ..benchmarks.registry import add_file_arguments
from ..backends import Job, check_memory_cap, make_backend, terminate_as_interrupt
from ..config import DEFAULT_PRESET, PRESETS
from ..datasets import DATA_HELP
from ..memory import parse_bytes
from .algorithms import available_algorithms
from .baseline import random_search
from .config import SearchConfig
from .driver import run_search
from .protocol import format_results, run_protocol
from .report import benchmark_summary, mean_std
from .store import DB_NAME, SearchError

MBV2_PROXIES = ("flops", "expressivity", "progressivity", "vkdnw", "trainability")  # the authors' MBV2 set
NB201_PROXIES = ("vkdnw_single", "jacov", "expressivity", "trainability", "flops")  # method.md §6 aggregation
DEFAULTS = {
    "mbv2": {"iterations": 100_000, "population": 1024},
    # A population of 1,024 would never drop anyone within a typical cell-space budget of 100-1000.
    "cell": {"population": 64},
    "rea": {"population": 10},
}
MBV2_ONLY = {"flops_budget": "--flops-budget", "max_layers": "--max-layers", "resolution": "--resolution",
             "num_classes": "--num-classes", "flops_count": "--flops-count"}
CELL_ONLY = {"dataset": "--dataset", "subset": "--subset"}
# The flags each algorithm reads, beyond --space, --out, --seed, --runs and the space's own.
_SCORING = {"preset": "--preset", "backend": "--backend", "workers": "--workers", "memory": "--memory",
            "address": "--address", "device": "--device", "data": "--data"}
_GROUND_TRUTH = {"nats_path": "--nats-path", "benchmark_path": "--benchmark-path"}
ALGORITHM_FLAGS = {
    "evolution": {"proxies": "--proxies", "iterations": "--iterations", "budget": "--budget",
                  "population": "--population", "resume": "--resume", **_SCORING},
    "naswot": {"proxy": "--proxy", "samples": "--samples", "init_seed": "--init-seed",
               "scores_from": "--scores-from", **_SCORING, **_GROUND_TRUTH},
    "random": {"samples": "--samples", **_GROUND_TRUTH},
    "rea": {"budget": "--budget", "population": "--population", "tournament": "--tournament",
            "fitness": "--fitness", "fitness_dataset": "--fitness-dataset", **_GROUND_TRUTH},
    "area": {"proxy": "--proxy", "budget": "--budget", "population": "--population", "tournament": "--tournament",
             "fitness": "--fitness", "fitness_dataset": "--fitness-dataset", "warmup": "--warmup",
             "init_seed": "--init-seed", "scores_from": "--scores-from", **_SCORING, **_GROUND_TRUTH},
}
_SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_count(text: str) -> int:
    """'450M' -> 450000000, '1.2G', '100k', '5e6', '1000'; ValueError for anything else."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*", str(text))
    if match is None:
        raise ValueError(f"{text!r} is not a count; write e.g. 450M, 1.2G, 100k or 1000")
    value = float(match.group(1)) * _SUFFIXES[match.group(2).lower()]
    if value != round(value):
        raise ValueError(f"{text!r} is not a whole number ({value})")
    return int(round(value))


def _count(text: str) -> int:
    try:
        return parse_count(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def memory_size(text: str) -> int:
    """``--memory``'s type: bytes from '16GiB', '16G', '16GB', '512MiB'."""
    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


MEMORY_HELP = ("the most memory the local worker pool's processes take together, e.g. 16GiB (or 16G; 16GB is "
               "decimal); default: a tenth less than what is available when it starts. A candidate starts beside "
               "the running ones only where their predicted peaks fit; one always may alone")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=spaces.available(), required=True)
    parser.add_argument("--algorithm", choices=available_algorithms(), default="evolution",
                        help="evolution (default), naswot, random, rea or area")
    parser.add_argument("--out", required=True, type=Path, help="search directory (record, results, ...)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first run (default 0)")
    parser.add_argument("--runs", "--repeats", dest="runs", type=int,
                        help="runs with seeds S..S+R-1, reported as mean ± std (default 1; evolution: one "
                             "directory DIR/seed_S each)")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="evolution: continue the search recorded in --out (an error if there is none); "
                             "re-running the same command without it continues too")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    evolution = parser.add_argument_group("evolution")
    evolution.add_argument("--proxies",
                           help=f"comma-separated proxies aggregated by docs/method.md eq. 15 (mbv2 default "
                                f"{','.join(MBV2_PROXIES)}; cell spaces {','.join(NB201_PROXIES)})")
    evolution.add_argument("--iterations", type=_count, help="scored candidates (mbv2 default 100000)")
    evolution.add_argument("--budget", type=_count,
                           help="evolution: scored candidates (the same as --iterations); rea, area: benchmark "
                                "queries (architectures \"trained\")")
    evolution.add_argument("--population", type=int,
                           help="population size (evolution: mbv2 1024, cell spaces 64; rea, area: 10)")
    sampling = parser.add_argument_group("naswot, random, area")
    sampling.add_argument("--proxy", help="the proxy naswot and area score with (e.g. naswot_128, vkdnw_single)")
    sampling.add_argument("--samples", type=_count, help="naswot, random: architectures drawn per run (N)")
    sampling.add_argument("--init-seed", type=int, help="seed of every score, shared by the runs (default 0)")
    sampling.add_argument("--scores-from", type=Path,
                          help="an evaluation run directory (vkdnw-fast evaluate --out) to take scores from")
    rea = parser.add_argument_group("rea, area")
    rea.add_argument("--tournament", type=int, help="tournament size (default 3)")
    rea.add_argument("--fitness", help="the benchmark metric a query returns (default valid@12 where the benchmark has it, as NASWOT's REA on NAS-Bench-201; else its default metric)")
    rea.add_argument("--fitness-dataset", help="the dataset or task it is queried on (default the space's --dataset/--task)")
    rea.add_argument("--warmup", type=int, help="area: architectures scored with the proxy first (default 20)")
    add_file_arguments(parser.add_argument_group("ground truth (naswot, random, rea, area)"))
    scoring = parser.add_argument_group("scoring")
    scoring.add_argument("--preset", choices=sorted(PRESETS), default=None,
                         help=f"Fisher preset (default {DEFAULT_PRESET}; at mbv2's 1000 classes the paper "
                              "factor is NaN)")
    scoring.add_argument("--backend", choices=("local", "ray"), default=None, help="local (default) or ray")
    scoring.add_argument("--workers", type=int,
                         help="parallel scorers W (evolution: its answer depends on W; default: local 1, ray "
                              "one per slot)")
    scoring.add_argument("--memory", type=memory_size, help=MEMORY_HELP)
    scoring.add_argument("--address", help="Ray cluster address HOST:PORT (default: a local Ray instance)")
    scoring.add_argument("--device", help="torch device for scoring (default cpu; cuda on Ray GPU slots)")
    scoring.add_argument("--data", help=DATA_HELP)
    mbv2 = parser.add_argument_group("mbv2")
    mbv2.add_argument("--flops-budget", type=_count, help="FLOPs (MACs) budget, e.g. 450M (default)")
    mbv2.add_argument("--max-layers", type=int, help="maximum number of layers (default 14)")
    mbv2.add_argument("--resolution", type=int, help="input resolution (default 224)")
    mbv2.add_argument("--num-classes", type=int, help="classes (default 1000)")
    mbv2.add_argument("--flops-count", choices=("macs", "authors"),
                      help="FLOPs compared with the budget: exact MACs (default) or the authors' count")
    cells = parser.add_argument_group("cell spaces (nb201, nats_sss, ...)")
    cells.add_argument("--dataset", "--task", dest="dataset", action=GivenOnce,
                       help="cifar10 (default), cifar100 or ImageNet16-120: resolution and classes; "
                            "tnb_micro, tnb_macro: the TransNAS-Bench-101 task (default class_scene)")
    cells.add_argument("--subset", choices=spaces.nb201.SUBSETS,
                       help="nb201: all 15,625 cells (default), the 9,444 live ones or the paper's 9,445")


def add_search_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``search`` on an ``add_subparsers()`` object; the parsed namespace's ``func(args)``
    runs it and returns the exit status."""
    parser = subparsers.add_parser("search", help="architecture search (evolution, naswot, random, rea, area)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def _fail(message: str) -> None:
    print(f"vkdnw-fast search: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _default(value, default):
    return default if value is None else value


class GivenOnce(argparse.Action):
    """An option given at most once under any of its names (``--dataset``/``--task``), whose default is None: a
    second value would otherwise replace the first without a word."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, self.dest)
        if given is not None:
            parser.error(f"{'/'.join(self.option_strings)} given twice ({given}, then {values} by {option_string}): "
                         "they name one setting")
        setattr(namespace, self.dest, values)


def _given(args, flags: dict[str, str]) -> list[str]:
    return [flag for name, flag in flags.items() if getattr(args, name) is not None]


def _space(args) -> dict:
    """The space's constructor arguments, defaults written out so that the record names them."""
    if args.space == "mbv2":
        wrong = _given(args, CELL_ONLY)
        if wrong:
            _fail(f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to --space mbv2 "
                  "(its FLOPs budget is --flops-budget)")
        return {"name": "mbv2", "resolution": _default(args.resolution, 224),
                "num_classes": _default(args.num_classes, 1000),
                "flops_budget": float(_default(args.flops_budget, 450_000_000)),
                "max_layers": _default(args.max_layers, 14), "flops_count": _default(args.flops_count, "macs")}
    wrong = _given(args, MBV2_ONLY)
    if wrong:
        _fail(f"{', '.join(wrong)} apply to --space mbv2 only")
    accepted = inspect.signature(spaces.space_class(args.space)).parameters
    spec = {"name": args.space}
    for name, flag in CELL_ONLY.items():
        if name in accepted:
            spec[name] = _default(getattr(args, name), accepted[name].default)
        elif getattr(args, name) is not None:
            _fail(f"{flag} does not apply to --space {args.space}")
    return spec


def _check_flags(args) -> None:
    allowed = ALGORITHM_FLAGS[args.algorithm]
    others = {name: flag for flags in ALGORITHM_FLAGS.values() for name, flag in flags.items() if name not in allowed}
    wrong = _given(args, others)
    if wrong:
        _fail(f"{', '.join(sorted(set(wrong)))} not used by --algorithm {args.algorithm}")
    if args.runs is not None and args.runs < 1:
        _fail(f"--runs must be at least 1, got {args.runs}")
    if args.workers is not None and args.workers < 1:
        _fail(f"--workers must be at least 1, got {args.workers}")
    if args.address is not None and args.backend != "ray":
        _fail("--address is for --backend ray")
    try:
        check_memory_cap(_default(args.backend, "local"), args.workers, args.memory)
    except ValueError as exc:
        _fail(str(exc))


def run_command(args: argparse.Namespace) -> int:
    _check_flags(args)
    space = _space(args)
    if args.algorithm == "evolution":
        return _evolution(args, space)
    return _protocol(args, space)


def _protocol(args, space: dict) -> int:
    algorithm = args.algorithm
    if algorithm in ("naswot", "area") and args.proxy is None:
        _fail(f"--algorithm {algorithm} needs --proxy NAME (e.g. naswot_128 or vkdnw_single)")
    budget = args.samples if algorithm in ("naswot", "random") else args.budget
    if budget is None:
        _fail(f"--algorithm {algorithm} needs " + ("--samples N" if algorithm in ("naswot", "random") else "--budget Q"))
    try:
        benchmark = benchmarks.from_files(space["name"], nats_path=args.nats_path, path=args.benchmark_path)
        config = SearchConfig(space=space, proxies=(args.proxy,) if args.proxy else (), iterations=budget,
                              population=_default(args.population, DEFAULTS["rea"]["population"]), seed=args.seed,
                              preset=_default(args.preset, DEFAULT_PRESET), algorithm=algorithm,
                              init_seed=_default(args.init_seed, 0), fitness=args.fitness,
                              fitness_dataset=args.fitness_dataset,
                              tournament=_default(args.tournament, 3), warmup=_default(args.warmup, 20),
                              data=args.data)
        results = run_protocol(config, _default(args.runs, 1), args.out, benchmark=benchmark, scores_from=args.scores_from,
                               backend=_default(args.backend, "local"), workers=_default(args.workers, 1),
                               address=args.address, device=args.device, progress=not args.no_progress,
                               command=args.command_line, memory=args.memory)
    except (SearchError, ValueError, OSError) as exc:  # OSError: a benchmark file that cannot be read
        _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue (finished scores are kept)", file=sys.stderr)
        return 130
    print(format_results(results))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'runs.json'}")
    return 0


def _evolution(args, space: dict) -> int:
    if args.budget is not None and args.iterations is not None and args.budget != args.iterations:
        _fail(f"--budget {args.budget} and --iterations {args.iterations} disagree (they are the same setting)")
    iterations = _default(args.budget, args.iterations)
    if iterations is None:
        if args.space != "mbv2":
            _fail(f"--space {args.space} needs --budget N (the number of architectures to score)")
        iterations = DEFAULTS["mbv2"]["iterations"]
    proxies = tuple(p.strip() for p in args.proxies.split(",") if p.strip()) if args.proxies else (
        MBV2_PROXIES if args.space == "mbv2" else NB201_PROXIES)
    population = _default(args.population, DEFAULTS["mbv2" if args.space == "mbv2" else "cell"]["population"])
    preset = _default(args.preset, DEFAULT_PRESET)
    backend_kind = _default(args.backend, "local")
    seeds = list(range(args.seed, args.seed + _default(args.runs, 1)))
    directories = [args.out / f"seed_{s}" for s in seeds] if len(seeds) > 1 else [args.out]
    if args.resume:
        missing = [str(d) for d in directories if not (d / DB_NAME).exists()]
        if missing:
            _fail(f"--resume: no search recorded in {', '.join(missing)}")

    def config_for(seed: int, workers: int) -> SearchConfig:
        try:
            return SearchConfig(space=space, proxies=proxies, iterations=iterations, population=population,
                                seed=seed, workers=workers, preset=preset, data=args.data)
        except ValueError as exc:
            _fail(str(exc))

    first = config_for(seeds[0], args.workers or 1)  # bad settings fail before a worker pool or Ray starts
    try:
        first.check_data()
    except ValueError as exc:
        _fail(str(exc))
    data = first.data_source()
    job = Job(space, proxies, (preset,), seeds[0], args.device, data=data)
    try:
        backend = make_backend(backend_kind, job, args.workers, args.address, memory=args.memory)
    except ValueError as exc:
        _fail(str(exc))
    benchmark = benchmarks.get("nb201") if args.space == "nb201" else None
    summaries = []
    try:
        for seed, directory in zip(seeds, directories):
            config = config_for(seed, backend.workers)
            # Each candidate under way keeps its finished passes in the run's journal (local workers only).
            journal = str(Path(directory) / "journal") if backend_kind == "local" else None
            backend.set_job(Job(space, proxies, (preset,), seed, args.device, data=data, journal=journal))
            result = run_search(config, directory, backend=backend, progress=not args.no_progress)
            print(f"{directory}: best {result.best_arch}\n  flops {result.best_cost['flops']:.0f} params "
                  f"{result.best_cost['params']:.0f} layers {result.best_cost['layers']:.0f}; "
                  f"{_counts(result.counts)}")
            if benchmark is not None:
                summary = benchmark_summary(config, result, random_search(config, directory, backend), benchmark)
                (directory / "nb201.json").write_text(json.dumps(summary, indent=2) + "\n")
                print(f"  test accuracy {summary['found_accuracy']:.2f} (optimum {summary['optimum']:.2f}); random "
                      f"search of {iterations}: {summary['random_accuracy']:.2f} ({summary['random_arch']})")
                summaries.append(summary)
    except SearchError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted; run the same command again (or add --resume) to continue", file=sys.stderr)
        return 130
    finally:
        backend.close()
    if len(summaries) > 1:
        found, random = mean_std([s["found_accuracy"] for s in summaries]), mean_std([s["random_accuracy"] for s in summaries])
        total = {"dataset": summaries[0]["dataset"], "budget": iterations, "seeds": seeds,
                 "optimum": summaries[0]["optimum"], "found_mean": found[0], "found_std": found[1],
                 "random_mean": random[0], "random_std": random[1], "runs": summaries}
        (args.out / "summary.json").write_text(json.dumps(total, indent=2) + "\n")
        print(f"{len(seeds)} seeds, budget {iterations}: search {found[0]:.2f} ± {found[1]:.2f}, random search "
              f"{random[0]:.2f} ± {random[1]:.2f} (optimum {summaries[0]['optimum']:.2f}; test accuracy, mean ± std)")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{counts.get(k, 0)} {k}" for k in ("evaluated", "failed", "rejected", "duplicate"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vkdnw-fast search", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command_line = " ".join(["vkdnw-fast search", *(sys.argv[1:] if argv is None else argv)])
    with terminate_as_interrupt():
        return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
