"""Time of scoring one TransNAS-Bench-101 network on this machine's CPU, at the benchmark's
resolution (3x256x256, batch 64, seed 0), to choose the sample sizes of the TransNAS figures.

For each cell (default: the micro and the macro network of median FLOPs in their spaces):
  build     ``space.build_model`` (the benchmark's encoder and the task's linear head);
  prepare   a context (copy, initialisation, Gaussian batch), once;
  vkdnw     the Fisher engine (VKDNW, VKDNW_single, aleph read one run) per preset, each on a fresh
            context (preparation excluded);
  proxies   every label-free proxy alone on a fresh context (preparation excluded).
The record is rewritten after each measurement, so an interrupted run keeps what it measured; a
finished cell already in ``--out`` (same task and batch) is kept and not measured again, each row
carrying the command that measured it.

    OMP_NUM_THREADS=1 python bench/transnas_cost.py --threads 1 --out bench/results/transnas_cost_cpu.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import torch  # noqa: E402

from vkdnw_fast import spaces  # noqa: E402
from vkdnw_fast.proxies import build_context, compute_on  # noqa: E402

# (space, cell): the median-FLOPs networks (2.05 and 3.19 GMACs per image at 256x256); the largest
# micro cell is 64-41414-3_33_333 (8.47 GMACs), the largest macro layout 64-222113-basic (132 GMACs).
CELLS = (("tnb_micro", "64-41414-2_21_023"), ("tnb_macro", "64-23343-basic"))
# The proxies that need no labels (docs/method.md §6), cheapest first; te_nas_ntk (64 per-sample
# backward passes) is left out.
LABEL_FREE = ("flops", "params", "l2_norm", "synflow", "naswot", "zen", "meco", "swap", "jacov",
              "expressivity", "progressivity", "trainability", "te_nas_lr")
PRESETS = ("exact", "paper")
BATCH, SEED = 64, 0


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=None,
                        help="comma-separated space:arch pairs (default: the micro and macro median-FLOPs cells)")
    parser.add_argument("--task", default="class_scene", help="class_scene (63 classes, default) or class_object")
    parser.add_argument("--proxies", default=",".join(LABEL_FREE))
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--resolution", type=int, default=None, help="default: the benchmark's 256")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cells = CELLS if args.cells is None else tuple(tuple(c.split(":", 1)) for c in args.cells.split(","))
    proxies = [p for p in args.proxies.split(",") if p]
    presets = [p for p in args.presets.split(",") if p]
    command = "python " + shlex.join([os.path.relpath(__file__, ROOT)] + (argv if argv is not None else sys.argv[1:]))
    settings = {"task": args.task, "batch_size": BATCH, "seed": SEED}
    rows = []
    if args.out and Path(args.out).exists():
        saved = json.loads(Path(args.out).read_text())
        if saved["settings"] == settings:
            rows = [row for row in saved["results"] if "label_free_total_s" in row]
    done = {(row["space"], row["arch"], tuple(row["input_shape"])) for row in rows}

    def write():
        if not args.out:
            return
        record = {
            "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} {command} (the last; each row has its own)",
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()},
            "torch": torch.__version__,
            "settings": settings,
            "results": rows,
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")

    for name, arch in cells:
        space = spaces.get(name, dataset=args.task, resolution=args.resolution)
        if (name, arch, space.input_shape) in done:
            continue
        row = {"space": name, "arch": arch, "input_shape": list(space.input_shape), "num_classes": space.num_classes,
               "command": f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} {command}",
               **{k: space.cost(arch)[k] for k in ("flops", "params")}, "vkdnw_s": {}, "proxy_s": {}}
        rows.append(row)
        print(f"{name} {arch}: {row['flops'] / 1e9:.2f} GMACs, {row['params'] / 1e6:.1f} M parameters", flush=True)
        model = None

        def build():
            nonlocal model
            model = space.build_model(arch)

        row["build_s"] = timed(build)

        def context(preset="exact"):
            return build_context(model, batch_size=BATCH, seed=SEED, arch=arch, space=space, fisher_config=preset)

        row["prepare_s"] = timed(context)
        print(f"  build {row['build_s']:.2f} s, prepare {row['prepare_s']:.2f} s", flush=True)
        write()
        for preset in presets:
            ctx = context(preset)
            row["vkdnw_s"][preset] = timed(lambda: compute_on(ctx, ["vkdnw"]))
            print(f"  vkdnw@{preset:<8}{row['vkdnw_s'][preset]:9.2f} s", flush=True)
            write()
        for proxy in proxies:
            ctx = context()
            row["proxy_s"][proxy] = timed(lambda: compute_on(ctx, [proxy]))
            print(f"  {proxy:<14}{row['proxy_s'][proxy]:9.2f} s", flush=True)
            write()
        row["label_free_total_s"] = sum(row["proxy_s"].values())
        write()


if __name__ == "__main__":
    main()
