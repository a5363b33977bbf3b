"""``vkdnw-fast``: score a model, evaluate proxies against a benchmark's ground truth, search, benchmark."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from . import spaces, throughput
from .config import DEFAULT_PRESET, PRESETS, STRATEGIES, TANGENTS
from .datasets import DATA_HELP
from .backends import terminate_as_interrupt
from .benchmarks.registry import add_file_arguments
from .prepare import OutputError
from .runs import DirectoryInUseError
from .evaluation import AGGREGATE_PROXIES
from .search.cli import MEMORY_HELP, GivenOnce, add_search_parser, memory_size


def _int_tuple(minimum: int):
    """An argparse type: comma-separated integers, each at least ``minimum``."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        if any(v < minimum for v in values):
            raise argparse.ArgumentTypeError(f"expected integers of at least {minimum}, got {text!r}")
        return values

    return parse


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of names")
    return names


def _load_model(spec: str, model_args: str | None):
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise SystemExit(f"--model must look like module:ClassName, got {spec!r}")
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"--model: cannot import module {module_name!r}: {exc}") from None
    factory = getattr(module, class_name, None)
    if factory is None:
        raise SystemExit(f"--model: module {module_name!r} has no attribute {class_name!r}")
    kwargs = json.loads(model_args) if model_args else {}
    return factory(**kwargs)


def cmd_score(args) -> int:
    import vkdnw_fast as vf

    model = _load_model(args.model, args.model_args)
    config = vf.FisherConfig.preset(args.preset, strategy=args.strategy, tangents=args.tangents,
                                    sample_chunk=args.sample_chunk)
    started = time.perf_counter()
    if args.input_shape is None and args.data is None:
        raise SystemExit("vkdnw-fast score: give --input-shape (Gaussian inputs) or --data (real images)")
    result = vf.score(model, input_shape=args.input_shape, batch_size=args.batch_size, config=config,
                      device=args.device, seed=args.seed, data=args.data, logits=_logits_location(args.logits))
    seconds = time.perf_counter() - started
    summary = {"model": args.model, "preset": args.preset, "vkdnw": result.vkdnw, "aleph": result.aleph,
               "single": result.single, "num_weights": result.num_weights, "plan": result.plan,
               "strategy": result.strategy, "passes": result.passes, "seconds": seconds,
               "backend": vf.backend(args.device or "cpu")}
    if args.json:
        print(json.dumps({**summary, "eigenvalues": result.eigenvalues.tolist()}))
    else:
        for key, value in summary.items():
            print(f"{key:>12}: {value}")
    return 0


def _logits_location(text: str | None):
    """``--logits``: an integer is an index into a tuple output, anything else a key or attribute name."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _benchmark(args):
    """The ground truth of ``--space``: bundled, or read from the files the user points at."""
    from . import benchmarks

    return benchmarks.from_files(args.space, nats_path=args.nats_path, path=args.benchmark_path)


def cmd_evaluate(args) -> int:
    from .benchmarks.nb201 import compare_with_nats
    from .evaluation import EvaluationSpec, format_table, load_records, run_evaluation, scatter_plot
    from .spaces.nb201 import index_of

    spec = EvaluationSpec(space=args.space, dataset=args.dataset, proxies=args.proxies, presets=args.preset,
                          subset=args.subset, limit=args.limit, sample_seed=args.sample_seed,
                          seeds=tuple(range(args.seeds)), ndcg_k=args.ndcg_k, metric=args.metric, data=args.data)
    benchmark = _benchmark(args)
    results = run_evaluation(spec, args.out, benchmark=benchmark, workers=args.workers, device=args.device,
                             progress=not args.quiet, backend=args.backend, address=args.address,
                             retry_failed=args.retry_failed, memory=args.memory, scores_from=args.scores_from)
    print(format_table(results))
    if args.nats_path and args.space == "nb201":
        archs = spec.archs(benchmark)
        disagreements = compare_with_nats(args.nats_path, datasets=(spec.dataset,), indices=[index_of(a) for a in archs])
        print(f"NATS-Bench API vs bundled data: {len(disagreements)} disagreements on {len(archs)} architectures")
    scatter_plot(spec, load_records(args.out), Path(args.out) / "scatter.png", benchmark)
    print(f"wrote {args.out}/metrics.json, {args.out}/results.jsonl, {args.out}/scatter.png")
    return 0


def cmd_report(args) -> int:
    from .evaluation import report

    results, table = report(args.dir, ndcg_k=args.ndcg_k, seeds=args.only_seeds, benchmark=_saved_benchmark(args),
                            aggregates=args.aggregate)
    # The command goes with the JSON so that recorded metrics say how they were made.
    results = {"command": args.command_line, **results}
    print(json.dumps(results, indent=2) if args.json else table)
    return 0


def _saved_benchmark(args):
    """The ground truth a report ranks against: the run's space's, from ``--nats-path``/``--benchmark-path``
    where given (else the bundled one, which ``report`` picks)."""
    if args.nats_path is None and args.benchmark_path is None:
        return None
    from .evaluation.store import saved_spec

    args.space = saved_spec(args.dir).space
    return _benchmark(args)


def cmd_plot_scatter(args) -> int:
    from .evaluation import load_records, scatter_plot
    from .evaluation.report import report_spec

    out = args.out or Path(args.dir) / "scatter.png"
    scatter_plot(report_spec(args.dir, seeds=args.only_seeds), load_records(args.dir), out, _saved_benchmark(args),
                 args.aggregate)
    print(f"wrote {out}")
    return 0


def _saved_metrics(given: str, aggregates: list) -> dict:
    from .evaluation import report

    path = Path(given)
    saved = path / "metrics.json" if path.is_dir() else path
    if not saved.is_file():
        raise FileNotFoundError(f"{given} is neither a run directory with a metrics.json nor a metrics JSON file")
    result = json.loads(saved.read_text())
    if aggregates:  # recomputed from the stored scores, at the recorded nDCG cut-off and seeds
        result, _ = report(saved.parent, ndcg_k=result["spec"]["ndcg_k"], seeds=tuple(result["spec"]["seeds"]),
                           aggregates=aggregates)
    return result


def cmd_plot_bars(args) -> int:
    from .evaluation import bar_plot
    from .evaluation.report import join_runs

    if args.aggregate and any("+" in panel for panel in args.runs):
        raise ValueError("--aggregate ranks the proxies of one run: it cannot be drawn for joined runs (RUN+RUN)")
    panels = [join_runs([_saved_metrics(given, args.aggregate) for given in panel.split("+")]) for panel in args.runs]
    bar_plot(panels, args.out, sort_by=args.sort_by)
    print(f"wrote {args.out}")
    return 0


def cmd_bench_throughput(args) -> int:
    result = throughput.run(args.space, args.dataset, count=args.count, reference_count=args.reference_count,
                            device=args.device, seed=args.seed, preset=args.preset, prefetch=not args.no_prefetch,
                            batch_size=args.batch_size, resolution=args.resolution, num_classes=args.num_classes,
                            with_aggregation=not args.without_aggregation, workers=args.workers)
    print(throughput.format_report(result))
    if args.out:
        Path(args.out).write_text(json.dumps({"command": args.command_line, **result}, indent=2) + "\n")
    if result["interrupted"]:
        print("vkdnw-fast: interrupted; the report covers what was measured before the stop", file=sys.stderr)
        return 130
    return 0


def _add_evaluate_parser(evaluate: argparse.ArgumentParser, spaces_offered: list[str] | None) -> None:
    """``evaluate`` (``spaces_offered``: the --space choices) or ``nb201 evaluate`` (None: NB201 only)."""
    if spaces_offered is None:
        evaluate.set_defaults(space="nb201")
    else:
        evaluate.add_argument("--space", choices=spaces_offered, default="nb201")
    evaluate.add_argument("--dataset", "--task", dest="dataset", action=GivenOnce,
                          help="the dataset (or task) the networks are built for and ranked on: NB201 and NATS "
                               "cifar10 (default), cifar100, ImageNet16-120; TransNAS-Bench-101 its tasks "
                               "(default class_scene)")
    evaluate.add_argument("--proxies", type=_names, default=AGGREGATE_PROXIES,
                          help="comma-separated (default: the docs/method.md §6 aggregation: vkdnw_single, jacov, "
                               "expressivity, trainability, flops)")
    evaluate.add_argument("--subset", choices=spaces.nb201.SUBSETS, default="unique",
                          help="nb201: the 9,444 live cells (default), all 15,625, or the paper's 9,445 "
                               "(live + all-none); other spaces have none")
    evaluate.add_argument("--limit", type=int, default=None, help="a seeded sample of this many architectures")
    evaluate.add_argument("--sample-seed", type=int, default=0)
    evaluate.add_argument("--seeds", type=int, default=5,
                          help="seeds 0..N-1 (init, input noise, nDCG tie order); a larger N extends a saved run")
    evaluate.add_argument("--preset", type=_names, default=(DEFAULT_PRESET,),
                          help=f"comma-separated, of {', '.join(sorted(PRESETS))} (default {DEFAULT_PRESET})")
    evaluate.add_argument("--metric", default=None,
                          help="the ground truth to rank against, '<split>@<epochs>' (default: the benchmark's, "
                               "e.g. test@200 on NB201)")
    evaluate.add_argument("--ndcg-k", type=int, default=1000)
    evaluate.add_argument("--data", default=None, help=DATA_HELP)
    evaluate.add_argument("--workers", type=int, default=1, help="scoring processes (CPU: one per core)")
    evaluate.add_argument("--memory", type=memory_size, default=None, help=MEMORY_HELP)
    evaluate.add_argument("--backend", choices=("local", "ray"), default="local",
                          help="local processes, or tasks on a Ray cluster (one per GPU, else per CPU)")
    evaluate.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    evaluate.add_argument("--device", default=None)
    add_file_arguments(evaluate)
    evaluate.add_argument("--out", required=True, help="run directory (re-running resumes it, each network under way from its finished passes)")
    evaluate.add_argument("--scores-from", default=None, metavar="DIR",
                          help="an evaluation run (running or published) of the same space and data: the scores it "
                               "holds of these networks and seeds, for proxies it computed as this run does, are "
                               "taken, not computed again (each record names them in 'borrowed')")
    evaluate.add_argument("--retry-failed", action="store_true",
                          help="score again the architectures whose scoring failed (they are otherwise reported "
                               "and left out, not rerun)")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_aggregate_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--aggregate", type=_names, action="append", default=[], metavar="PROXIES",
                        help="also rank by the eq. 15 aggregate (docs/method.md §6) of these of the run's proxies, "
                             "comma-separated, from the stored scores; a Fisher proxy of a run with several presets "
                             "is taken at each (one ranking per preset) unless named as a column, e.g. vkdnw@exact; "
                             "repeat for several aggregates")


def _add_report_parser(report: argparse.ArgumentParser) -> None:
    report.add_argument("dir")
    report.add_argument("--json", action="store_true")
    report.add_argument("--ndcg-k", type=int, default=None, help="nDCG cut-off for this report (default: the run's)")
    report.add_argument("--only-seeds", type=_int_tuple(0), default=None,
                        help="report on these of the run's seeds only, comma-separated (e.g. those finished so far)")
    _add_aggregate_argument(report)
    add_file_arguments(report)
    report.set_defaults(func=cmd_report)


def _add_plot_parser(plot: argparse.ArgumentParser) -> None:
    plot_commands = plot.add_subparsers(dest="plot_command", required=True)
    scatter = plot_commands.add_parser(
        "scatter", help="every proxy and eq. 15 aggregate of a saved run against the ground truth, its KT / SPR "
        "in the title (the figure evaluate draws)",
        description="One panel per proxy and aggregate. Each panel's x axis is the first of a linear value axis, a "
        "symmetric-log (log for positive values) axis and a rank axis on which the middle 90%% of the architectures "
        "fill at least half of the axis; a rank axis where a value is ±inf. ±inf and NaN values are counted in the "
        "title; an architecture with a NaN is left out of the panel.")
    scatter.add_argument("dir")
    scatter.add_argument("--out", default=None, help="the PNG (default: DIR/scatter.png)")
    scatter.add_argument("--only-seeds", type=_int_tuple(0), default=None, help="these of the run's seeds only")
    _add_aggregate_argument(scatter)
    add_file_arguments(scatter)
    scatter.set_defaults(func=cmd_plot_scatter)
    bars = plot_commands.add_parser(
        "bars", help="KT / SPR / nDCG bars of every ranking of one or several saved runs (e.g. one per dataset)",
        description="One panel per run, side by side, from each run's metrics.json (what evaluate, or report "
        "--json, recorded: its nDCG cut-off and seeds).")
    bars.add_argument("runs", nargs="+", metavar="RUN",
                      help="a run directory (its metrics.json) or a metrics JSON file; RUN+RUN joins runs of the "
                      "same sample (e.g. two proxy sets on the same architectures) into one panel")
    bars.add_argument("--out", required=True, help="the PNG")
    bars.add_argument("--sort-by", choices=("kendall", "spearman", "ndcg"), default=None,
                      help="rankings best first by the first panel's metric (default: the first run's order)")
    _add_aggregate_argument(bars)
    bars.set_defaults(func=cmd_plot_bars)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vkdnw-fast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="VKDNW of one PyTorch model")
    score.add_argument("--model", required=True, help="module:ClassName (imported from the current directory)")
    score.add_argument("--model-args", help='JSON keyword arguments for the class, e.g. \'{"num_classes": 10}\'')
    score.add_argument("--input-shape", type=_int_tuple(1), help="e.g. 3,32,32 (with --data: checked against it)")
    score.add_argument("--data", help="real images to score on instead of Gaussian noise: a CIFAR-10/100 "
                       "python-format batch file or directory, or an .npz of images and labels (the first "
                       "--batch-size after a shuffle seeded by --seed, normalised)")
    score.add_argument("--batch-size", type=int, default=64)
    score.add_argument("--logits", help="where the logits are when the model returns a tuple, dict or object: "
                       "an index into the tuple, a key or an attribute name (default: a bare tensor, a 'logits' "
                       "key or attribute, or the only tensor)")
    score.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET)
    score.add_argument("--strategy", choices=STRATEGIES, default="auto",
                       help="the engine's pass plan (docs/method.md section 4; default: the one it counts cheapest); "
                       "the plans agree to rounding, they differ in time and memory")
    score.add_argument("--tangents", choices=TANGENTS, default="auto",
                       help="how the forward plan computes its tangents (FisherConfig.tangents)")
    score.add_argument("--sample-chunk", type=int, default=None, metavar="N",
                       help="score the batch N samples at a time (FisherConfig.sample_chunk): the memory of a "
                       "forward's graph for N samples, the same score to rounding (default: the whole batch)")
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--device", default=None)
    score.add_argument("--json", action="store_true", help="print one JSON object, eigenvalues included")
    score.set_defaults(func=cmd_score)

    _add_evaluate_parser(commands.add_parser("evaluate", help="score a space's architectures with proxies and "
                                             "rank them against its benchmark (resumable)"), sorted(spaces.available()))
    _add_report_parser(commands.add_parser("report", help="re-print the table of a saved evaluation run"))
    nb_commands = commands.add_parser("nb201", help="NAS-Bench-201 evaluation: evaluate and report with --space nb201"
                                      ).add_subparsers(dest="nb201_command", required=True)
    _add_evaluate_parser(nb_commands.add_parser("evaluate", help="score architectures and rank them (resumable)"), None)
    _add_report_parser(nb_commands.add_parser("report", help="re-print the table of a saved run"))

    _add_plot_parser(commands.add_parser("plot", help="figures of saved evaluation runs"))
    add_search_parser(commands)

    bench = commands.add_parser("bench", help="benchmarks")
    bench_commands = bench.add_subparsers(dest="bench_command", required=True)
    tp = bench_commands.add_parser("throughput", help="architectures per minute: engine vs torch.func reference")
    tp.add_argument("--space", choices=("nb201", "mbv2"), default="nb201")
    tp.add_argument("--dataset", default="cifar10", help="nb201: cifar10, cifar100 or ImageNet16-120")
    tp.add_argument("--resolution", type=int, default=32, help="mbv2 only")
    tp.add_argument("--num-classes", type=int, default=10, help="mbv2 only")
    tp.add_argument("--batch-size", type=int, default=64)
    tp.add_argument("--count", type=int, default=20, help="random architectures scored by the engine")
    tp.add_argument("--reference-count", type=int, default=3, help="of those, scored by the reference too")
    tp.add_argument("--preset", choices=sorted(PRESETS), default=throughput.BENCHMARK_PRESET)
    tp.add_argument("--seed", type=int, default=0)
    tp.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    tp.add_argument("--no-prefetch", action="store_true", help="build each model on the critical path")
    tp.add_argument("--without-aggregation", action="store_true",
                    help="leave out the run of VKDNW with the aggregation proxies (over half the time of a "
                         "large --count)")
    tp.add_argument("--workers", type=int, default=1,
                    help="also time VKDNW scored by this many processes sharing the device, as evaluate --workers "
                         "scores (against the same networks scored in one process)")
    tp.add_argument("--out", help="also write the results as JSON")
    tp.set_defaults(func=cmd_bench_throughput)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = " ".join(["vkdnw-fast", *(sys.argv[1:] if argv is None else argv)])
    try:
        with terminate_as_interrupt():
            return args.func(args)
    except (ValueError, FileNotFoundError, OutputError, DirectoryInUseError) as exc:
        print(f"vkdnw-fast: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vkdnw-fast: interrupted; what finished is saved, and the same command resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
