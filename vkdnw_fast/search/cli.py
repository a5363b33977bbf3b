"""``vkdnw-fast search``: evolutionary search in the MobileNetV2 (SPEC §7) or NAS-Bench-201 space.

    vkdnw-fast search --space mbv2 --flops-budget 450M --max-layers 14 --iterations 100000 \\
        --population 1024 --proxies flops,expressivity,progressivity,vkdnw,trainability --out DIR
    vkdnw-fast search --space nb201 --dataset cifar10 --budget 100 --seed 0 --out DIR [--repeats 5]

The directory holds the durable record (``search.sqlite``); re-running the same command there, or
adding ``--resume``, continues the search to the answer an uninterrupted run gives. For NB201 the
found architecture's true test accuracy is reported next to the optimum and next to random search
with the same budget. ``main(argv)`` runs it standalone (``python -m vkdnw_fast.search.cli``).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .. import benchmarks
from ..backends import Job, make_backend
from ..config import DEFAULT_PRESET, PRESETS
from .baseline import random_search
from .config import SearchConfig
from .driver import run_search
from .report import benchmark_summary, mean_std
from .store import DB_NAME, SearchError

MBV2_PROXIES = ("flops", "expressivity", "progressivity", "vkdnw", "trainability")  # the authors' MBV2 set
NB201_PROXIES = ("vkdnw_single", "jacov", "expressivity", "trainability", "flops")  # SPEC §6 aggregation
DEFAULTS = {
    "mbv2": {"iterations": 100_000, "population": 1024},
    # A population of 1,024 would never drop anyone within a typical NB201 budget of 100-1000.
    "nb201": {"population": 64},
}
MBV2_ONLY = {"flops_budget": "--flops-budget", "max_layers": "--max-layers", "resolution": "--resolution",
             "num_classes": "--num-classes", "flops_count": "--flops-count"}
NB201_ONLY = {"dataset": "--dataset", "subset": "--subset", "repeats": "--repeats", "budget": "--budget"}
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=("mbv2", "nb201"), required=True)
    parser.add_argument("--out", required=True, type=Path, help="search directory (record, best.txt, history.csv, ...)")
    parser.add_argument("--seed", type=int, default=0, help="search and scoring seed (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the search recorded in --out (an error if there is none); re-running "
                             "the same command without it continues too")
    parser.add_argument("--iterations", type=_count, help="scored candidates (mbv2 default 100000)")
    parser.add_argument("--population", type=int, help="population size (mbv2 default 1024, nb201 64)")
    parser.add_argument("--proxies",
                        help=f"comma-separated proxies aggregated by SPEC eq. 15 (mbv2 default "
                             f"{','.join(MBV2_PROXIES)}; nb201 {','.join(NB201_PROXIES)})")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help=f"Fisher preset (default {DEFAULT_PRESET}; at mbv2's 1000 classes the paper "
                             "factor is NaN)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--workers", type=int,
                        help="parallel scorers W; the answer depends on it (default: local 1, ray one per slot)")
    parser.add_argument("--address", help="Ray cluster address HOST:PORT (default: a local Ray instance)")
    parser.add_argument("--device", help="torch device for scoring (default cpu; cuda on Ray GPU slots)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    mbv2 = parser.add_argument_group("mbv2")
    mbv2.add_argument("--flops-budget", type=_count, help="FLOPs (MACs) budget, e.g. 450M (default)")
    mbv2.add_argument("--max-layers", type=int, help="maximum number of layers (default 14)")
    mbv2.add_argument("--resolution", type=int, help="input resolution (default 224)")
    mbv2.add_argument("--num-classes", type=int, help="classes (default 1000)")
    mbv2.add_argument("--flops-count", choices=("macs", "authors"),
                      help="FLOPs compared with the budget: exact MACs (default) or the authors' count")
    nb201 = parser.add_argument_group("nb201")
    nb201.add_argument("--dataset", help="cifar10 (default), cifar100 or ImageNet16-120")
    nb201.add_argument("--subset", choices=("all", "unique"), help="all 15,625 cells (default) or the 9,444 live ones")
    nb201.add_argument("--budget", type=_count, help="scored candidates (the same as --iterations)")
    nb201.add_argument("--repeats", type=int, help="run seeds S..S+R-1 in DIR/seed_S..., report mean ± std")


def add_search_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``search`` on an ``add_subparsers()`` object; the parsed namespace's ``func(args)``
    runs it and returns the exit status."""
    parser = subparsers.add_parser("search", help="evolutionary architecture search",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run_command)
    return parser


def _fail(message: str) -> None:
    print(f"vkdnw-fast search: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _default(value, default):
    return default if value is None else value


def _given(args, flags: dict[str, str]) -> list[str]:
    return [flag for name, flag in flags.items() if getattr(args, name) is not None]


def _space_and_iterations(args) -> tuple[dict, int | None]:
    if args.space == "mbv2":
        wrong = _given(args, NB201_ONLY)
        if wrong:
            _fail(f"{', '.join(wrong)} apply to --space nb201 only (mbv2 counts --iterations; its FLOPs budget "
                  "is --flops-budget)")
        space = {"name": "mbv2", "resolution": _default(args.resolution, 224),
                 "num_classes": _default(args.num_classes, 1000),
                 "flops_budget": float(_default(args.flops_budget, 450_000_000)),
                 "max_layers": _default(args.max_layers, 14), "flops_count": _default(args.flops_count, "macs")}
        return space, _default(args.iterations, DEFAULTS["mbv2"]["iterations"])
    wrong = _given(args, MBV2_ONLY)
    if wrong:
        _fail(f"{', '.join(wrong)} apply to --space mbv2 only")
    if args.budget is not None and args.iterations is not None and args.budget != args.iterations:
        _fail(f"--budget {args.budget} and --iterations {args.iterations} disagree (they are the same setting)")
    iterations = _default(args.budget, args.iterations)
    if iterations is None:
        _fail("--space nb201 needs --budget N (the number of architectures to score)")
    return {"name": "nb201", "dataset": _default(args.dataset, "cifar10"), "subset": _default(args.subset, "all")}, iterations


def run_command(args: argparse.Namespace) -> int:
    space, iterations = _space_and_iterations(args)
    proxies = tuple(p.strip() for p in args.proxies.split(",") if p.strip()) if args.proxies else (
        MBV2_PROXIES if args.space == "mbv2" else NB201_PROXIES)
    population = _default(args.population, DEFAULTS[args.space]["population"])
    preset = _default(args.preset, DEFAULT_PRESET)
    repeats = _default(args.repeats, 1)
    if repeats < 1:
        _fail(f"--repeats must be at least 1, got {repeats}")
    if args.workers is not None and args.workers < 1:
        _fail(f"--workers must be at least 1, got {args.workers}")
    if args.address is not None and args.backend != "ray":
        _fail("--address is for --backend ray")
    seeds = list(range(args.seed, args.seed + repeats))
    directories = [args.out / f"seed_{s}" for s in seeds] if repeats > 1 else [args.out]
    if args.resume:
        missing = [str(d) for d in directories if not (d / DB_NAME).exists()]
        if missing:
            _fail(f"--resume: no search recorded in {', '.join(missing)}")

    def config_for(seed: int, workers: int) -> SearchConfig:
        try:
            return SearchConfig(space=space, proxies=proxies, iterations=iterations, population=population,
                                seed=seed, workers=workers, preset=preset)
        except ValueError as exc:
            _fail(str(exc))

    config_for(seeds[0], args.workers or 1)  # bad settings fail before a worker pool or Ray starts
    job = Job(space, proxies, (preset,), seeds[0], args.device)
    try:
        backend = make_backend(args.backend, job, args.workers, args.address)
    except ValueError as exc:
        _fail(str(exc))
    benchmark = benchmarks.get(args.space) if args.space in benchmarks.available() else None
    summaries = []
    try:
        for seed, directory in zip(seeds, directories):
            config = config_for(seed, backend.workers)
            backend.set_job(Job(space, proxies, (preset,), seed, args.device))
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
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
