"""``run_evaluation``: score every (architecture, seed) a run still lacks on a scoring backend,
then rank."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from ..backends import Job, check_memory_cap, memory_seen, score_all, seconds_seen
from ..benchmarks import Benchmark
from .borrow import borrowed_scores
from .rankings import compute_metrics
from .spec import EvaluationSpec
from .store import open_results


def failed(record: dict) -> bool:
    """Whether a record's scoring, or any of its proxies, failed."""
    return "error" in record or bool(record.get("proxy_errors"))


def run_evaluation(spec: EvaluationSpec, out_dir: str | Path, *, benchmark: Benchmark | None = None, workers: int = 1,
                   device: str | None = None, progress: bool = True, backend: str = "local",
                   address: str | None = None, retry_failed: bool = False, memory: int | None = None,
                   scores_from: str | Path | None = None) -> dict:
    """Score every (architecture, seed) not yet in ``out_dir`` on a ``backend`` (``local``: in
    process or ``workers`` processes, which take at most ``memory`` bytes together; ``ray``: a Ray
    cluster), then compute the metrics against ``benchmark`` (default: the bundled ground truth) and
    save them in ``metrics.json``.
    Each score uses one thread, so that it is the same bits whatever computed it. A proxy that fails
    on an architecture leaves it out of that proxy's ranking only (and of the rankings built on the
    proxy); a failure of the whole scoring, of all of them. A failure is a finished result, reported and
    not rerun, unless ``retry_failed``: then what failed is scored again (after an out-of-memory error on
    a smaller device, say), and the new record replaces the old. ``scores_from``: another evaluation run
    (running or published) of the same space and data whose scores of the same networks are taken instead
    of computed (``borrow.borrowed_scores`` says which); each record names what it took in ``borrowed``."""
    benchmark = spec.ground_truth(benchmark)  # a spec the benchmark cannot answer fails before scoring
    spec.check_data()  # as does a data file that cannot feed the networks
    check_memory_cap(backend, workers, memory)  # and a memory cap with no worker pool to cap
    borrowed = {} if scores_from is None else borrowed_scores(spec, scores_from)  # as does a run that cannot lend
    with open_results(out_dir, spec) as store:
        archs = spec.archs(benchmark)
        # Scored in a seeded order, not the sample's sorted one: a network's cost can follow its string
        # (TransNAS's macro layouts), and a shuffled order gives the progress bar a fair estimate of the
        # time left and an unfinished run a random part of the sample.
        order = [archs[i] for i in np.random.default_rng(spec.sample_seed).permutation(len(archs))]
        todo = [(arch, seed) for seed in spec.seeds for arch in order
                if (arch, seed) not in store.records or (retry_failed and failed(store.records[(arch, seed)]))]
        data = spec.data_source()
        if scores_from is not None and progress:
            lent = [key for key in todo if key in borrowed]
            taken = {c for key in lent for c in borrowed[key]}
            print(f"taking {', '.join(c for c in spec.columns() if c in taken) or 'nothing'} from {scores_from} for "
                  f"{len(lent)} of the {len(todo)} (architecture, seed) left to score", file=sys.stderr)
        score_all(todo, lambda seed: Job(spec.space_spec(), spec.proxies, spec.presets, seed, device, data=data,
                                         isolate_failures=True, record_engine_runs=True,
                                         borrowed={arch: values for (arch, s), values in borrowed.items()
                                                   if s == seed}),
                  lambda arch, seed, record: store.append(record), kind=backend, workers=workers, address=address,
                  progress=progress, desc=f"{spec.space} {spec.dataset}", done=len(archs) * len(spec.seeds) - len(todo),
                  memory=memory, journal=Path(out_dir) / "journal",
                  seen=[memory_seen(r) for r in store.records.values() if r.get("peak_rss")],
                  timed=[timed for r in store.records.values() if (timed := seconds_seen(r))])
        results = compute_metrics(spec, store.records.values(), benchmark)
        (Path(out_dir) / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
