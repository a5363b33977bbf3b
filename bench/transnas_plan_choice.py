"""Which pass plan the engine's ``auto`` takes for each network of TransNAS-Bench-101's 100-cell samples, per
preset, at the runs' batch (docs/method.md §4): factor rows, or forward mode as ``engine._forward_cost`` counts it
(the trace and each tangent, by the batch's work per layer call); beside it, the plan a trace counted 30 at every
size gave (the count before the batch's work per layer call entered it, which linearised from 16 tangents on).

The counts come from one forward of each network at batch 1 (the shares and layer calls do not depend on the batch,
the multiply-accumulates grow with it), on the cells of the committed label-free runs
(bench/results/tnb/<space>_<task>_label_free100/), the samples VKDNW's runs score. It runs no plan.

    python bench/transnas_plan_choice.py --out bench/results/transnas_plan_choice_cpu.json
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import torch  # noqa: E402

import vkdnw_fast as vf  # noqa: E402
from vkdnw_fast import engine, ops, spaces  # noqa: E402
from vkdnw_fast.selection import select_weights  # noqa: E402

from bench_engine import provenance  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "tnb"
EARLIER_TRACE_COST = 30.0


def plans(space: str, task: str, batch: int) -> dict:
    built = spaces.get(space, dataset=task)
    cells = [json.loads(line)["arch"]
             for line in gzip.open(RESULTS / f"{space}_{task}_label_free100" / "results.jsonl.gz", "rt")]
    counts = {preset: {"forward": 0, "forward_earlier": 0} for preset in ("paper", "exact")}
    traces = []
    for arch in cells:
        model = built.build_model(arch).eval()
        for preset, tally in counts.items():
            config = vf.FisherConfig.preset(preset)
            weights = select_weights(model, config).weights
            one, logits = engine._layer_census(model, weights, torch.randn(1, *built.input_shape))
            counted = dataclasses.replace(one, macs=one.macs * batch)
            rows = ops.factor_rows(config.factor, logits.shape[1])
            forward = engine._forward_cost(config, torch.device("cpu"), counted)
            # Before: linearised from 16 tangents on, the trace 30 and each tangent its share; else jvp's 1.2.
            earlier = EARLIER_TRACE_COST + sum(one.shares) if len(weights) >= 16 else 1.2 * len(weights)
            tally["forward"] += forward < rows
            tally["forward_earlier"] += earlier < rows
            traces.append(engine._trace_cost(counted))
    return {"space": space, "task": task, "networks": len(cells), "batch_size": batch,
            "trace_counted": [min(traces), max(traces)], "forward_mode": counts}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for space in ("tnb_micro", "tnb_macro"):
        for task in ("class_object", "class_scene"):
            row = plans(space, task, args.batch_size)
            rows.append(row)
            print(f"{space} {task}: forward mode on " + ", ".join(
                f"{preset} {tally['forward']} (trace of 30: {tally['forward_earlier']})"
                for preset, tally in row["forward_mode"].items()) + f" of {row['networks']}", flush=True)
    record = {
        **provenance(__file__, argv),
        "results": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
