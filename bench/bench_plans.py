"""What one pass of each engine plan costs, in units of a no-grad forward, so that the engine's
``auto`` choice (``engine._choose``) weighs the plans by measured costs.

For each network and preset, on one prepared model and batch: a no-grad forward, then each plan the
network admits, forced (``FisherConfig.strategy``): ``rows`` (K data-only backward passes; its
passes count the general path's tangents too: the ViT's three token and embedding weights under
``paper``), ``features`` (D unit cotangents on the final Linear's input, where the logits come from
one and D is at most twice the fewer of K and P), ``forward`` (P forward-mode tangents through the
linearised tangent map, ``vkdnw_fast.linearise``, its trace included), ``forward_jvp`` (the same by
``torch.func.jvp``, 4 tangents a call, each call running the primal again), and per-sample reverse mode (K rows per sample, ``engine._per_sample_reverse``; on the ViT, the
kind of model it is chosen for).
Per plan it prints the time, the passes and the cost of one pass in forwards, ``(time - forward) /
passes / forward``, records what ``auto`` counts for it (``counted``, in cotangents) and the VKDNW its
factors give (the plans agree to float32 rounding), and per network the ratio of a tangent to a cotangent (the engine's
``_FORWARD_TANGENT_COST``; jvp's too), jvp's time over the linearised map's, and of a per-sample row to a cotangent (``_PER_SAMPLE_ROW_COST``). Times are
the minimum of --repeats runs after a warm-up (--no-warm-up: of the first ones).

    OMP_NUM_THREADS=1 python bench/bench_plans.py --threads 1 --out bench/results/plan_costs_cpu.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import torch  # noqa: E402
from torch import nn  # noqa: E402

import vkdnw_fast as vf  # noqa: E402
from vkdnw_fast import engine, ops, spaces  # noqa: E402
from vkdnw_fast.memory import retained_heap  # noqa: E402
from vkdnw_fast.prepare import prepare, scoring_mode  # noqa: E402
from vkdnw_fast.selection import select_weights  # noqa: E402
from vkdnw_fast.spectrum import fisher_eigenvalues, vkdnw_entropy  # noqa: E402

from bench_engine import NB201_NETS, provenance  # noqa: E402


class ViT(nn.Module):
    """DeiT-like: 3x3 patches of 24x24 images (64 tokens), class and distillation tokens, positional
    embedding, 4 pre-norm encoder layers (dim 64, 4 heads), two heads. Its tokens and embedding are
    weights no tap takes (the general path)."""

    def __init__(self, num_classes=10, dim=64, depth=4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 3, stride=3)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 66, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, dim_feedforward=2 * dim, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Linear(dim, num_classes)
        self.head_dist = nn.Linear(dim, num_classes)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        n = x.shape[0]
        tokens = torch.cat([self.cls_token.expand(n, -1, -1), self.dist_token.expand(n, -1, -1), tokens], 1)
        tokens = self.encoder(tokens + self.pos_embed)
        return (self.head(tokens[:, 0]) + self.head_dist(tokens[:, 1])) / 2


def transnas(space, arch, task):
    return lambda: spaces.get(space, dataset=task).build_model(arch)


# name: (builder, input shape, batch size). TransNAS-Bench-101 at batch 8 (the plans' costs per pass
# are what is measured; batch 64 takes minutes a plan on one core).
NETWORKS = {
    "nb201-best-c10": (lambda: spaces.nb201.build_model(NB201_NETS["nb201-best"], 10), (3, 32, 32), 64),
    "nb201-best-c100": (lambda: spaces.nb201.build_model(NB201_NETS["nb201-best"], 100), (3, 32, 32), 64),
    "tnb-micro-class_object": (transnas("tnb_micro", "64-41414-2_21_023", "class_object"), (3, 256, 256), 8),
    "tnb-macro-class_object": (transnas("tnb_macro", "64-23343-basic", "class_object"), (3, 256, 256), 8),
    "tnb-macro-class_scene": (transnas("tnb_macro", "64-23343-basic", "class_scene"), (3, 256, 256), 8),
    # A macro layout whose sampled tensors mostly precede its costly stages: under paper their shares sum to 64
    # of 95 tangents, so auto counts forward mode (94) above K = 63 rows, as on most of the class_scene sample's
    # GMACs (bench/results/plan_costs_tnb64_late_cpu.json).
    "tnb-macro-class_scene-late": (transnas("tnb_macro", "64-331224-basic", "class_scene"), (3, 256, 256), 8),
    # One whose shares sum to 43 under paper: forward mode once the trace is counted by the batch's work per layer
    # call (47 against 63 rows; a trace of 30 made it 73, bench/results/plan_costs_tnb64_mid_cpu.json).
    "tnb-macro-class_scene-mid": (transnas("tnb_macro", "64-44411-basic", "class_scene"), (3, 256, 256), 8),
    "vit": (ViT, (3, 24, 24), 64),
}


# bench/results/plan_costs_cpu.json; plan_costs_tnb64_cpu.json has the macro layout of class_scene at batch 64.
DEFAULT_NETWORKS = ("nb201-best-c10", "nb201-best-c100", "tnb-micro-class_object", "tnb-macro-class_object", "vit")


def best_of(repeats, fn, warm_up=True):
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def measure(name, preset, repeats, batch_size=None, warm_up=True, only=None):
    build, shape, batch = NETWORKS[name]
    batch = batch_size or batch
    x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(1))
    base = vf.FisherConfig.preset(preset)
    prepared = prepare(build(), inputs=x, seed=0, device="cpu", init=base.init, memory_format=base.memory_format)
    row = {"network": name, "preset": preset, "batch_size": batch, "input": list(shape), "plans": {}}
    # In the allocator the engine's entry points score in (``memory.retained_heap``; VKDNW_FAST_MALLOC=system: glibc's own).
    with scoring_mode(prepared.model) as model, retained_heap():
        inputs = prepared.inputs
        weights = select_weights(model, base).weights
        row["num_weights"] = len(weights)

        def forward():
            with torch.no_grad():
                return model(inputs)
        forward_s, logits = best_of(repeats, forward, warm_up)
        row["forward_s"] = forward_s
        counted, _ = engine._layer_census(model, weights, inputs)
        # Rows and tangents always; features where D is at most twice the fewer of K and P (512 unit
        # cotangents on a TransNAS encoder take minutes).
        rows = ops.factor_rows(base.factor, logits.shape[1])
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        # forward: the tangent map linearised (the default on CPU); forward_jvp: jvp's blocks of 4 tangents.
        plans = ["rows", "forward", "forward_jvp"]
        if linears and linears[-1].in_features <= 2 * min(rows, len(weights)):
            plans.insert(1, "features")
        plans = [plan for plan in plans if only is None or plan in only]
        # What auto weighs (in cotangents): the passes, forward mode linearised (its trace and tangents) and by jvp.
        row["counted"] = {"rows": rows, "forward": engine._linearised_cost(counted),
                          "forward_jvp": engine._FORWARD_TANGENT_COST * len(weights)}
        if "features" in plans:
            row["counted"]["features"] = linears[-1].in_features
        for plan in plans:
            config = vf.FisherConfig.preset(preset, strategy=plan.removesuffix("_jvp"),
                                            tangents="jvp" if plan.endswith("_jvp") else "linearised")
            try:
                seconds, (factors, _) = best_of(repeats, lambda: engine.compute_factors(model, inputs, config, weights),
                                                 warm_up)
            except ValueError as error:  # features on logits that no final Linear makes
                row["plans"][plan] = {"error": str(error)}
                continue
            entropy, _ = vkdnw_entropy(fisher_eigenvalues(factors.a, getattr(torch, config.spectrum_dtype)),
                                       config.quantiles)
            row["plans"][plan] = {"description": factors.strategy, "passes": factors.passes, "seconds": seconds,
                                  "pass_over_forward": (seconds - forward_s) / factors.passes / forward_s,
                                  "vkdnw": entropy}
        chunk = engine._sample_chunk(model, weights, rows, batch) if name == "vit" else 0
        if chunk:
            logits64 = logits.detach().to(torch.float64)
            seconds, _ = best_of(repeats, lambda: engine._per_sample_reverse(
                model, inputs, weights, base, logits64, None, "per-sample reverse mode", chunk), warm_up)
            row["plans"]["per_sample"] = {"description": f"per-sample reverse mode (K={rows} rows)", "passes": rows,
                                          "seconds": seconds,
                                          "pass_over_forward": (seconds - forward_s) / rows / forward_s}
    cotangent = row["plans"]["rows"]["pass_over_forward"]
    if "forward" in row["plans"]:
        row["tangent_over_cotangent"] = row["plans"]["forward"]["pass_over_forward"] / cotangent
    if "forward_jvp" in row["plans"]:
        row["jvp_tangent_over_cotangent"] = row["plans"]["forward_jvp"]["pass_over_forward"] / cotangent
    if {"forward", "forward_jvp"} <= row["plans"].keys():
        row["jvp_over_linearised"] = row["plans"]["forward_jvp"]["seconds"] / row["plans"]["forward"]["seconds"]
    if "per_sample" in row["plans"]:
        row["per_sample_row_over_cotangent"] = row["plans"]["per_sample"]["pass_over_forward"] / cotangent
    # Each plan's time beyond the forward in cotangents' time, beside what auto counts for it.
    cotangent_s = cotangent * row["forward_s"]
    for plan in row["plans"].values():
        if "seconds" in plan:
            plan["cotangents"] = (plan["seconds"] - row["forward_s"]) / cotangent_s
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(DEFAULT_NETWORKS),
                        help=f"comma-separated, of {', '.join(NETWORKS)}")
    parser.add_argument("--presets", default="exact,paper")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=None, help="instead of each network's own")
    parser.add_argument("--no-warm-up", action="store_true", help="time the first run (plans of minutes)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--plans", default=None,
                        help="comma-separated, of rows, features, forward, forward_jvp (default: all the network "
                        "admits; rows always, the unit of the others)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    only = None if args.plans is None else {"rows", *args.plans.split(",")}
    for name in args.networks.split(","):
        if name not in NETWORKS:
            parser.error(f"unknown network {name!r}; choose from {', '.join(NETWORKS)}")
        for preset in args.presets.split(","):
            row = measure(name, preset, args.repeats, args.batch_size, not args.no_warm_up, only)
            rows.append(row)
            plans = "  ".join(f"{plan} {p['passes']}x{p['pass_over_forward']:.2f}={p['seconds']:.2f}s"
                              for plan, p in row["plans"].items() if "seconds" in p)
            counted = "  ".join(f"{plan} {row['plans'][plan]['cotangents']:.0f} ({count:.0f})"
                                for plan, count in row["counted"].items() if "cotangents" in row["plans"].get(plan, {}))
            print(f"{name:<24}{preset:<6} P={row['num_weights']:<4} forward {row['forward_s']:.3f}s  {plans}  "
                  f"tangent/cotangent {row.get('tangent_over_cotangent', math.nan):.2f}  in cotangents (counted): "
                  f"{counted}",
                  flush=True)
    record = {
        **provenance(__file__, argv),
        "summary": {key: [min(r[key] for r in rows if key in r), max(r[key] for r in rows if key in r)]
                    for key in ("tangent_over_cotangent", "jvp_tangent_over_cotangent", "jvp_over_linearised",
                                "per_sample_row_over_cotangent")
                    if any(key in r for r in rows)},
        "results": rows,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
