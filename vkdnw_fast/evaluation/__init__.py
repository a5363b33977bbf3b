"""NAS-Bench-201 evaluation (docs/method.md §5): score architectures with proxies over several seeds,
rank them against a benchmark's ground truth (Kendall, Spearman, nDCG), aggregate, and report.

A run lives in a directory: ``run.json`` (what is computed) and ``results.jsonl`` (one line per
finished (architecture, seed), appended and flushed as it finishes). Re-running the same command
resumes where it stopped and computes nothing twice; ``report`` recomputes the metrics from the
saved results alone. A published run keeps its results compressed as ``results.jsonl.gz``;
``report`` reads either.

Modules: ``spec`` (what a run computes), ``store`` (the run directory), ``run`` (scoring on the
backends), ``borrow`` (scores taken from another run instead of computed again), ``rankings`` (metrics
and statistics), ``report`` (the table), ``plots`` (the figures).
"""
from .plots import bar_plot, scatter_plot
from .rankings import compute_metrics
from .report import format_table, report
from .run import run_evaluation
from .spec import AGGREGATE_PROXIES, EvaluationSpec
from .store import ResultStore, finished_seeds, load_records, open_results

__all__ = ["AGGREGATE_PROXIES", "EvaluationSpec", "ResultStore", "bar_plot", "compute_metrics", "finished_seeds",
           "format_table", "load_records", "open_results", "report", "run_evaluation", "scatter_plot"]
