"""How far a 1,000-architecture sample of the NAS-Bench-201 unique set moves the metrics, measured on
the two rankings whose value on every architecture is known without scoring (FLOPs and ℵ): KT / SPR /
nDCG@1000 on the whole set against KT / SPR / nDCG@k (k = the same top share) on many seeded samples,
drawn exactly as ``nb201 evaluate --limit N --sample-seed S`` draws them. The reproduction in the README
scores one such sample (seed 0); this says how much of its difference from the paper is the sample's.

    python bench/nb201_sample_spread.py [--limit 1000] [--samples 200] [--out bench/results/nb201/sample_spread.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from vkdnw_fast import benchmarks, metrics  # noqa: E402
from vkdnw_fast.evaluation import EvaluationSpec  # noqa: E402
from vkdnw_fast.spaces import nb201  # noqa: E402

DATASETS = ("cifar10", "ImageNet16-120")
METRICS = ("kendall", "spearman", "ndcg")


def size_rankings(dataset: str, archs: list[str]) -> dict[str, np.ndarray]:
    return {"flops": np.array([nb201.flops(a, dataset) for a in archs]),
            "aleph": np.array([nb201.aleph(a) for a in archs], dtype=float)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1000, help="sample size")
    parser.add_argument("--samples", type=int, default=200, help="sample seeds 0..N-1")
    parser.add_argument("--out", default=str(ROOT / "bench/results/nb201/sample_spread.json"))
    args = parser.parse_args()

    pool = nb201.archs("unique")
    position = {arch: i for i, arch in enumerate(pool)}
    full_k = 1000
    sample_k = (full_k * args.limit + len(pool) // 2) // len(pool)  # the same top share
    results = {}
    for dataset in DATASETS:
        accuracy = benchmarks.get("nb201").values(pool, dataset)
        rankings = size_rankings(dataset, pool)
        per_sample = {name: [] for name in rankings}
        for sample_seed in tqdm(range(args.samples), desc=dataset, unit="sample"):
            spec = EvaluationSpec(dataset=dataset, proxies=("flops",), limit=args.limit, sample_seed=sample_seed)
            chosen = np.array([position[a] for a in spec.archs()])
            for name, score in rankings.items():
                found = metrics.evaluate_ranking(score[chosen], accuracy[chosen], k=sample_k)
                per_sample[name].append([found[m] for m in METRICS])
        results[dataset] = {}
        for name, score in rankings.items():
            full = metrics.evaluate_ranking(score, accuracy, k=full_k)
            values = np.array(per_sample[name])
            results[dataset][name] = {
                "full_set": {m: round(full[m], 4) for m in METRICS},
                "sample_seed_0": {m: round(float(values[0, i]), 4) for i, m in enumerate(METRICS)},
                "sample_mean": {m: round(float(values[:, i].mean()), 4) for i, m in enumerate(METRICS)},
                "sample_std": {m: round(float(values[:, i].std(ddof=1)), 4) for i, m in enumerate(METRICS)},
            }
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        "subset": "unique", "limit": args.limit, "samples": args.samples,
        "ndcg_k": {"full_set": full_k, "sample": sample_k}, "results": results,
    }
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    for dataset, by_name in results.items():
        for name, row in by_name.items():
            line = "  ".join(f"{m} {row['full_set'][m]:.3f} | s0 {row['sample_seed_0'][m]:.3f} | "
                             f"{row['sample_mean'][m]:.3f}±{row['sample_std'][m]:.3f}" for m in METRICS)
            print(f"{dataset:15s} {name:6s} {line}")


if __name__ == "__main__":
    main()
