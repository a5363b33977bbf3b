"""Search throughput: iterations per minute of the evolutionary search on this machine, for
NAS-Bench-201 (cifar10, the docs/method.md §6 aggregation proxies) and MobileNetV2 at a reduced resolution
(the authors' MBV2 proxies), with the local backend (W=1 in-process, W=2 process pool) and the Ray
backend (W=2 on a local Ray instance).

    python bench/bench_search.py [--nb201-iterations 10 16] [--mbv2-iterations 30 60] [--out FILE]

Two rates per configuration: ``steady`` counts the results after the first one over the time from
the first to the last (worker start-up excluded), ``overall`` counts all iterations over the whole
run including start-up (process spawn, Ray start). Ratios compare the steady rates.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from vkdnw_fast.search import Job, SearchConfig, make_backend, run_search  # noqa: E402
from vkdnw_fast.search.cli import MBV2_PROXIES, NB201_PROXIES  # noqa: E402

SPACES = {
    "nb201": ({"name": "nb201", "dataset": "cifar10", "subset": "all"}, NB201_PROXIES),
    "mbv2": ({"name": "mbv2", "resolution": 32, "num_classes": 10, "flops_budget": 450e6, "max_layers": 14,
              "flops_count": "macs"}, MBV2_PROXIES),
}
BACKENDS = (("local", 1), ("local", 2), ("ray", 2))


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def bench_one(space_name: str, kind: str, workers: int, iterations: int, directory: Path) -> dict:
    space, proxies = SPACES[space_name]
    # The recorded results were measured with the paper preset (the default then); pinned to stay comparable.
    config = SearchConfig(space=space, proxies=proxies, iterations=iterations, population=64, seed=0,
                          workers=workers, preset="paper")
    load_before = _loadavg()
    start = time.perf_counter()
    backend = make_backend(kind, Job(space, proxies, (config.preset,), config.seed), workers)
    startup = time.perf_counter() - start
    try:
        run_search(config, directory, backend=backend, progress=False)
    finally:
        backend.close()
    wall = time.perf_counter() - start
    db = sqlite3.connect(directory / "search.sqlite")
    finished = sorted(t for (t,) in db.execute("SELECT finished_at FROM candidates WHERE status = 'evaluated'"))
    elapsed = [t for (t,) in db.execute("SELECT elapsed FROM candidates WHERE status = 'evaluated'")]
    counts = dict(db.execute("SELECT status, COUNT(*) FROM candidates GROUP BY status").fetchall())
    db.close()
    steady = (len(finished) - 1) / (finished[-1] - finished[0]) * 60
    return {"space": space_name, "backend": kind, "workers": workers, "iterations": iterations,
            "counts": counts, "backend_startup_s": round(startup, 2), "wall_s": round(wall, 2),
            "steady_it_per_min": round(steady, 3), "overall_it_per_min": round(iterations / wall * 60, 3),
            "mean_scoring_s": round(sum(elapsed) / len(elapsed), 3), "loadavg_before": load_before,
            "loadavg_after": _loadavg()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nb201-iterations", type=int, nargs=2, default=(10, 16), metavar=("W1", "W2"),
                        help="iterations for W=1 and for W=2 (local and ray)")
    parser.add_argument("--mbv2-iterations", type=int, nargs=2, default=(30, 60), metavar=("W1", "W2"))
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "search_cpu.json")
    args = parser.parse_args(argv)
    iterations = {"nb201": args.nb201_iterations, "mbv2": args.mbv2_iterations}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for space_name in args.spaces:
            for kind, workers in BACKENDS:
                n = iterations[space_name][0 if workers == 1 else 1]
                row = bench_one(space_name, kind, workers, n, Path(tmp) / f"{space_name}-{kind}-{workers}")
                print(json.dumps(row), flush=True)
                results.append(row)
    ratios = {}
    for space_name in args.spaces:
        rate = {(r["backend"], r["workers"]): r["steady_it_per_min"] for r in results if r["space"] == space_name}
        ratios[space_name] = {"ray_w2/local_w2": round(rate["ray", 2] / rate["local", 2], 3),
                              "ray_w2/local_w1": round(rate["ray", 2] / rate["local", 1], 3),
                              "local_w2/local_w1": round(rate["local", 2] / rate["local", 1], 3)}
    record = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "cpu_model": _cpu_model(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "notes": "Every scorer uses one thread (torch and BLAS): W=1 in-process, W=2 one per worker process or "
                 "Ray task. Other jobs may share the CPUs: see loadavg_before/after of each row.",
        "results": results, "ratios_of_steady_rates": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(ratios, indent=2))


if __name__ == "__main__":
    main()
