"""Peak resident memory of each engine plan on one TransNAS-Bench-101 network, each plan in a fresh process
(``resource`` ru_maxrss), with its time and VKDNW: which plan holds least, and what ``engine.least_memory_plans``
(rows, in chunks of 16 samples) holds; with ``--sample-chunks``, each plan also on the batch N samples at a time
(``FisherConfig.sample_chunk``), 0 meaning the whole batch.

    OMP_NUM_THREADS=1 python bench/bench_plan_memory.py --out bench/results/plan_memory_tnb64_cpu.json
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import itertools
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

# plan: (strategy, tangents, under engine.least_memory_plans)
PLANS = {"auto": ("auto", "auto", False), "rows": ("rows", "auto", False), "forward": ("forward", "linearised", False),
         "forward_jvp": ("forward", "jvp", False), "least_memory": ("auto", "auto", True)}


def one(space: str, task: str, arch: str, preset: str, plan: str, batch: int, sample_chunk: int) -> dict:
    import torch

    import vkdnw_fast as vf
    from vkdnw_fast import spaces
    from vkdnw_fast.engine import least_memory_plans
    from vkdnw_fast.scoring import score_architecture

    torch.set_num_threads(1)
    strategy, tangents, least_memory = PLANS[plan]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    runs: dict = {}
    with least_memory_plans() if least_memory else contextlib.nullcontext():
        values = score_architecture(spaces.get(space, dataset=task), arch, ("vkdnw",), batch_size=batch,
                                    presets=(vf.FisherConfig.preset(preset, strategy=strategy, tangents=tangents,
                                                                     sample_chunk=sample_chunk or None),),
                                    engine_runs=runs)
    (run,) = runs.values()  # the one preset's, named "custom" where a plan is forced
    return {"preset": preset, "plan": plan, "sample_chunk": sample_chunk or batch,
            "seconds": time.perf_counter() - started, "vkdnw": values["vkdnw"], "passes": run["passes"], "engine_plan": run["plan"], "base_bytes": base,
            "peak_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="tnb_macro")
    parser.add_argument("--task", default="class_scene")
    parser.add_argument("--arch", default="64-331224-basic")
    parser.add_argument("--presets", default="exact")
    parser.add_argument("--plans", default="rows,forward,forward_jvp,least_memory",
                        help=f"a comma-separated list of {', '.join(PLANS)} (auto: the engine's own choice)")
    parser.add_argument("--sample-chunks", default="0",
                        help="a comma-separated list of samples per chunk (0: the whole batch)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one preset and plan
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.space, args.task, args.arch, args.presets, args.plans, args.batch_size,
                             int(args.sample_chunks))))
        return
    results = []
    for preset in args.presets.split(","):
        for plan, chunk in itertools.product(args.plans.split(","), args.sample_chunks.split(",")):
            child = subprocess.run([sys.executable, __file__, "--one", "--space", args.space, "--task", args.task,
                                    "--arch", args.arch, "--presets", preset, "--plans", plan,
                                    "--batch-size", str(args.batch_size), "--sample-chunks", chunk],
                                   check=True, capture_output=True, text=True)
            row = json.loads(child.stdout.splitlines()[-1])
            results.append(row)
            print(f"{preset:<6}{plan:<12}{row['sample_chunk']:>3} a chunk  peak {row['peak_bytes'] / 2**30:.2f} GiB  "
                  f"{row['seconds']:.0f} s  VKDNW {row['vkdnw']:.8f}  ({row['engine_plan']})", flush=True)
    record = {"command": "python " + shlex.join([os.path.relpath(__file__)] + (argv if argv is not None else sys.argv[1:])),
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
              "network": {"space": args.space, "task": args.task, "arch": args.arch, "batch_size": args.batch_size},
              "results": results}
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
