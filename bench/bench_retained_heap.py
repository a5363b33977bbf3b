"""Scoring with glibc's malloc as it comes against inside a retained heap (``vkdnw_fast.memory.retained_heap``).

For each network and preset, ``vkdnw_fast.score`` runs once with ``VKDNW_FAST_MALLOC=system`` and once
retained (the default), each in a fresh process (a process's heap keeps what an earlier run left), in turns
over --repeats rounds. Per run: the wall time of the score, the process's CPU time in the kernel and in user
space, its peak resident memory and the VKDNW value; per network the ratios system / retained (medians of the
per-round ratios) and whether both gave the same bits.

    OMP_NUM_THREADS=1 python bench/bench_retained_heap.py --out bench/results/retained_heap_cpu.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

MODES = ("system", "retained")
# name: (space, task, architecture, batch size). A TransNAS-Bench-101 micro cell at the benchmark's 256x256 (its
# tensors are tens to hundreds of MiB) and an NB201 cell at 32x32 (under 32 MiB: glibc's heap serves them anyway).
NETWORKS = {
    "tnb-micro-class_scene": ("tnb_micro", "class_scene", "64-41414-1_00_100", 64),
    "nb201-c10": ("nb201", "cifar10", "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|", 64),
}


def child(network: str, preset: str) -> dict:
    """One score in this process (run by the parent with the mode in the environment)."""
    import torch

    import vkdnw_fast as vf
    from vkdnw_fast import spaces

    torch.set_num_threads(1)
    space_name, task, arch, batch_size = NETWORKS[network]
    space = spaces.get(space_name, dataset=task)
    model = space.build_model(arch)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result = vf.score(model, input_shape=space.input_shape, batch_size=batch_size, config=preset, seed=0)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "system_cpu_s": after.ru_stime - before.ru_stime,
            "user_cpu_s": after.ru_utime - before.ru_utime, "peak_rss_bytes": after.ru_maxrss * 1024,
            "vkdnw": repr(result.vkdnw), "strategy": result.strategy}


def run_child(network: str, preset: str, mode: str) -> dict:
    environment = {**os.environ, "VKDNW_FAST_MALLOC": mode, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", network, preset], env=environment, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated subset of " + ",".join(NETWORKS))
    parser.add_argument("--presets", default="paper,exact")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of one run in each mode")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--child", nargs=2, metavar=("NETWORK", "PRESET"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    networks = args.networks.split(",")
    unknown = sorted(set(networks) - set(NETWORKS))
    if unknown:
        parser.error(f"unknown networks {unknown}; known: {sorted(NETWORKS)}")
    print(f"{'network':<24}{'preset':<7}{'system s':>10}{'retained s':>12}{'ratio':>7}{'kernel s sys/ret':>18}"
          f"{'peak GiB sys/ret':>18}  same bits")
    rows = []
    for network in networks:
        for preset in args.presets.split(","):
            rounds = [{mode: run_child(network, preset, mode) for mode in MODES} for _ in range(args.repeats)]
            runs = {mode: [r[mode] for r in rounds] for mode in MODES}
            median = {mode: {key: statistics.median(run[key] for run in runs[mode])
                             for key in ("seconds", "system_cpu_s", "user_cpu_s", "peak_rss_bytes")} for mode in MODES}
            row = {"network": network, "architecture": NETWORKS[network][2], "batch_size": NETWORKS[network][3],
                   "preset": preset, "strategy": runs["retained"][0]["strategy"], "runs": runs, "medians": median,
                   "system_over_retained": statistics.median(r["system"]["seconds"] / r["retained"]["seconds"]
                                                             for r in rounds),
                   "peak_retained_over_system": statistics.median(
                       r["retained"]["peak_rss_bytes"] / r["system"]["peak_rss_bytes"] for r in rounds),
                   "same_bits": len({run["vkdnw"] for mode in MODES for run in runs[mode]}) == 1}
            rows.append(row)
            print(f"{network:<24}{preset:<7}{median['system']['seconds']:>10.2f}{median['retained']['seconds']:>12.2f}"
                  f"{row['system_over_retained']:>7.2f}"
                  f"{median['system']['system_cpu_s']:>9.1f}/{median['retained']['system_cpu_s']:<8.1f}"
                  f"{median['system']['peak_rss_bytes'] / 2**30:>9.2f}/{median['retained']['peak_rss_bytes'] / 2**30:<8.2f}"
                  f"  {row['same_bits']}", flush=True)
    record = {
        "command": "OMP_NUM_THREADS=1 python " + " ".join(
            [os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:])),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "libc": platform.libc_ver(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "settings": {"repeats": args.repeats, "torch_threads": 1, "seed": 0},
        "results": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
