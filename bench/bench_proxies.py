"""Time per architecture of every proxy alone, and of all of them on one context sharing its
forwards (``vkdnw_fast.proxies.forward``), on NB201 networks (CIFAR-10: 3x32x32, 10 classes,
batch 64, seed 0) on this machine's CPU.

For each architecture:
  prepare   building a context (copy, initialisation, Gaussian batch), once;
  alone     per proxy, ``compute_on`` of that proxy alone on a fresh context (preparation excluded);
  together  all proxies on one fresh context, one ``compute_on`` call per proxy in registry order,
            so each proxy's row is what it adds given those before it (the first to need a shared
            forward pays for it);
  saving    1 - together / (sum of alone), over all proxies and over all but te_nas_ntk (its 64
            per-sample backward passes dominate both sums).
The Fisher engine's proxies are represented by ``vkdnw`` (aleph, vkdnw_single and fim_q* read the
same cached engine run). The record is rewritten after each architecture.

    python bench/bench_proxies.py --out bench/results/proxy_times_cpu.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import torch  # noqa: E402

from vkdnw_fast.proxies import available_proxies, build_context, compute_on  # noqa: E402
from vkdnw_fast.scoring import FISHER_PROXIES  # noqa: E402
from vkdnw_fast.spaces import nb201  # noqa: E402

ARCHS = (  # the largest cell, a mixed one and a small one
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|skip_connect~1|nor_conv_1x1~2|",
)
SHAPE, CLASSES, BATCH, SEED = (3, 32, 32), 10, 64, 0
NTK = "te_nas_ntk"


def proxies() -> list[str]:
    return [p for p in available_proxies() if p not in FISHER_PROXIES or p == "vkdnw"]


def context(arch: str):
    return build_context(nb201.NB201Network(arch, CLASSES), input_shape=SHAPE, batch_size=BATCH, seed=SEED, arch=arch)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_arch(arch: str, names: list[str]) -> dict:
    prepare = timed(lambda: context(arch))
    alone = {}
    for name in names:
        ctx = context(arch)
        alone[name] = timed(lambda: compute_on(ctx, [name]))
        print(f"  alone {name:<14}{alone[name]:9.2f} s", flush=True)
    ctx = context(arch)
    together = {name: timed(lambda: compute_on(ctx, [name])) for name in names}
    sums = {"all": (sum(alone.values()), sum(together.values())),
            f"without_{NTK}": (sum(v for k, v in alone.items() if k != NTK),
                               sum(v for k, v in together.items() if k != NTK))}
    return {"arch": arch, "prepare_s": prepare, "alone_s": alone, "together_s": together,
            "sums": {k: {"alone_s": a, "together_s": t, "saving": 1 - t / a} for k, (a, t) in sums.items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=len(ARCHS), help=f"how many of the {len(ARCHS)} cells")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = proxies()
    rows = []
    for arch in ARCHS[:args.archs]:
        print(arch, flush=True)
        rows.append(bench_arch(arch, names))
        summary = {
            "alone_s_median": {n: statistics.median(r["alone_s"][n] for r in rows) for n in names},
            "saving_median": {k: statistics.median(r["sums"][k]["saving"] for r in rows) for k in rows[0]["sums"]},
        }
        print(json.dumps(rows[-1]["sums"]), flush=True)
        if args.out:
            record = {
                "command": "python " + " ".join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:])),
                "date": datetime.datetime.now().isoformat(timespec="seconds"),
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()},
                "torch": torch.__version__,
                "settings": {"space": "nb201", "input_shape": SHAPE, "num_classes": CLASSES, "batch_size": BATCH,
                             "seed": SEED},
                "summary": summary,
                "results": rows,
            }
            Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
