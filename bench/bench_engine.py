"""Engine speed against the floor and against the straightforward torch.func baseline.

For each network and preset, in one run on the same prepared model and batch:
  forward   one no-grad forward of the batch (the floor's unit),
  floor     (1 + K) x forward, K the engine's number of passes (docs/method.md §4),
  engine    vkdnw_fast's engine (A = M J by taps and K data-only passes),
  baseline  vkdnw_fast.reference: vmap over samples of jacrev on the sampled weights,
and prints engine/floor, baseline/engine and max |eigenvalue difference| / largest eigenvalue.
Each of --repeats rounds times all three back to back (after a warm-up); times are medians over
rounds and the ratios medians of the per-round ratios, so drifts in machine speed cancel.

    python bench/bench_engine.py --out bench/results/engine_cpu.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import sys
import time

import torch
from torch import nn

import vkdnw_fast as vf
from vkdnw_fast import reference
from vkdnw_fast.engine import compute_factors
from vkdnw_fast.memory import retained_heap
from vkdnw_fast.prepare import prepare, scoring_mode
from vkdnw_fast.reference import reference_factors
from vkdnw_fast.selection import select_weights
from vkdnw_fast.spaces import nb201
from vkdnw_fast.spectrum import fisher_eigenvalues


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet10(nn.Module):
    """A CIFAR ResNet with widths 32-64-128-256, about 1.2M parameters."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2),
                                    BasicBlock(128, 256, 2))
        self.fc = nn.Linear(256, num_classes)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))


NB201_NETS = {
    "nb201-best": "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "nb201-mixed": "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "nb201-light": "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|",
}


def networks(num_classes):
    nets = {name: (lambda a=arch: nb201.build_model(a, num_classes)) for name, arch in NB201_NETS.items()}
    nets["resnet10"] = lambda: ResNet10(num_classes)
    return nets


def timed(fn, calls=1):
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def bench_one(name, build, preset, args):
    config = vf.FisherConfig.preset(preset)
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(1))
    prepared = prepare(build(), inputs=x, seed=0, device=args.device, init=config.init,
                       memory_format=config.memory_format)
    # The floor and the baseline in the allocator the engine's entry points score in, not only the engine.
    with scoring_mode(prepared.model) as model, retained_heap():
        return _bench_prepared(name, preset, config, model, prepared.inputs, args)


def _bench_prepared(name, preset, config, model, x, args):
    weights = select_weights(model, config).weights

    def forward():
        with torch.no_grad():
            model(x)

    def engine():
        return compute_factors(model, x, config, weights)[0]

    def baseline():
        return reference_factors(model, x, config, weights)[0]

    factors, reference_run = engine(), baseline()  # also the warm-up
    forward()
    # Rounds interleave the three measurements, so that drifts in machine speed hit all of them.
    rounds = [(timed(forward, 3), timed(engine), timed(baseline)) for _ in range(args.repeats)]
    forward_s, engine_s, baseline_s = (statistics.median(r[i] for r in rounds) for i in range(3))
    ours, theirs = fisher_eigenvalues(factors.a), fisher_eigenvalues(reference_run.a)
    return {
        "network": name, "preset": preset, "params": sum(p.numel() for p in model.parameters()),
        "num_weights": len(weights), "strategy": factors.strategy, "passes": factors.passes,
        "forward_s": forward_s, "floor_s": (1 + factors.passes) * forward_s, "engine_s": engine_s,
        "baseline_s": baseline_s,
        "engine_over_floor": statistics.median(e / ((1 + factors.passes) * f) for f, e, _ in rounds),
        "baseline_over_engine": statistics.median(b / e for _, e, b in rounds),
        "spectrum_max_diff_over_largest": float((ours - theirs).abs().max() / theirs[0]),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="measurement rounds")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--presets", default="paper,exact")
    parser.add_argument("--networks", default=None, help="comma-separated subset of " + ",".join(networks(10)))
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = networks(args.num_classes)
    if args.networks:
        chosen = {k: chosen[k] for k in args.networks.split(",")}
    rows = []
    header = f"{'network':<16}{'preset':<7}{'params':>9}{'P':>5}{'K':>5}{'forward':>9}{'engine':>9}{'baseline':>10}{'eng/floor':>11}{'base/eng':>10}{'spec.diff':>11}"
    print(header)
    for name, build in chosen.items():
        for preset in args.presets.split(","):
            row = bench_one(name, build, preset, args)
            rows.append(row)
            print(f"{name:<16}{preset:<7}{row['params']:>9}{row['num_weights']:>5}{row['passes']:>5}"
                  f"{row['forward_s']:>9.3f}{row['engine_s']:>9.3f}{row['baseline_s']:>10.3f}"
                  f"{row['engine_over_floor']:>11.2f}{row['baseline_over_engine']:>10.1f}{row['spectrum_max_diff_over_largest']:>11.1e}")
            sys.stdout.flush()
    record = {
        **provenance(__file__, argv), "backend": vf.backend(args.device),
        "settings": {"batch_size": args.batch_size, "resolution": args.resolution, "num_classes": args.num_classes,
                     "repeats": args.repeats, "device": args.device},
        "results": rows,
    }
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(record, handle, indent=2)
            handle.write("\n")


def provenance(script: str, argv: list[str] | None) -> dict:
    """How a recorded result was made: the command (the script and its arguments), when, on which machine and under
    what load (the benchmarks here share the cores with the scoring runs), with which torch."""
    arguments = argv if argv is not None else sys.argv[1:]
    return {"command": "python " + shlex.join([os.path.relpath(script)] + arguments),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {"platform": platform.platform(), "processor": _cpu_model(), "cpus": os.cpu_count(),
                        "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()},
            "torch": torch.__version__}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
