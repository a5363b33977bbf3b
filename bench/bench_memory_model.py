"""How well a worker pool predicts what a candidate takes (``backends.PoolBackend.need``), on a run's own records.

Each record with a peak is predicted from all the others (leave one out), as a resumed run's pool would from
them, on the chunk it was scored in; what it took above its worker's base is compared with the prediction above
the pool's base. Per record the excess (prediction less what it took, GiB), and in all: how many were predicted
under what they took, by how much at most, the mean excess, and the predictions, from every record, for the
architectures given. ``--revision`` predicts with ``vkdnw_fast/backends.py`` as it was at a git revision
instead (the rest of the package as checked out), to compare a model with an earlier one.

    python bench/bench_memory_model.py bench/results/tnb/tnb_macro_class_scene_vkdnw100 \\
        --predict 64-12223-basic 64-122233-basic 64-424313-basic \\
        --out bench/results/memory_model_tnb_macro_class_scene_complete.json
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

GIB = 2**30


def backends_module(revision: str | None):
    """``vkdnw_fast.backends``, or that module's source at ``revision`` loaded beside it."""
    from vkdnw_fast import backends
    if revision is None:
        return backends
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:vkdnw_fast/backends.py"],
                            check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "backends.py"
    path.write_text(source)
    name = f"vkdnw_fast.backends_{revision}"  # inside the package, so that its relative imports resolve
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="an evaluation run's directory (run.json and its records)")
    parser.add_argument("--predict", nargs="*", default=[], help="architectures to predict from every record")
    parser.add_argument("--revision", help="predict with vkdnw_fast/backends.py at this git revision")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from vkdnw_fast.evaluation import load_records
    from vkdnw_fast.evaluation.store import saved_spec

    spec = saved_spec(args.run)
    records = [r for r in load_records(args.run) if r.get("peak_rss")]
    backends = backends_module(args.revision)
    job = backends.Job(spec.space_spec(), ("vkdnw",), spec.presets, 0)
    seen = [backends.memory_seen(r) for r in records]
    pool = backends.PoolBackend(job, 2, memory=64 * GIB, seen=seen)
    pool._resumed = 0  # every record counts as the pool's own: each base as reported, none left out
    rows = []
    try:
        for i, (arch, peak, base, samples) in enumerate(seen):
            pool.seen = seen[:i] + seen[i + 1:]
            predicted = pool.need(arch, samples=samples) - pool._calibration().base
            rows.append({"arch": arch, "samples_a_chunk": samples, "took_gib": (peak - base) / GIB,
                         "excess_gib": (predicted - (peak - base)) / GIB})
        pool.seen = seen
        chunks = [None, *(max(1, job.batch_size // d) for d in backends._CHUNK_DIVISORS)]  # those the pool tries
        predictions = {arch: {str(c or job.batch_size): pool.need(arch, samples=c) / GIB for c in chunks}
                       for arch in args.predict}
    finally:
        pool.close()

    excess = [row["excess_gib"] for row in rows]
    under = [e for e in excess if e < 0]
    by_chunk = {}
    for row in rows:
        by_chunk.setdefault(str(row["samples_a_chunk"] or job.batch_size), []).append(row["excess_gib"])
    result = {
        "command": " ".join(["python", "bench/bench_memory_model.py", *sys.argv[1:]]),
        "revision": args.revision or subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                                    capture_output=True, text=True).stdout.strip(),
        "run": str(args.run), "records": len(rows),
        "predicted_under": len(under), "most_under_gib": -min(excess) if under else 0.0,
        "mean_excess_gib": statistics.mean(excess),
        "mean_excess_gib_by_samples_a_chunk": {c: {"records": len(e), "mean": statistics.mean(e)}
                                               for c, e in sorted(by_chunk.items(), key=lambda kv: -int(kv[0]))},
        "predicted_gib_by_samples_a_chunk": predictions,
        "per_record": rows,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "per_record"}, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
