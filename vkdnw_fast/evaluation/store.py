"""A run directory: ``run.json`` (the spec) and ``results.jsonl`` (one line per finished
(architecture, seed), appended and flushed as it finishes), or ``results.jsonl.gz`` once published."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

from ..runs import DirectoryLock, check_saved_config
from .spec import EvaluationSpec

RUN, RESULTS, PUBLISHED_RESULTS = "run.json", "results.jsonl", "results.jsonl.gz"


class ResultStore:
    """``results.jsonl``: one JSON object per finished (arch, seed), each line flushed and fsynced when
    written. A reader skips a line cut short (by a crash, or a write under way). A writer holds the
    directory's ``lock`` (``runs.DirectoryLock``, so that it is the only one) and drops such a line from
    the file first, so that its own lines start on a line of their own."""

    def __init__(self, path: Path, lock: DirectoryLock | None = None):
        self.path, self.lock = path, lock
        self.records: dict[tuple[str, int], dict] = {}
        if path.exists():
            lines = [line for line in path.read_bytes().split(b"\n") if line.strip()]
            good = []
            for line in lines:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # the torn last write of an interrupted run
                good.append(line)
                self.records[(record["arch"], record["seed"])] = record
            if lock is not None and len(good) != len(lines):
                path.write_bytes(b"".join(line + b"\n" for line in good))

    def append(self, record: dict) -> None:
        if self.lock is None:
            raise RuntimeError(f"{self.path} was opened for reading; a writer holds its directory's lock "
                               "(open_results)")
        self.records[(record["arch"], record["seed"])] = record
        with open(self.path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        """Release the directory to other writers."""
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_results(out_dir: str | Path, spec: EvaluationSpec) -> ResultStore:
    """Create ``out_dir`` for ``spec``, or check that it holds a run of the same spec, and open its
    results for writing, locked for this process until ``close`` (a second writer is refused, naming
    this one's pid). Only the seeds may differ: a run is extended with more seeds (or reported on
    fewer) without scoring anything twice, and ``run.json`` then names the seeds of the latest call.
    Specs are compared field by field after reading, so a ``run.json`` written before a field existed
    matches its default."""
    out = Path(out_dir)
    lock = DirectoryLock(out, "evaluation")
    try:
        if (out / RUN).exists():
            check_saved_config(out, saved_spec(out).fields(), spec.fields(), ignore=("seeds",))
        (out / RUN).write_text(json.dumps(spec.to_json(), indent=2) + "\n")
        return ResultStore(out / RESULTS, lock)
    except BaseException:
        lock.release()
        raise


def saved_spec(out_dir: str | Path) -> EvaluationSpec:
    out = Path(out_dir)
    if not (out / RUN).exists():
        raise FileNotFoundError(f"{out} holds no evaluation (no {RUN})")
    return EvaluationSpec.from_json(json.loads((out / RUN).read_text()))


def lending_spec(directory: str | Path, space: dict, data: str | None, borrower: str) -> EvaluationSpec:
    """The spec of the evaluation run in ``directory`` that ``borrower`` ("this evaluation", "the search")
    takes scores from (``--scores-from``), refused by name where that run scored another space, or on other
    data (so other networks or batches)."""
    spec = saved_spec(directory)
    if spec.space_spec() != space:
        raise ValueError(f"--scores-from {directory} scored the space {spec.space_spec()}, {borrower} scores {space}")
    if spec.data != data:
        raise ValueError(f"--scores-from {directory} scored on {spec.data or 'Gaussian noise'}, {borrower} scores "
                         f"on {data or 'Gaussian noise'}")
    return spec


def load_records(out_dir: str | Path) -> list[dict]:
    """The finished records of a run directory: its ``results.jsonl``, or else the compressed
    ``results.jsonl.gz`` of a published run."""
    out = Path(out_dir)
    if (out / RESULTS).exists():
        return list(ResultStore(out / RESULTS).records.values())
    if (out / PUBLISHED_RESULTS).exists():
        with gzip.open(out / PUBLISHED_RESULTS, "rt") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    raise FileNotFoundError(f"{out} holds no results ({RESULTS} or {PUBLISHED_RESULTS})")


def finished_seeds(out_dir: str | Path) -> tuple[int, ...]:
    """The seeds of a run that every sampled architecture has finished (a failure counts as finished:
    it is reported, not rerun): the seeds a report of a run still in progress can cover."""
    spec = saved_spec(out_dir)
    done = {(r["arch"], r["seed"]) for r in load_records(out_dir)}
    archs = spec.archs()
    return tuple(s for s in spec.seeds if all((a, s) in done for a in archs))
