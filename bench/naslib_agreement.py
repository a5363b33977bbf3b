"""This project's proxies against NAS-Bench-Suite-Zero's published scores on NB201.

For the NB201 cells of vkdnw_fast/data/nb201_naslib_zc_proxies_725.csv.gz (about 725 per dataset;
provenance in vkdnw_fast/data/README.md), every proxy the two have in common is computed with
``compute_proxies(NB201Network(arch, classes), names, input_shape=..., seed=0, batch_size=64)``
(CIFAR-10 3x32x32 / 10 classes, CIFAR-100 3x32x32 / 100, ImageNet16-120 3x16x16 / 120), and the
summary gives per proxy and dataset, on the cells computed so far: Spearman between ours and
theirs, and Spearman of each with their ``naslib_val_accuracy``. Scores are rank-transformed first,
so -inf (ours) ranks lowest like their -1e8 for NaN/inf. Proxies NASLib computes without looking at
the data (FLOPs, params, l2_norm, SynFlow) are flagged: they should agree to Spearman >= 0.95.

Resumable: each cell's values are appended to --scores (JSON lines) as they are computed, and a
rerun computes only the (dataset, cell, proxy) triples missing there. Cells are visited in a
seeded random order, so a partial run is a random subsample. ``--seed 1`` scores the cells again
with another initialisation and batch (stored as ``name@seed1``): the Spearman between our seeds
is the most any proxy can agree with a computation from other random draws. The summary (--out) is rewritten
every --every cells and at the end from all of --scores (runs may add to it side by side), with
the commands of every run that contributed; --summary-only just rewrites it.

    nohup nice -n 5 python bench/naslib_agreement.py --datasets cifar10 \\
        --proxies flops,params,l2_norm,synflow,nwot,jacov,epe_nas,grad_norm,snip,plain,fisher &
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from vkdnw_fast import metrics  # noqa: E402
from vkdnw_fast.data import naslib_zc_table  # noqa: E402
from vkdnw_fast.proxies import ProxyError, compute_proxies  # noqa: E402
from vkdnw_fast.spaces import nb201  # noqa: E402

# NASLib's name -> ours.
COMMON = {"epe_nas": "epe_nas", "fisher": "fisher", "flops": "flops", "grad_norm": "grad_norm", "grasp": "grasp",
          "jacov": "jacov", "l2_norm": "l2_norm", "nwot": "naswot", "params": "params", "plain": "plain",
          "snip": "snip", "synflow": "synflow"}
# Computed by NASLib without the data batch: all-ones input (SynFlow), the weights alone (l2_norm),
# the architecture alone (FLOPs, params).
DATA_INDEPENDENT = ("flops", "params", "l2_norm", "synflow")
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}
SEED, BATCH_SIZE = 0, 64  # the seed of the comparison; --seed gives others for the ceiling


def read_scores(path: Path) -> dict[tuple[str, int], dict]:
    """(dataset, index) -> {"values": {proxy: value}, "errors": {...}, "seconds": [...]}, merged."""
    done: dict[tuple[str, int], dict] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            cell = done.setdefault((row["dataset"], row["index"]), {"values": {}, "errors": {}, "seconds": []})
            cell["values"].update(row["values"])
            cell["errors"].update(row["errors"])
            cell["seconds"].append(row["seconds"])
    return done


def key(name: str, seed: int) -> str:
    return name if seed == SEED else f"{name}@seed{seed}"


def score_cell(arch: str, dataset: str, names: list[str], seed: int) -> tuple[dict, dict]:
    """Our values of ``names`` for one cell, and the errors of those that failed, under ``key``."""
    shape, classes = nb201.dataset_info(DATASETS[dataset])

    def run(proxies):
        values = compute_proxies(nb201.NB201Network(arch, classes), proxies, input_shape=shape, seed=seed,
                                 batch_size=BATCH_SIZE, arch=arch)
        return {key(name, seed): v for name, v in values.items()}
    try:
        return run(names), {}
    except ProxyError:  # one by one, to keep the others
        values, errors = {}, {}
        for name in names:
            try:
                values.update(run([name]))
            except ProxyError as exc:
                errors[key(name, seed)] = str(exc)
        return values, errors


def spearman_of_ranks(a, b) -> float | None:
    try:
        return metrics.spearman(stats.rankdata(a), stats.rankdata(b))
    except ValueError:  # constant
        return None


def ours_on(done: dict, dataset: str, indices, name: str) -> dict[int, float]:
    """index -> our value of ``name`` (a ``key``) for the cells of ``indices`` that have it."""
    found = {}
    for index in indices:
        values = done.get((dataset, int(index)), {}).get("values", {})
        if name in values:
            found[int(index)] = values[name]
    return found


def summarise(table: dict, done: dict, datasets: list[str]) -> dict:
    results = {}
    for dataset in datasets:
        rows = np.flatnonzero(table["dataset"] == dataset)
        per_proxy = {}
        for theirs_name, ours_name in COMMON.items():
            ours = ours_on(done, dataset, table["index"][rows], ours_name)
            if len(ours) < 3:
                continue
            cells = [i for i in rows if int(table["index"][i]) in ours]
            errors = sum(ours_name in done.get((dataset, int(table["index"][i])), {}).get("errors", {}) for i in rows)
            theirs, accuracy = table[theirs_name][cells], table["naslib_val_accuracy"][cells]
            mine = [ours[int(table["index"][i])] for i in cells]
            per_proxy[theirs_name] = {
                "ours": ours_name, "cells": len(cells), "errors": errors,
                "spearman_ours_theirs": spearman_of_ranks(mine, theirs),
                "spearman_ours_accuracy": spearman_of_ranks(mine, accuracy),
                "spearman_theirs_accuracy": spearman_of_ranks(theirs, accuracy),
                "data_independent": theirs_name in DATA_INDEPENDENT,
            }
            other = ours_on(done, dataset, ours, key(ours_name, SEED + 1))
            if len(other) >= 3:
                per_proxy[theirs_name]["spearman_ours_seed0_seed1"] = spearman_of_ranks(
                    [ours[i] for i in other], list(other.values()))
                per_proxy[theirs_name]["cells_seed1"] = len(other)
        results[dataset] = {"cells": len(rows), "proxies": per_proxy}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="cifar10", help="comma-separated subset of " + ",".join(DATASETS))
    parser.add_argument("--proxies", default=",".join(COMMON), help="NASLib names, comma-separated")
    parser.add_argument("--scores", default="bench/results/naslib_agreement_scores.jsonl")
    parser.add_argument("--out", default="bench/results/naslib_agreement.json")
    parser.add_argument("--every", type=int, default=25, help="rewrite the summary every this many cells")
    parser.add_argument("--limit", type=int, default=None, help="at most this many new cells per dataset")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--summary-only", action="store_true", help="rewrite --out from --scores, score nothing")
    parser.add_argument("--seed", type=int, default=SEED, help=f"{SEED}: the comparison; another: the ceiling")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    datasets = args.datasets.split(",")
    wanted = args.proxies.split(",")
    for names, known in ((datasets, DATASETS), (wanted, COMMON)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SystemExit(f"unknown {unknown}; choose from {list(known)}")
    table, scores = naslib_zc_table(), Path(args.scores)
    done = read_scores(scores)
    command = "python " + " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:]))

    def write_summary(contributed: bool):
        """The summary of every row of --scores (other runs may be adding to it as well), with the
        commands of every run that added to it, in order."""
        previous = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
        commands = previous.get("commands", [previous["command"]] if "command" in previous else [])
        if contributed and command not in commands:
            commands.append(command)
        record = {
            "commands": commands,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()},
            "torch": torch.__version__,
            "settings": {"seed": SEED, "ceiling_seed": SEED + 1, "batch_size": BATCH_SIZE, "inputs": "Gaussian N(0, 1)",
                         "labels": "random, seeded", "scores": args.scores},
            "results": summarise(table, read_scores(scores), list(DATASETS)),
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")

    if args.summary_only:
        write_summary(contributed=False)
        return
    scored = 0
    for dataset in datasets:
        rows = np.flatnonzero(table["dataset"] == dataset)
        order = rows[np.random.default_rng(SEED).permutation(len(rows))]
        new = 0
        for i in order:
            index, arch = int(table["index"][i]), str(table["arch"][i])
            cell = done.get((dataset, index), {"values": {}, "errors": {}})
            todo = [COMMON[n] for n in wanted
                    if key(COMMON[n], args.seed) not in cell["values"] and key(COMMON[n], args.seed) not in cell["errors"]]
            if not todo:
                continue
            if args.limit is not None and new >= args.limit:
                break
            start = time.perf_counter()
            values, errors = score_cell(arch, dataset, todo, args.seed)
            row = {"dataset": dataset, "index": index, "arch": arch, "values": values, "errors": errors,
                   "seconds": {"proxies": todo, "total": round(time.perf_counter() - start, 3)}}
            with scores.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            merged = done.setdefault((dataset, index), {"values": {}, "errors": {}, "seconds": []})
            merged["values"].update(values)
            merged["errors"].update(errors)
            merged["seconds"].append(row["seconds"])
            new += 1
            scored += 1
            if new % args.every == 0:
                write_summary(contributed=True)
                print(f"{dataset}: {new} cells scored", flush=True)
    write_summary(contributed=scored > 0)


if __name__ == "__main__":
    main()
