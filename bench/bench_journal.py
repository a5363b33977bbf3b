"""What the journal (``vkdnw_fast.journal``, on in ``evaluate`` and ``search``) costs, and what it saves.

Overhead: NB201 CIFAR-10 networks (seeded sample) scored with both presets by ``score_architecture``, once
plainly and once journaled (a fresh journal directory, removed after), in alternating order, over --rounds
rounds; the ratio journaled / plain of the summed wall times and the median of the per-network ratios, and
whether both gave the same bits.
Resume: a TransNAS-Bench-101 micro cell (``class_scene``, 256x256, batch 64) scored once to warm up, then
journaled from nothing, then again with only the first half of each of its journal's pass logs left (a scoring cut short half-way);
the ratio of the two wall times, and whether the resumed scoring gave the same bits.

    OMP_NUM_THREADS=1 python bench/bench_journal.py --out bench/results/journal_cpu.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vkdnw_fast import journal, spaces  # noqa: E402
from vkdnw_fast.scoring import score_architecture  # noqa: E402

PRESETS = ("paper", "exact")
RESUME_CELL = ("tnb_micro", "class_scene", "64-41414-0_00_201")


def timed(space, arch, directory) -> tuple[float, dict]:
    started = time.perf_counter()
    with journal.journaled(directory):
        values = score_architecture(space, arch, ["vkdnw"], presets=PRESETS, seed=0)
    return time.perf_counter() - started, values


def overhead(networks: int, rounds: int) -> dict:
    space = spaces.get("nb201", dataset="cifar10")
    archs = [space.sample(np.random.default_rng(i)) for i in range(networks)]
    seconds = {"plain": [0.0] * networks, "journaled": [0.0] * networks}
    same = True
    with tempfile.TemporaryDirectory() as root:
        for round_ in range(rounds):
            for i, arch in enumerate(archs):
                values = {}
                for mode in ("plain", "journaled") if (round_ + i) % 2 == 0 else ("journaled", "plain"):
                    directory = journal.cell_directory(root, arch, 0) if mode == "journaled" else None
                    elapsed, values[mode] = timed(space, arch, directory)
                    seconds[mode][i] += elapsed
                    if directory is not None:
                        journal.discard(directory)
                same = same and values["plain"] == values["journaled"]
    return {"space": "nb201", "dataset": "cifar10", "networks": networks, "rounds": rounds,
            "plain_s": sum(seconds["plain"]), "journaled_s": sum(seconds["journaled"]),
            "journaled_over_plain": sum(seconds["journaled"]) / sum(seconds["plain"]),
            "median_per_network_ratio": statistics.median(j / p for j, p in zip(seconds["journaled"], seconds["plain"])),
            "same_bits": same}


def resume() -> dict:
    space_name, task, arch = RESUME_CELL
    space = spaces.get(space_name, dataset=task)
    timed(space, arch, None)  # the first scoring at 256x256 pays for what is set up once (oneDNN's kernels)
    with tempfile.TemporaryDirectory() as root:
        directory = Path(root) / "cell"
        whole_s, whole = timed(space, arch, directory)
        blocks = {}
        for log in sorted(directory.glob("pass*")):
            files = sorted(log.glob("*.pt"), key=lambda path: int(path.stem.split("-")[0]))
            for path in files[len(files) // 2:]:
                path.unlink()
            blocks[log.name] = (len(files) // 2, len(files))
        resumed_s, resumed = timed(space, arch, directory)
    return {"space": space_name, "task": task, "arch": arch, "batch_size": 64, "presets": list(PRESETS),
            "blocks_kept_of_total": blocks, "whole_s": whole_s, "resumed_s": resumed_s,
            "resumed_over_whole": resumed_s / whole_s, "same_bits": whole == resumed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = {
        "command": "OMP_NUM_THREADS=1 python bench/bench_journal.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1,
                    "load_average": os.getloadavg()},
        "torch": torch.__version__,
        "overhead": overhead(args.networks, args.rounds),
        "resume": resume(),
    }
    print(json.dumps({k: record[k] for k in ("overhead", "resume")}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
