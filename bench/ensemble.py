"""A label-free ensemble of proxies, chosen on CIFAR-10 and reported on held-out datasets.

The rule, fixed before looking at the held-out data: the candidates are the label-free proxy columns
(``proxies.label_free``) the selection run stored for one preset, less the Fisher spectrum's deciles
(inputs of the model-driven ranking, not rankings) and columns constant on every seed; every non-empty
subset is aggregated by eq. 15 (docs/method.md) on the selection run (CIFAR-10), and the subset chosen
is the one whose smallest margin
over VKDNW_agg's published CIFAR-10 row (KT, SPR, nDCG@k, each the mean over seeds) is largest, so that
it beats the paper on every metric there if any subset does; ties go to the larger mean margin. The
chosen set is then scored, unchanged, on every held-out run (ImageNet16-120, and CIFAR-100 where a run
exists), next to the published VKDNW_agg and AZ-NAS rows of the VKDNW paper's Table I and to this
project's aggregate of the paper's five proxies.

With ``--search greedy``, for candidate sets too large to enumerate (the Table I reproduction's and the
every-proxy run's columns joined: RUN+RUN, over the seeds both have), forward selection instead: from no
proxy, add at each step the candidate whose addition gives the largest (smallest, mean) margin, until every
candidate is in; the subset chosen is the step of that path with the largest margin.

    python bench/ensemble.py --out bench/results/ensemble.json
    python bench/ensemble.py --search greedy --presets exact \\
        --select bench/results/nb201/cifar10+bench/results/nb201_every_proxy/cifar10 \\
        --held-out bench/results/nb201/cifar100+bench/results/nb201_every_proxy/cifar100,... \\
        --out bench/results/ensemble_every_proxy.json

Nothing is re-scored: the scores are the committed per-architecture values of the runs given.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from tqdm import tqdm

from vkdnw_fast import metrics
from vkdnw_fast.evaluation.published import DATASETS, table_row
from vkdnw_fast.evaluation.spec import AGGREGATE_PROXIES
from vkdnw_fast.evaluation.store import load_records, saved_spec
from vkdnw_fast.proxies import label_free

# The VKDNW paper's Table I (NAS-Bench-201, the whole unique set): KT, SPR, nDCG.
PUBLISHED = {row: {dataset: table_row(row, dataset) for dataset in DATASETS} for row in ("VKDNW_agg", "AZ-NAS")}
METRICS = ("kendall", "spearman", "ndcg")


def load_table(given: str, preset: str) -> tuple[dict, np.ndarray, list[int]]:
    """Per column a (seeds, archs) array of the values for ``preset`` (preset suffix dropped) of a run
    directory, or of runs of the same sample joined by "+" (their columns side by side, over the seeds
    they share), and the ground truth of the architectures scored without error for every seed."""
    runs = [Path(p) for p in given.split("+")]
    specs = [saved_spec(r) for r in runs]
    for run, spec in zip(runs[1:], specs[1:]):
        if (spec.space, spec.dataset, spec.metric, spec.archs()) != (specs[0].space, specs[0].dataset,
                                                                      specs[0].metric, specs[0].archs()):
            raise SystemExit(f"{run} does not rank the architectures {runs[0]} ranks: they cannot be joined")
    seeds = sorted(set.intersection(*(set(spec.seeds) for spec in specs)))
    by_key: dict = {}
    for run in runs:
        for r in load_records(run):
            if "error" not in r:
                by_key.setdefault((r["arch"], r["seed"]), []).append(r["values"])
    by_key = {key: {k: v for values in parts for k, v in values.items()}
              for key, parts in by_key.items() if len(parts) == len(runs)}
    archs = [a for a in specs[0].archs() if all((a, s) in by_key for s in seeds)]
    if len(archs) < 2:
        raise SystemExit(f"{given}: fewer than two architectures finished for seeds {seeds}")
    table = {}
    for name in by_key[(archs[0], seeds[0])]:
        base, _, at = name.partition("@")
        if at and at != preset:
            continue
        table[base] = np.array([[by_key[(a, s)][name] for a in archs] for s in seeds])
    accuracy = specs[0].ground_truth().values(archs, specs[0].dataset, specs[0].metric)
    return table, accuracy, seeds


def dataset_of(given: str) -> str:
    """The dataset a run (or the first of joined runs) ranks on."""
    return saved_spec(Path(given.split("+")[0])).dataset


def log_ranks(table: dict) -> dict:
    """Per column and seed the log of the ascending average ranks: eq. 15 is their sum."""
    return {c: np.log(np.apply_along_axis(rankdata, 1, v)) for c, v in table.items()}


def ensemble_metrics(logs: dict, proxies: list[str], accuracy: np.ndarray, seeds: list[int], k: int) -> dict:
    """KT / SPR / nDCG@k of the eq. 15 aggregate of ``proxies``: mean and std over seeds."""
    per_seed = []
    for i, seed in enumerate(seeds):
        scores = np.sum([logs[p][i] for p in proxies], axis=0)
        per_seed.append(metrics.evaluate_ranking(rankdata(scores), accuracy, k, seeds=(seed,)))
    return {m: {"mean": float(np.mean([s[m] for s in per_seed])), "std": float(np.std([s[m] for s in per_seed]))}
            for m in METRICS}


def margins(result: dict, target: tuple[float, ...]) -> tuple[float, float]:
    """(smallest, mean) margin of the result's means over the target row."""
    gaps = [result[m]["mean"] - t for m, t in zip(METRICS, target)]
    return min(gaps), float(np.mean(gaps))


def select(logs: dict, accuracy: np.ndarray, seeds: list[int], k: int, candidates: list[str],
           target: tuple[float, ...]) -> tuple[list[str], tuple[float, float], int]:
    """Every non-empty subset of ``candidates``: the one with the largest (smallest, mean) margin."""
    best, best_margins = None, (-np.inf, -np.inf)
    subsets = [list(c) for r in range(1, len(candidates) + 1) for c in itertools.combinations(candidates, r)]
    for subset in tqdm(subsets, desc="subsets", leave=False, disable=None):
        found = margins(ensemble_metrics(logs, subset, accuracy, seeds, k), target)
        if found > best_margins:
            best, best_margins = subset, found
    return best, best_margins, len(subsets)


def select_greedy(logs: dict, accuracy: np.ndarray, seeds: list[int], k: int, candidates: list[str],
                  target: tuple[float, ...]) -> tuple[list[str], tuple[float, float], int]:
    """Forward selection: the best prefix of the path that adds, at each step, the candidate giving the
    largest (smallest, mean) margin."""
    path, best, tried = [], ([], (-np.inf, -np.inf)), 0
    while len(path) < len(candidates):
        scored = []
        for candidate in (c for c in candidates if c not in path):
            tried += 1
            scored.append((margins(ensemble_metrics(logs, path + [candidate], accuracy, seeds, k), target), candidate))
        found, candidate = max(scored)
        path = path + [candidate]
        if found > best[1]:
            best = (path, found)
    return best[0], best[1], tried


SEARCHES = {"all": select, "greedy": select_greedy}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", default="bench/results/nb201/cifar10",
                        help="the run the ensemble is chosen on (RUN+RUN: runs of the same sample joined)")
    parser.add_argument("--held-out", default="bench/results/nb201/cifar100,bench/results/nb201/ImageNet16-120",
                        help="comma-separated runs it is reported on (each RUN or RUN+RUN)")
    parser.add_argument("--search", choices=sorted(SEARCHES), default="all",
                        help="every subset of the candidates (default), or grown greedily (the docstring)")
    parser.add_argument("--presets", default="exact,paper")
    parser.add_argument("--ndcg-k", type=int, default=106, help="106 = 1000 x 1000 / 9444, as the reproduction")
    parser.add_argument("--out", default="bench/results/ensemble.json")
    args = parser.parse_args(argv)

    held_out = [p for p in args.held_out.split(",") if p]
    rules = __doc__.split("\n\n")[1:3] if args.search == "greedy" else __doc__.split("\n\n")[1:2]
    result = {"command": "python bench/ensemble.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "rule": " ".join(rules).replace("\n", " "), "ndcg_k": args.ndcg_k,
              "published": PUBLISHED, "presets": {}}
    for preset in args.presets.split(","):
        table, accuracy, seeds = load_table(args.select, preset)
        # a column constant on every seed (te_nas_lr on whole NB201 networks) ranks nothing
        candidates = sorted(c for c in table if not c.startswith("fim_q") and label_free(c)
                            and any(len(set(row)) > 1 for row in table[c]))
        target = PUBLISHED["VKDNW_agg"][dataset_of(args.select)]
        chosen, (smallest, mean), tried = SEARCHES[args.search](log_ranks(table), accuracy, seeds, args.ndcg_k,
                                                                candidates, target)
        entry = {"candidates": candidates, "subsets_tried": tried, "chosen": chosen,
                 "selection_margin_over_published": {"smallest": smallest, "mean": mean}, "datasets": {}}
        for run in [args.select] + held_out:
            run_table, run_accuracy, run_seeds = load_table(run, preset)
            run_logs = log_ranks(run_table)
            entry["datasets"][dataset_of(run)] = {
                "role": "selection" if run == args.select else "held out",
                "architectures": int(len(run_accuracy)), "seeds": run_seeds,
                "ensemble": ensemble_metrics(run_logs, chosen, run_accuracy, run_seeds, args.ndcg_k),
                "aggregate_of_the_paper": ensemble_metrics(run_logs, list(AGGREGATE_PROXIES), run_accuracy,
                                                           run_seeds, args.ndcg_k),
            }
        result["presets"][preset] = entry
        print(f"{preset}: chosen on {dataset_of(args.select)}: {', '.join(chosen)}")
        for dataset, d in entry["datasets"].items():
            ens, agg = d["ensemble"], d["aggregate_of_the_paper"]
            line = " / ".join(f"{ens[m]['mean']:.3f}" for m in METRICS)
            base = " / ".join(f"{agg[m]['mean']:.3f}" for m in METRICS)
            published = " / ".join(f"{v:.3f}" for v in PUBLISHED["VKDNW_agg"].get(dataset, ()))
            print(f"  {dataset:15s} ({d['role']}): ensemble {line}   aggregate {base}   VKDNW_agg paper {published}")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
