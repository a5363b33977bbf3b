"""What tracing the linearised tangent map costs, in cotangents, beside what the engine's ``auto`` counts for it
(``engine._trace_cost``), across networks and batch sizes.

Forward mode on CPU traces the network's tangent map once (``engine._traced_tangent_map``: make_fx over the forward
under forward-mode AD, then the primal once for the constants) before its tangents run. For each network, preset
and batch size, on the model and batch ``bench_plans.py`` prepares: one no-grad forward, one data-only backward of
the logits (the unit, a cotangent: their gradient to the inputs, for a random cotangent) and the trace, each the
minimum of --repeats runs after a warm-up, with the forward's layer calls, their multiply-accumulates and the traced
graph's nodes. The trace's fixed part (Python per node) is what a batch's work per layer call amortises.

    OMP_NUM_THREADS=1 python bench/bench_trace.py --threads 1 --out bench/results/trace_cost_cpu.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import torch  # noqa: E402

import vkdnw_fast as vf  # noqa: E402
from vkdnw_fast import engine  # noqa: E402
from vkdnw_fast.memory import retained_heap  # noqa: E402
from vkdnw_fast.prepare import prepare, scoring_mode  # noqa: E402
from vkdnw_fast.selection import select_weights  # noqa: E402

from bench_engine import provenance  # noqa: E402
from bench_plans import NETWORKS, best_of  # noqa: E402

# The CNN cells and encoders of the benchmarks, at the batch sizes their runs and bench_plans.py use, the TransNAS
# ones also at 16 (64 traces hold gigabytes beside a run), and the NB201 cell at 8, whose small layer calls make the
# trace mostly Python.
DEFAULT_CASES = ("nb201-best-c10:64", "nb201-best-c10:8", "tnb-micro-class_object:8", "tnb-micro-class_object:16",
                 "tnb-macro-class_scene:8", "tnb-macro-class_scene:16", "tnb-macro-class_scene-late:8",
                 "tnb-macro-class_scene-late:16")


def measure(name: str, batch: int, preset: str, repeats: int) -> dict:
    build, shape, _ = NETWORKS[name]
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))
    base = vf.FisherConfig.preset(preset)
    prepared = prepare(build(), inputs=x, seed=0, device="cpu", init=base.init, memory_format=base.memory_format)
    with scoring_mode(prepared.model) as model, retained_heap():
        inputs = prepared.inputs
        weights = select_weights(model, base).weights
        counted, logits = engine._layer_census(model, weights, inputs)

        def forward():
            with torch.no_grad():
                model(inputs)

        cotangent = torch.randn(logits.shape, generator=torch.Generator().manual_seed(2))

        def backward():
            leaf = inputs.detach().requires_grad_(True)
            torch.autograd.grad(model(leaf), leaf, cotangent)

        shifted, keys, columns = engine._shifted_parameters(model, weights, inputs.device)
        sizes = [len(columns[key]) for key in keys]
        forward_s, _ = best_of(repeats, forward)
        forward_backward_s, _ = best_of(repeats, backward)
        trace_s, traced = best_of(repeats, lambda: engine._traced_tangent_map(model, inputs, shifted, sizes, None))
    backward_s = forward_backward_s - forward_s
    return {"network": name, "preset": preset, "batch_size": batch, "input": list(shape),
            "sampled_tensors": len(keys), "layer_calls": counted.layer_calls, "macs": counted.macs,
            "graph_nodes": len(traced.module.graph.nodes), "forward_s": forward_s, "backward_s": backward_s,
            "trace_s": trace_s, "trace_cotangents": trace_s / backward_s, "counted": engine._trace_cost(counted)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated NETWORK:BATCH, networks of {', '.join(NETWORKS)}")
    parser.add_argument("--presets", default="exact,paper")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = []
    for case in args.cases.split(","):
        name, _, batch = case.partition(":")
        if name not in NETWORKS or not batch.isdigit():
            parser.error(f"case {case!r} is not NETWORK:BATCH with a network of {', '.join(NETWORKS)}")
        cases.append((name, int(batch)))
    rows = []
    for name, batch in cases:
        for preset in args.presets.split(","):
            row = measure(name, batch, preset, args.repeats)
            rows.append(row)
            print(f"{name:<28}{preset:<6} batch {batch:<3} {row['layer_calls']} layer calls, "
                  f"{row['macs'] / 1e9:.1f} GMACs, {row['graph_nodes']} nodes: trace {row['trace_s']:.2f}s = "
                  f"{row['trace_cotangents']:.1f} cotangents of {row['backward_s']:.3f}s, counted {row['counted']:.1f}",
                  flush=True)
    ratios = [row["trace_cotangents"] / row["counted"] for row in rows]
    record = {
        **provenance(__file__, argv),
        "summary": {"measured_over_counted": [min(ratios), max(ratios)]},
        "results": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
