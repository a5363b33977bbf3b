"""Where architectures are scored, for the search and the NB201 evaluation: the caller keeps its
state (a population, a results file); a backend only scores.

Every backend has the same calls: ``submit(key, arch)`` queues a candidate, ``wait()`` blocks
until at least one queued candidate is done and returns [(key, outcome)], in any order; after an
interrupt, ``drain()`` yields the outcomes of the ``running`` candidates under way as they finish and
starts no other, and ``close(wait=False)`` stops at once, dropping them. An outcome
is ``{"ok": True, "values": {column: float}, ...}`` or ``{"ok": False, "reason": str, ...}``, plus
``elapsed`` (scoring seconds), ``worker`` (host:pid), ``peak_rss`` and ``base_rss`` (the worker's peak
resident bytes while it scored the candidate, and what it held before) and ``attempts``. A candidate whose scorer
raises is a failed outcome carrying the exception; a worker process that dies (killed, out of
memory, a crash in native code) is not: its candidates are retried on a fresh worker, and only a
candidate that kills ``MAX_ATTEMPTS`` workers is reported failed.

* ``InProcessBackend``: scores in this process, lazily, oldest first, when ``wait`` is called.
* ``PoolBackend``: ``workers`` spawned processes (``concurrent.futures``), one torch thread each.
* ``RayBackend``: Ray tasks, one per GPU where the cluster has GPUs, else one per CPU slot.

Scoring uses one thread everywhere (torch's and the BLAS libraries'; in-process too, by default), so
that a score does not depend on the backend or worker that computed it (the thread count can change
float reductions) and W workers do not oversubscribe W cores.
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import itertools
import multiprocessing
import os
import signal
import socket
import statistics
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from threadpoolctl import threadpool_limits

from . import spaces
from .datasets import DataSource
from .engine import LEAST_MEMORY_SAMPLES, least_memory_plans, samples_at_most
from .journal import cell_directory, discard, journaled, keep_sample_chunk, kept_sample_chunk, prune
from .memory import (available_memory, forget_tracebacks, peak_rss, release_freed_memory, reset_peak_rss,
                     resident_memory)
from .scoring import DEFAULT_BATCH_SIZE, columns, score_architecture
from .spaces import SearchSpace

MAX_ATTEMPTS = 3
Scorer = Callable[..., dict[str, float]]


@dataclass(frozen=True)
class Job:
    """What a worker needs to score candidates: everything but the architecture."""

    space: dict[str, Any]  # {"name": ..., **constructor arguments}: see spaces.from_spec
    proxies: tuple[str, ...]
    presets: tuple[str, ...]
    seed: int
    device: str | None = None
    scorer: Scorer = score_architecture
    # Real images for the scoring batch (read by each worker once, ``datasets.load``); None: Gaussian.
    data: DataSource | None = None
    # A proxy that fails leaves out its own columns (an evaluation ranks each proxy on what it could score)
    # rather than the candidate (a search's fitness needs every proxy).
    isolate_failures: bool = False
    # Record what the engine did for each preset (``score_architecture``'s ``engine_runs``) in the outcome.
    record_engine_runs: bool = False
    # Score under ``engine.least_memory_plans`` (the retry of a candidate that killed its worker).
    least_memory: bool = False
    # Score the batch at most this many samples at a time (``engine.samples_at_most``): how the worker pool
    # starts a large network beside others. None: the whole batch.
    sample_chunk: int | None = None
    # The scoring batch's size (the throughput benchmark's --batch-size); scorers need not take it otherwise.
    batch_size: int = DEFAULT_BATCH_SIZE
    # {arch: {column: value}} known already (``evaluate --scores-from``): a proxy whose columns are all there
    # is taken from here, not scored.
    borrowed: dict[str, dict[str, float]] = field(default_factory=dict)
    # A directory on the workers' file system where each (arch, seed) keeps the finished blocks of its passes
    # (``journal.cell_directory``), so that a scoring cut short resumes where it stopped; None: none kept.
    journal: str | None = None


_SPACES: dict[str, SearchSpace] = {}


def _space(spec: dict[str, Any]) -> SearchSpace:
    """The space of ``spec``, built once per process (a worker scores many candidates of one space)."""
    key = repr(sorted(spec.items()))
    if key not in _SPACES:
        _SPACES[key] = spaces.from_spec(spec)
    return _SPACES[key]


def score_job(job: Job, arch: str, threads: int | None = None) -> dict[str, Any]:
    """Score ``arch`` as ``job`` says; any exception becomes a failed outcome with its type and message,
    except, with ``job.isolate_failures``, a proxy's own: the outcome is then ok, and ``proxy_errors``
    ({column: message}) names the columns missing from its values. The proxies ``job.borrowed`` holds for
    ``arch`` are not scored: their columns are copied, and ``borrowed`` names them."""
    if threads is not None:
        # Set even where torch already reports it: inside threadpool_limits it reads OpenMP's limit, while
        # its own pool may still run more threads (the paper preset's VKDNW of an NB201 cell then differed in
        # its last bit from a worker's after the first candidate of an in-process run).
        torch.set_num_threads(threads)
    reset_peak_rss()
    base_rss = peak_rss()  # what the worker holds before it starts: the peak less this is the candidate's
    start = time.perf_counter()
    try:
        extra = {} if job.data is None else {"data": job.data}  # scorers without data need not take it
        if job.batch_size != DEFAULT_BATCH_SIZE:
            extra["batch_size"] = job.batch_size
        failures: dict[str, str] = {}
        if job.isolate_failures:
            extra["failures"] = failures
        engine_runs: dict[str, dict] = {}
        if job.record_engine_runs:
            extra["engine_runs"] = engine_runs
        known = job.borrowed.get(arch, {})
        proxies = tuple(p for p in job.proxies if not set(columns([p], job.presets)) <= known.keys())
        with journaled(None if job.journal is None else cell_directory(job.journal, arch, job.seed)) as journal, \
                (least_memory_plans() if job.least_memory else contextlib.nullcontext()), \
                (contextlib.nullcontext() if job.sample_chunk is None else samples_at_most(job.sample_chunk)):
            if journal is not None:
                keep_sample_chunk(journal.directory, samples_a_chunk(job) or job.batch_size)
            values = job.scorer(_space(job.space), arch, proxies, presets=job.presets, seed=job.seed,
                                device=job.device, **extra) if proxies else {}
        borrowed = {c: v for c, v in known.items() if c not in values}
        outcome = {"ok": True, "values": {k: float(v) for k, v in {**values, **borrowed}.items()},
                   **({"proxy_errors": failures} if failures else {}),
                   **({"engine": engine_runs} if engine_runs else {}),
                   **({"least_memory": True} if job.least_memory else {}),
                   **({"sample_chunk": job.sample_chunk} if job.sample_chunk is not None else {}),
                   **({"borrowed": sorted(borrowed)} if borrowed else {}),
                   **({"resumed_blocks": journal.taken} if journal is not None and journal.taken else {})}
    except Exception as exc:  # the scorer's failure is data about the candidate
        outcome = {"ok": False, "reason": f"{type(exc).__name__}: {exc}"}
        forget_tracebacks(exc)
    outcome.update(elapsed=time.perf_counter() - start, worker=f"{socket.gethostname()}:{os.getpid()}",
                   peak_rss=peak_rss(), base_rss=base_rss)
    release_freed_memory(base_rss)  # the next candidate, and the system meanwhile, get back what this one freed
    return outcome


def activation_bytes(space: SearchSpace, arch: str) -> int | None:
    """The bytes of every leaf module's output in one forward of ``arch`` at batch 1, run on the meta
    device (no memory, no arithmetic; a tenth of a second for a TransNAS network): what the memory a
    network needs grows with (measured on TransNAS macro layouts: 1.1-2x it, the rest a fixed part).
    None where the network cannot be built or run there."""
    try:
        with torch.device("meta"):
            model = space.build_model(arch)
            inputs = torch.empty((1, *space.input_shape))
        total = 0

        def count(module, args, output):
            nonlocal total
            if isinstance(output, torch.Tensor):
                total += output.numel() * output.element_size()
        hooks = [m.register_forward_hook(count) for m in model.modules() if not next(m.children(), None)]
        with torch.no_grad():
            model.train()(inputs)
        for hook in hooks:
            hook.remove()
        return total or None
    except Exception:  # noqa: BLE001 - a network the meta device cannot run is estimated by the largest seen
        return None


# The part of the memory a worker pool may fill: a tenth stays for the driver, the system and estimate error.
_MEMORY_SHARE = 0.9
# What a candidate scored in chunks of half, a quarter or an eighth of the batch (``Job.sample_chunk``) takes, as a
# part of what it takes on the whole batch, part of it not shrinking with the chunk: on a TransNAS macro layout half
# the batch took 0.57-0.58 of the whole's memory above the worker's, a quarter 0.31-0.38
# (bench/results/plan_memory_chunks_tnb64_cpu.json), an eighth 0.58-0.67 of a quarter's, in 1.09-1.21x its time
# (0.19 of the whole's under ``exact``, bench/results/plan_memory_chunk8_tnb64_cpu.json). A chunk's activations count
# a quarter as fixed (0.625, 0.44 and 0.34 of the whole batch's), the floor beside them in full (``Calibration``).
_CHUNK_DIVISORS = (2, 4, 8)
_CHUNK_FIXED_PART = 0.25


def chunk_share(samples: int | None, batch: int, fixed: float = _CHUNK_FIXED_PART) -> float:
    """The part of its whole batch's memory a candidate scored ``samples`` samples at a time takes (above its
    worker's), ``fixed`` of it not shrinking with the chunk."""
    return 1.0 if samples is None or samples >= batch else fixed + (1 - fixed) * samples / batch


@dataclass(frozen=True)
class Calibration:
    """What a worker pool predicts a candidate's memory from (``PoolBackend._calibration``): a worker's ``base``
    bytes, and above it a ``floor`` (what the smallest networks took: the network, its traces and factors, the
    allocator's arenas) plus ``slope`` times the candidate's scaled activations (``activation_bytes`` times its
    chunk's ``chunk_share``); beyond the largest scaled activations seen (``reach``), no less than what that
    candidate took (``reach_took``) grown with them."""

    base: int
    floor: int
    slope: float
    reach: float
    reach_took: int

    def need(self, scaled_activations: float) -> int:
        """The peak resident memory of a worker scoring a candidate of ``scaled_activations``."""
        above = self.floor + self.slope * scaled_activations
        if scaled_activations > self.reach:
            above = max(above, self.reach_took * scaled_activations / self.reach)
        return int(self.base + above)


def samples_a_chunk(job: Job | dict) -> int | None:
    """The most samples a chunk ``job`` (or a record of it) scored with: ``sample_chunk``, 16 under
    ``least_memory``; None for the whole batch."""
    get = job.get if isinstance(job, dict) else lambda name: getattr(job, name, None)
    limits = [n for n in (get("sample_chunk"), LEAST_MEMORY_SAMPLES if get("least_memory") else None) if n]
    return min(limits, default=None)


def memory_seen(record: dict) -> tuple[str, int, int, int | None]:
    """(arch, peak_rss, base_rss, samples a chunk) of a record with a ``peak_rss``: what a resumed run's worker
    pool starts knowing (``PoolBackend``'s ``seen``)."""
    return record["arch"], record["peak_rss"], record.get("base_rss") or 0, samples_a_chunk(record)


def seconds_seen(record: dict) -> tuple[str, float] | None:
    """(arch, seconds) of a record scored in full (none of its passes from a journal), None for any other: what
    a resumed run's worker pool starts timing candidates by (``PoolBackend``'s ``timed``)."""
    if "values" not in record or record.get("resumed_blocks") or not record.get("seconds"):
        return None
    return record["arch"], record["seconds"]


def _died(attempts: int, error: BaseException, elapsed: float | None) -> dict[str, Any]:
    """The outcome of a candidate that killed its worker ``attempts`` times; ``elapsed``: the seconds those
    attempts ran, None where the backend cannot tell."""
    return {"ok": False, "attempts": attempts, "elapsed": elapsed,
            "reason": f"the worker process died on each of {attempts} attempts ({type(error).__name__}: {error})"}


class InProcessBackend:
    """Scores in the calling process, oldest first, one candidate per ``wait``, with ``threads``
    torch threads (torch's setting is restored afterwards; None leaves it alone). One thread by
    default, like the workers of the other backends, so that scores are the same bits everywhere;
    it is also much faster where other jobs share the cores (a 2-thread torch waits on the busy
    one: 9-14 s instead of 1.1 s for a 32-pixel MobileNetV2 on a loaded 2-core machine)."""

    name = "local"

    def __init__(self, job: Job, threads: int | None = 1):
        self.job = job
        self.threads = threads
        self.workers = 1
        self._queue: deque[tuple[Any, Job, str]] = deque()

    def set_job(self, job: Job) -> None:
        """Score later submissions with ``job`` (e.g. the next seed of a repeated search)."""
        self.job = job

    def submit(self, key: Any, arch: str) -> None:
        self._queue.append((key, self.job, arch))

    def wait(self) -> list[tuple[Any, dict[str, Any]]]:
        key, job, arch = self._queue.popleft()
        if self.threads is None:
            return [(key, {**score_job(job, arch), "attempts": 1})]
        previous = torch.get_num_threads()
        try:
            with threadpool_limits(self.threads):  # BLAS threads too, as in the workers
                return [(key, {**score_job(job, arch, self.threads), "attempts": 1})]
        finally:
            torch.set_num_threads(previous)

    def cancel(self) -> None:
        self._queue.clear()

    running = 0  # an interrupt stops the candidate under way here, in this very process

    def drain(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Nothing: an interrupt here stopped the candidate under way in this very process."""
        self.cancel()
        return iter(())

    def close(self, wait: bool = True) -> None:
        self.cancel()


def _pool_initializer() -> None:
    # One thread for the BLAS libraries too (numpy's and scipy's OpenBLAS would start one per
    # core): the ones loaded already through threadpoolctl, the ones loaded later through the
    # environment, as Ray does for its workers.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    threadpool_limits(1)
    torch.set_num_threads(1)


class PoolBackend:
    """``workers`` spawned processes, as many at a time as the memory holds.

    Networks of one space differ many times over in what they need (TransNAS macro layouts: under 1 to 22 GiB), and
    the out-of-memory killer ends a worker and so the whole pool's running work. Each outcome carries what its
    candidate took (``peak_rss`` less ``base_rss``, what the worker held before), and ``memory`` (``--memory`` on
    the command line; default: the memory available when the pool starts, less a tenth) is shared so: the first
    candidate runs alone (before it nothing is known of what one takes: two TransNAS macro layouts started together
    drew the out-of-memory killer); then a candidate starts beside the running ones where (running + 1) x the
    largest peak seen fits; where it does not, where the predicted peaks of the running ones and its own fit (once
    ``CALIBRATION`` records are there to predict from: from three, the TransNAS macro ``class_object`` run predicted
    a layout at 17.2 GiB and started it beside another; it took over 22), on the whole batch or else in chunks of
    half, a quarter or an eighth of it (``Job.sample_chunk``: the same scores to
    rounding, in 0.97-1.23x the time on a TransNAS macro layout, an eighth in 1.09-1.21x a quarter's,
    ``chunk_share``); where none does, one of the next ``workers`` that fits may go first, ``workers`` times at
    most; after that, a later one that fits only where it is predicted to finish before the first of the running
    ones (backfilling: by its multiply-accumulates at the median seconds per MAC of the candidates scored in full so
    far, a resumed run's records among them, once ``BACKFILL_AFTER`` have), so that it does not delay the waiting
    one while a worker would otherwise idle (the TransNAS macro run's second worker idled beside a layout of 22
    GMACs while one of 34 waited). A candidate starting alone takes the largest of those chunks predicted to leave
    the other workers their share of the memory (an eighth where none does), so that a large network does not keep
    them idle: large TransNAS macro layouts, scored on the whole batch, peaked at 10.9 and 13.7 GiB of the 20.6 GiB
    two workers had on a 24 GiB machine (the records of ``bench/transnas_vkdnw.sh``'s macro ``class_scene`` run). A
    candidate whose journal holds blocks (a run cut short and resumed) tries the chunk they were computed in first
    (``Job.journal`` keeps it, ``journal.keep_sample_chunk``), since on others its blocks differ and are computed
    again. Other processes may take memory meanwhile (a second run beside this one), so the share is at most a tenth
    less than what is available now plus what the workers hold now, re-read before each candidate that would start
    beside others.

    A prediction is the largest base plus what a candidate takes above it (``Calibration``): a floor, the most that
    the ``CALIBRATION`` seen with the smallest activations took (the network, its traces and factors, the
    allocator's arenas: 4.7 GiB on the TransNAS macro run, whatever the layout), plus its ``activation_bytes`` (in a
    chunk, times its ``chunk_share``) times the largest ratio of what the others took above that floor to theirs;
    beyond the largest seen, no less than what that one took, grown with the activations; the largest peak seen,
    times the chunk's share, where nothing has an estimate. (One ratio to the activations plus a fixed part fits
    neither end: the TransNAS macro run's small layouts set it, and a layout predicted at 20 GiB on an eighth of its
    batch, 18 on a quarter, kept the second worker idle for hours. On that run's 87 records, each predicted from the
    others, the floor and slope were never under what one took, 2.6 GiB over on average; the one ratio 10 times
    under, by up to 2.8 GiB.) A base is what a worker holds, not what a network takes, so once this pool's own
    workers have reported, theirs count, not those of a resumed run's records (workers that kept freed memory held
    up to 17.8 GiB); and once ``2 * CALIBRATION`` of its own candidates have, enough for a floor and a slope of
    their own, so do they alone: the records may come from an earlier version of the scoring code (a TransNAS micro
    cell took a quarter less once forward mode stopped holding the tapped forward's graph, and the resumed run's
    ratios kept a second worker idle). Not before: with five of its own, the TransNAS macro run predicted a layout
    at 10.7 GiB on a quarter of its batch, started it beside one predicted at 9.6 (which peaked at 9.4), and it
    peaked at 11.7 (by its 92 records: 14.5).

    ``seen``: (arch, peak_rss, base_rss, samples a chunk or None) of earlier candidates (a resumed run's records,
    ``memory_seen``); ``timed``: (arch, seconds) of those scored in full (``seconds_seen``; without them, a resumed
    run backfills nothing until ``BACKFILL_AFTER`` of its own have finished).

    A dead worker breaks a ``ProcessPoolExecutor`` for good and does not say which task killed it.
    So the pool, which holds one task a worker (the others wait here), is rebuilt and the candidates
    it held become suspects, re-run one at a time (other submissions wait), each on the chunk a candidate
    starting alone takes where that is smaller than the one it ran on (a prediction failed): a suspect that
    completes is cleared; a candidate whose worker dies while it runs alone (a suspect, or one the pool held by itself,
    as it does a network predicted to need most of the memory) is the culprit and is charged the death, its next
    attempts scoring under ``engine.least_memory_plans`` (most such deaths are the kernel's out-of-memory kills);
    ``MAX_ATTEMPTS`` deaths make it failed. A candidate that merely shared a pool with a killer is
    thus never failed for it.
    """

    name = "local"

    CALIBRATION = 8
    BACKFILL_AFTER = 3

    def __init__(self, job: Job, workers: int, memory: int | None = None,
                 seen: Sequence[tuple[str, int, int, int | None]] = (), timed: Sequence[tuple[str, float]] = ()):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.job = job
        self.workers = workers
        available = available_memory()
        self.memory = memory if memory is not None else None if available is None else int(_MEMORY_SHARE * available)
        # (arch, peak, base, samples a chunk or None) of the finished candidates
        self.seen: list[tuple[str, int, int, int | None]] = list(seen)
        self._resumed = len(self.seen)  # those before this pool's own
        self.peak = max((peak for _, peak, _, _ in self.seen), default=0)  # the largest peak resident memory
        self._activations: dict[str, int | None] = {}
        self._macs: dict[str, float | None] = {}
        self._timed: list[tuple[str, float]] = list(timed)  # (arch, seconds) of the candidates scored in full
        self._said_tight = False
        self._pending: dict[cf.Future, tuple[Any, Job, str]] = {}
        self._waiting: deque[tuple[Any, Job, str]] = deque()
        self._overtaken = 0  # how many later candidates have started before the first waiting one
        self._suspects: deque[tuple[Any, Job, str]] = deque()
        self._deaths: dict[Any, int] = {}
        self._started: dict[Any, float] = {}  # when each pending candidate was sent
        self._spent: dict[Any, float] = {}  # seconds of the attempts a suspect died in
        self._pool = self._new_pool()

    def set_job(self, job: Job) -> None:
        """Score later submissions with ``job``."""
        self.job = job

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        # 'spawn': a forked child would inherit torch's thread pools and locks in whatever state
        # the driver had them.
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_pool_initializer)

    def submit(self, key: Any, arch: str) -> None:
        self._waiting.append((key, self.job, arch))
        self._dispatch()

    def _dispatch(self) -> None:
        if self._suspects:
            if not self._pending:
                self._send(self._placed_suspect())
            return
        # No more than one task a worker in the executor: a death then makes suspects of the candidates
        # that were running, not of every one queued behind them (which would all run one at a time).
        # A candidate that does not fit beside the running ones lets one of the next ``workers`` that does
        # go first, ``workers`` times at most: a worker does not idle behind it, and it waits for few.
        while self._waiting and len(self._pending) < self.workers:
            lookahead = self.workers if self._overtaken < self.workers else 0
            window = list(itertools.islice(self._waiting, 1 + lookahead))
            placed = next(((t, samples) for t in window if (samples := self.placement(t[2])) is not None), None)
            backfilled = placed is None
            placed = placed or self._backfill()
            if placed is None:
                return
            task, samples = placed
            key, job, arch = task
            if not self._send(task if samples == job.batch_size else (key, replace(job, sample_chunk=samples), arch)):
                return
            self._waiting.remove(task)
            if not backfilled:  # a backfilled one is predicted not to delay the first waiting one
                self._overtaken = 0 if task is window[0] else self._overtaken + 1

    def _backfill(self) -> tuple[tuple[Any, Job, str], int] | None:
        """A waiting candidate after the first that fits now and is predicted to finish before the first of the
        running ones does, with the samples a chunk it fits on; None where none is, or the times are unknown."""
        rate = self._rate() if self._pending else None
        if rate is None:
            return None
        running = [(self._started.get(key), self._mac_count(arch)) for key, _, arch in self._pending.values()]
        if any(started is None or macs is None for started, macs in running):
            return None
        now = time.perf_counter()
        first_free = min(started + rate * macs for started, macs in running)
        for task in itertools.islice(self._waiting, 1, None):
            macs = self._mac_count(task[2])
            if macs is not None and now + rate * macs <= first_free:
                samples = self.placement(task[2])
                if samples is not None:
                    return task, samples
        return None

    def _rate(self) -> float | None:
        """The median seconds a MAC of the candidates timed so far, None before ``BACKFILL_AFTER``."""
        rates = [seconds / macs for arch, seconds in self._timed if (macs := self._mac_count(arch))]
        return statistics.median(rates) if len(rates) >= self.BACKFILL_AFTER else None

    def _mac_count(self, arch: str) -> float | None:
        """``arch``'s multiply-accumulates at batch 1 (its space's ``cost``), None where unknown or not positive."""
        if arch not in self._macs:
            try:
                macs = float(_space(self.job.space).cost(arch)["flops"])
            except Exception:  # noqa: BLE001 - a candidate whose cost is unknown is not backfilled, nor timed
                macs = 0.0
            self._macs[arch] = macs if macs > 0 else None
        return self._macs[arch]

    def placement(self, arch: str) -> int | None:
        """The samples a chunk ``arch`` may start with now beside the candidates running (the batch's size: the
        whole batch), or None where it must wait (see the class docstring; one always may, alone)."""
        if len(self._pending) >= self.workers:
            return None
        whole = self.job.batch_size
        # A candidate resumed from its journal starts on the chunks its blocks were computed in where those fit
        # (on others they differ, and are computed again), else as any other.
        kept = self._kept_chunk(arch)
        memory = self.share()
        if memory is None or (not self._pending and self.peak == 0):  # the first one finishes alone
            return kept or whole
        if self.peak == 0:
            return None
        calibration = self._calibration()
        chunks = sorted({whole, *(max(1, whole // d) for d in _CHUNK_DIVISORS)}, reverse=True)
        tried = chunks if kept is None else [kept, *(c for c in chunks if c != kept)]
        if not self._pending:  # alone, leaving the other workers their share where a chunk does
            room = memory // self.workers
            return next((c for c in tried if self.need(arch, calibration, c) <= room), chunks[-1])
        if (len(self._pending) + 1) * self.peak <= memory:
            return kept or whole
        if len(self._calibrating()) < self.CALIBRATION:
            return None  # a floor and a slope from fewer are no ground to start beside others on
        if not self._said_tight:
            self._said_tight = True
            print(f"vkdnw-fast: a worker peaked at {self.peak / 2**30:.1f} GiB of the {memory / 2**30:.1f} GiB "
                  "this pool may use: a candidate starts beside others where their predicted memory fits, on "
                  "the whole batch or in chunks of it", file=sys.stderr)
        room = memory - sum(self.need(arch, calibration, samples_a_chunk(job))
                            for _, job, arch in self._pending.values())
        return next((c for c in tried if self.need(arch, calibration, c) <= room), None)

    def _kept_chunk(self, arch: str) -> int | None:
        """The samples a chunk ``arch``'s journal was computed with (``journal.keep_sample_chunk``), if any."""
        if self.job.journal is None:
            return None
        kept = kept_sample_chunk(cell_directory(self.job.journal, arch, self.job.seed))
        return kept if kept is not None and kept <= self.job.batch_size else None

    def share(self) -> int | None:
        """The memory the workers may take together now: ``memory``, or less where other processes have
        taken some since (a tenth less than what is available now plus what the workers hold); None where
        neither is known."""
        available = available_memory()
        if available is None:
            return self.memory
        held = sum(resident_memory(pid) for pid in list(self._pool._processes or {}))
        live = int(_MEMORY_SHARE * (available + held))
        return live if self.memory is None else min(self.memory, live)

    def _calibration(self) -> Calibration | None:
        """What ``need`` predicts from: the largest base, of this pool's own candidates where any has finished; the
        floor, the most that the ``CALIBRATION`` seen with the smallest scaled activations took above their
        worker's base (half of those seen, where fewer than ``2 * CALIBRATION`` have been); the slope, the largest
        ratio of what the others took above that floor to their scaled activations; and the largest scaled
        activations seen, with what they took. All of its own candidates where ``2 * CALIBRATION`` have finished.
        None where none of them has an activation estimate."""
        own = self.seen[self._resumed:]
        by_size = sorted(((activation * chunk_share(samples, self.job.batch_size), peak - base)
                          for other, peak, base, samples in self._calibrating()
                          if (activation := self._activation(other))),
                         key=lambda record: record[0])
        if not by_size:
            return None
        ends = max(1, min(self.CALIBRATION, len(by_size) // 2))
        floor = max(took for _, took in by_size[:ends])
        slope = max(max(0, took - floor) / scaled for scaled, took in by_size[ends:] or by_size)
        reach, reach_took = by_size[-1]
        bases = [base for _, _, base, _ in own or self.seen]
        return Calibration(max(bases), floor, slope, reach, reach_took)

    def _calibrating(self) -> list[tuple[str, int, int, int | None]]:
        """The records predictions come from: this pool's own once ``2 * CALIBRATION`` have finished, else all."""
        own = self.seen[self._resumed:]
        return own if len(own) >= 2 * self.CALIBRATION else self.seen

    def need(self, arch: str, calibration: Calibration | None = None, samples: int | None = None) -> int:
        """The peak resident memory ``arch`` is predicted to take a worker to, scored ``samples`` samples a
        chunk (None: the whole batch; see the class docstring); ``calibration``: ``_calibration()``, where the
        caller predicts several."""
        calibration = calibration or self._calibration()
        activation = self._activation(arch)
        share = chunk_share(samples, self.job.batch_size)
        if calibration is None or activation is None:
            return int(self.peak * share)
        return calibration.need(activation * share)

    def _activation(self, arch: str) -> int | None:
        if arch not in self._activations:
            self._activations[arch] = activation_bytes(_space(self.job.space), arch)
        return self._activations[arch]

    def _placed_suspect(self) -> tuple[Any, Job, str]:
        """The first suspect, on the chunk a candidate starting alone takes (``placement``) where that is smaller
        than the one it ran on: a death says a prediction failed, and re-run as it was a suspect may die again."""
        key, job, arch = self._suspects[0]
        samples = self.placement(arch)
        if samples is not None and samples < (samples_a_chunk(job) or job.batch_size):
            self._suspects[0] = (key, replace(job, sample_chunk=samples), arch)
        return self._suspects[0]

    def _send(self, task: tuple[Any, Job, str]) -> bool:
        """Start ``task`` in a worker; False where a worker has died since the last ``wait`` (the executor
        refuses work at once; the next ``wait`` finds the dead one's candidate and rebuilds the pool)."""
        key, job, arch = task
        try:
            future = self._pool.submit(score_job, job, arch)
        except cf.process.BrokenProcessPool:
            return False
        self._started[key] = time.perf_counter()
        self._pending[future] = task
        return True

    def _done(self, task: tuple[Any, Job, str], outcome: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if outcome.get("peak_rss"):
            self.seen.append((task[2], outcome["peak_rss"], outcome.get("base_rss") or 0, samples_a_chunk(task[1])))
            self.peak = max(self.peak, outcome["peak_rss"])
        if outcome.get("ok") and not outcome.get("resumed_blocks"):
            self._timed.append((task[2], outcome["elapsed"]))
        if self._suspects and self._suspects[0] == task:
            self._suspects.popleft()
        self._started.pop(task[0], None)
        self._spent.pop(task[0], None)
        return task[0], {**outcome, "attempts": self._deaths.pop(task[0], 0) + 1}

    def wait(self) -> list[tuple[Any, dict[str, Any]]]:
        done, _ = cf.wait(self._pending, return_when=cf.FIRST_COMPLETED)
        results, lost, broken = [], [], None
        for future in done:
            task = self._pending.pop(future)
            try:
                results.append(self._done(task, future.result()))
            except cf.process.BrokenProcessPool as exc:
                broken = exc
                lost.append(task)
        if broken is not None:
            for future, task in self._pending.items():
                if future.done() and not future.cancelled() and future.exception() is None:  # done before the break
                    results.append(self._done(task, future.result()))
                else:
                    lost.append(task)
            self._pending = {}
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            if len(lost) == 1:  # it ran alone (a suspect, or a candidate the pool held by itself): the culprit
                if not (self._suspects and self._suspects[0] == lost[0]):
                    self._suspects.appendleft(lost[0])
                key = lost[0][0]
                self._deaths[key] = self._deaths.get(key, 0) + 1
                self._spent[key] = self._spent.get(key, 0.0) + time.perf_counter() - self._started[key]
                if self._deaths[key] >= MAX_ATTEMPTS:
                    self._suspects.popleft()
                    results.append((key, _died(self._deaths.pop(key), broken, self._spent.pop(key))))
                else:  # it died alone, most likely of memory: its next attempts take the engine's leanest plans
                    self._suspects[0] = (key, replace(lost[0][1], least_memory=True), lost[0][2])
            else:
                self._suspects.extend(task for task in lost if task not in self._suspects)
        self._dispatch()
        return results

    def cancel(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._waiting.clear()
        self._overtaken = 0
        self._suspects.clear()
        self._deaths.clear()
        self._started.clear()
        self._spent.clear()

    @property
    def running(self) -> int:
        """How many candidates the workers hold."""
        return len(self._pending)

    def drain(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """The outcomes of the candidates running in the workers, as each finishes; the queued ones are
        dropped. A candidate whose worker dies meanwhile is dropped too (it is not charged the death)."""
        self._waiting.clear()
        self._suspects.clear()
        for future in cf.as_completed(list(self._pending)):
            task = self._pending.pop(future)
            try:
                yield self._done(task, future.result())
            except (cf.process.BrokenProcessPool, cf.CancelledError):
                continue

    def close(self, wait: bool = True) -> None:
        """Shut the pool down, after its running candidates finish, or with ``wait=False`` at once:
        the workers are terminated (an executor cannot stop a task it has started)."""
        self.cancel()
        if not wait:
            for process in list((self._pool._processes or {}).values()):  # None once a pool has shut down
                process.terminate()
        self._pool.shutdown(wait=wait, cancel_futures=True)


class RayBackend:
    """Ray tasks on the cluster at ``address`` (or the already-initialised one, or a new local one).

    One task slot per GPU where the cluster has GPUs (scoring on ``cuda`` unless ``job.device``
    says otherwise), else per CPU. A Ray worker process runs one task at a time, so its death (Ray's
    ``WorkerCrashedError``, or its memory monitor's ``OutOfMemoryError``) is its candidate's: the candidate
    is submitted again, its next attempts scoring under ``engine.least_memory_plans`` as the local pool's
    culprits do, so a killed worker loses no evaluation; after ``MAX_ATTEMPTS`` deaths the candidate is
    failed. (The backend retries, not Ray's ``max_retries``, which would re-run the same plan.)
    The workers import ``vkdnw_fast`` (and the scorer's module) by name: on a remote cluster it must
    be installed on every node; a local instance finds it from the driver's working directory.
    """

    name = "ray"

    def __init__(self, job: Job, workers: int | None = None, address: str | None = None):
        import ray

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        elif address is not None:
            raise ValueError(f"Ray is already initialised in this process; cannot connect to {address!r}")
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
        self.slots = gpus or cpus
        if self.slots < 1:
            raise RuntimeError(f"the Ray cluster offers no CPU or GPU slot: {resources}")
        self.workers = self.slots if workers is None else workers
        self._gpus = gpus
        self._task = ray.remote(score_job).options(num_cpus=0 if gpus else 1, num_gpus=1 if gpus else 0,
                                                   max_retries=0, retry_exceptions=False)
        self._pending: dict[Any, tuple[Any, str, Job, int]] = {}  # task -> (key, arch, its job, attempt)
        self.set_job(job)

    def set_job(self, job: Job) -> None:
        """Score later submissions with ``job`` (on ``cuda`` where the cluster has GPUs and the job
        names no device)."""
        self.job = job if job.device is not None or not self._gpus else replace(job, device="cuda")
        self._job_ref = self._ray.put(self.job)

    def submit(self, key: Any, arch: str) -> None:
        self._pending[self._task.remote(self._job_ref, arch, 1)] = (key, arch, self.job, 1)

    def wait(self) -> list[tuple[Any, dict[str, Any]]]:
        results: list[tuple[Any, dict[str, Any]]] = []
        deaths = (self._ray.exceptions.WorkerCrashedError, self._ray.exceptions.OutOfMemoryError)
        while not results and self._pending:  # a retried candidate is not done yet
            ready, _ = self._ray.wait(list(self._pending), num_returns=1)
            for ref in ready:
                key, arch, job, attempt = self._pending.pop(ref)
                try:
                    results.append((key, {**self._ray.get(ref), "attempts": attempt}))
                except deaths as exc:
                    if attempt >= MAX_ATTEMPTS:
                        results.append((key, _died(attempt, exc, None)))  # Ray does not say how long they ran
                    else:  # most such deaths are out of memory: the next attempt takes the engine's leanest plans
                        lean = replace(job, least_memory=True)
                        self._pending[self._task.remote(self._ray.put(lean), arch, 1)] = (key, arch, lean, attempt + 1)
                except self._ray.exceptions.RayError as exc:  # e.g. the task could not be deserialised
                    results.append((key, {"ok": False, "attempts": attempt, "elapsed": None,
                                          "reason": f"{type(exc).__name__}: {exc}"}))
        return results

    def cancel(self) -> None:
        for ref in self._pending:
            self._ray.cancel(ref, force=True)
        self._pending.clear()

    running = 0  # Ray does not say which submitted tasks are running rather than queued

    def drain(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        """Nothing: Ray does not say which submitted tasks are running rather than queued, so all are
        cancelled."""
        self.cancel()
        return iter(())

    def close(self, wait: bool = True) -> None:
        self.cancel()
        if self._owns_ray:
            self._ray.shutdown()


def check_memory_cap(kind: str, workers: int | None, memory: int | None) -> None:
    """A ``memory`` cap is for a local worker pool: one process scores one candidate at a time, and
    Ray places tasks by its own resources."""
    if kind not in ("local", "ray"):
        raise ValueError(f"unknown backend {kind!r}; backends are 'local' and 'ray'")
    if memory is not None and (kind == "ray" or workers in (None, 1)):
        raise ValueError("--memory caps what a local worker pool's processes take together (--workers 2 or more), "
                         f"not {'the ray backend' if kind == 'ray' else 'one process'}")


def make_backend(kind: str, job: Job, workers: int | None = None, address: str | None = None,
                 seen: Sequence[tuple[str, int, int, int | None]] = (), memory: int | None = None,
                 timed: Sequence[tuple[str, float]] = ()):
    """``local`` (in-process for one worker, a process pool otherwise, which starts knowing the memory
    the ``seen`` candidates took and the seconds the ``timed`` ones did, and shares at most ``memory`` bytes,
    ``PoolBackend``) or ``ray``."""
    check_memory_cap(kind, workers, memory)
    if kind == "local":
        workers = 1 if workers is None else workers
        if address is not None:
            raise ValueError("--address is for the ray backend")
        if workers == 1:
            return InProcessBackend(job)
        return PoolBackend(job, workers, memory=memory, seen=seen, timed=timed)
    return RayBackend(job, workers, address)


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (``kill``, a batch scheduler's stop) raised as KeyboardInterrupt for the block, as Ctrl-C
    is: the backend's ``finally`` then closes the worker pool instead of the process dying and leaving its
    workers to score the queued architectures for nobody. Only in the main thread (where handlers live)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def score_all(tasks: list[tuple[str, int]], job_for_seed: Callable[[int], Job],
              on_result: Callable[[str, int, dict[str, Any]], None], *, kind: str = "local",
              workers: int | None = None, address: str | None = None, progress: bool = True, desc: str = "score",
              done: int = 0, seen: Sequence[tuple[str, int, int, int | None]] = (), memory: int | None = None,
              journal: str | Path | None = None, timed: Sequence[tuple[str, float]] = ()) -> None:
    """Score every (architecture, seed) of ``tasks`` on a backend, seed by seed (so an interrupted run
    holds whole seeds first), and hand each finished one to ``on_result(arch, seed, record)`` as it
    arrives: ``record`` is ``{"arch", "seed", "seconds", "peak_rss", "base_rss", "values"}`` (with
    ``"proxy_errors"`` where some proxies failed, ``Job.isolate_failures``; ``"engine"`` ({preset: the
    engine's plan, passes and seconds}) where ``Job.record_engine_runs`` and Fisher proxies were scored;
    ``"resumed_blocks"`` where the scoring took that many blocks of passes from the journal, its ``"seconds"``
    then counting only the rest; ``"least_memory"`` or ``"sample_chunk"`` where the pool scored it so) or
    ``{..., "error"}``. A tqdm bar counts ``done`` (finished before) plus the
    tasks. ``seen``: ``memory_seen`` of earlier records, from which a worker pool starts to decide
    what the memory holds at once, and ``timed``: ``seconds_seen`` of them, from which it times candidates;
    ``memory``: the most
    bytes its workers may take together (``PoolBackend``). ``journal``: a directory where each task under way
    keeps the finished blocks of its passes (``Job.journal``), so that a task cut short resumes where it
    stopped; removed for each task once ``on_result`` has it, and for any other found there (a task kept
    before its blocks were removed). Local backends only: a Ray cluster's workers may not share this file
    system."""
    from tqdm import tqdm

    check_memory_cap(kind, workers, memory)  # also when nothing is left to score
    root = None if journal is None or kind != "local" else Path(journal)
    if root is not None:
        prune(root, keep={cell_directory(root, arch, seed) for arch, seed in tasks})
    if not tasks:
        return

    def job_of(seed: int) -> Job:
        job = job_for_seed(seed)
        return job if root is None else replace(job, journal=str(root))

    seeds = list(dict.fromkeys(seed for _, seed in tasks))
    bar = tqdm(total=done + len(tasks), initial=done, disable=not progress, desc=desc, unit="net", smoothing=0.05)
    runner = make_backend(kind, job_of(seeds[0]), workers, address, seen, memory, timed)

    def finished(arch: str, seed: int, outcome: dict[str, Any]) -> None:
        record = {"arch": arch, "seed": seed, "seconds": outcome["elapsed"]}
        if outcome.get("peak_rss"):  # what scoring it took: a resumed run's pool starts knowing it
            record.update(peak_rss=outcome["peak_rss"], base_rss=outcome.get("base_rss") or 0)
        if outcome["ok"]:
            record.update({k: outcome[k] for k in ("values", "proxy_errors", "engine", "least_memory", "sample_chunk",
                                                  "borrowed", "resumed_blocks")
                           if k in outcome})
        else:
            record["error"] = outcome["reason"]
        on_result(arch, seed, record)
        if root is not None:
            discard(cell_directory(root, arch, seed))
        bar.update()

    stop_now = False
    try:
        try:
            for seed in seeds:
                runner.set_job(job_of(seed))
                for arch in (arch for arch, task_seed in tasks if task_seed == seed):
                    runner.submit((arch, seed), arch)
            remaining = len(tasks)
            while remaining:
                for (arch, seed), outcome in runner.wait():
                    finished(arch, seed, outcome)
                    remaining -= 1
        except KeyboardInterrupt:
            # The workers' candidates under way would run to their end anyway: keep what they give.
            if runner.running:
                under_way = "the candidate" if runner.running == 1 else f"the {runner.running} candidates"
                bar.write(f"interrupted: keeping {under_way} under way as they finish (interrupt again to drop "
                          "them)", file=sys.stderr)
            try:
                for (arch, seed), outcome in runner.drain():
                    finished(arch, seed, outcome)
            except KeyboardInterrupt:
                stop_now = True
            raise
    finally:
        runner.close(wait=not stop_now)
        bar.close()
