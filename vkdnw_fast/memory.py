"""What memory this process holds and what the system can still give it, as Linux reports them (``/proc``,
and the control groups a batch scheduler or a container caps a job's memory with; elsewhere what ``resource``
tells, or nothing), giving back what the process no longer uses, keeping what torch frees for its next tensors
while a network is scored (``retained_heap``), and reading a size a user gives (``--memory``)."""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import re
import sys
import threading
from pathlib import Path
from typing import Iterator

# A cgroup v1 limit at or above this is "no limit" (the kernel reports 2**63 rounded down to a page).
_UNLIMITED = 2**62
# More than a candidate leaves in caches once its memory is released (oneDNN's primitives, the spaces' memos:
# tens of MiB measured): what is left above this is garbage only the cyclic collector frees.
_CACHED = 256 * 2**20


def _proc_bytes(path: str | Path, field: str) -> int | None:
    """A ``field: N kB`` line of a Linux /proc file, in bytes; None where there is none."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> None:
    """Start this process's peak resident memory afresh (Linux: ``/proc/self/clear_refs``), so that
    ``peak_rss`` tells what one candidate needed; elsewhere it keeps counting from the start."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def peak_rss() -> int:
    """This process's peak resident memory in bytes, since ``reset_peak_rss`` (Linux ``VmHWM``), or
    else since it started (``ru_maxrss``, an upper bound), or 0 where neither can be read (Windows)."""
    peak = _proc_bytes("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak
    try:
        import resource  # POSIX only
    except ImportError:
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes there, kilobytes on Linux


def release_freed_memory(held_before: int | None = None) -> None:
    """Hand the memory this process has freed back to the system. glibc keeps freed heap pages (a scored
    network's tensors) for later use, so without this a worker holds the peak of the largest network it
    has scored for good: TransNAS macro workers held up to 17.8 GiB before a candidate that took 5 more,
    and the pool, which predicts from what workers hold, ran one at a time. Elsewhere (no ``malloc_trim``)
    a no-op. ``held_before``: the resident memory before the work whose memory is released; where more
    than caches keep is still held after the release, unreachable reference cycles hold it (a library's, a
    user's model's) and the cyclic collector runs, then the release again. Not always: ``gc.collect()``
    costs 0.1 s in a process with torch loaded, and CI took twice as long with it after every candidate."""
    trim = _malloc_trim()
    if trim is None:
        return
    trim(0)
    if held_before is not None and resident_memory(os.getpid()) > held_before + _CACHED:
        gc.collect()
        trim(0)


_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_bytes(text: str) -> int:
    """A memory size: '16GiB' or '16G' (binary, as ``docker --memory`` reads 'g'), '16GB' (decimal),
    '512MiB', '1.5T', '17179869184' (bytes). ValueError, naming the text, for anything else or for 0."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else None
    if unit not in _UNITS:
        raise ValueError(f"{text!r} is not a memory size; write e.g. 16GiB (or 16G), 16GB, 512MiB or a number of bytes")
    size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"{text!r}: a memory size must be more than 0 bytes")
    return size


def forget_tracebacks(error: BaseException) -> None:
    """Drop the tracebacks of ``error`` and of the exceptions it chains, once it has been reported. Their
    frames, and the callers' frames these link back to, hold what the failed work used (a proxy context, its
    networks and batches); where an exception is kept beyond its handling (a shared forward's recorded error,
    raised again by each proxy that reads it), it closes a reference cycle through them that only the cyclic
    collector frees, candidates later (a TransNAS worker held 18.5 GiB so)."""
    chained, seen = [error], set()
    while chained:
        exc = chained.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        chained += [exc.__cause__, exc.__context__]


@functools.cache
def _libc_function(name: str):
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except OSError:
        return None


def _malloc_trim():
    return _libc_function("malloc_trim")


# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4
# Inside a retained heap: no block gets a mapping of its own, and free() never shrinks the heap.
_RETAINED = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1))
# After it: where glibc's own dynamic thresholds settle (64-bit) once a block of 32 MiB or more has been freed,
# which torch does at its first large tensor: a mapping of its own above 32 MiB, trimming above twice that.
# mallopt cannot read the settings it replaces, and any call to it stops glibc's adjusting them.
_SETTLED = ((_M_MMAP_THRESHOLD, 32 * 2**20), (_M_TRIM_THRESHOLD, 64 * 2**20), (_M_MMAP_MAX, 65536))
# What a retained heap may leave resident beyond what the process held when it began, for the next scoring to
# reuse: about what glibc keeps by itself of blocks under its 32 MiB threshold (an NB201 network's scoring leaves
# 420 MiB free), where giving it back after each network and faulting it in again made scoring NB201 networks
# with the aggregate's proxies 7% slower (median of 4 runs of 12 networks); a large network's activations go back.
_KEEP_BELOW = 2**30
# A user's own settings of glibc's malloc stand: a retained heap then leaves it alone.
_USER_MALLOC_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
MALLOC_VARIABLE = "VKDNW_FAST_MALLOC"
_MALLOC_CHOICES = ("retained", "system")


class _Retention:
    """How many retained-heap blocks are open in this process: mallopt's settings are the process's, so
    nested and concurrent blocks share one retention, set by the first to open and undone by the last."""

    def __init__(self):
        self.lock = threading.Lock()
        self.depth = 0
        self.resident_before = 0  # the process's resident memory when the first block opened (0: unknown)


_RETENTION = _Retention()


def _retaining_mallopt():
    """glibc's ``mallopt`` where a retained heap may use it, else None: another C library, a user's
    malloc settings (``MALLOC_*_`` variables, ``glibc.malloc`` tunables), or ``VKDNW_FAST_MALLOC=system``."""
    choice = os.environ.get(MALLOC_VARIABLE, "retained")
    if choice not in _MALLOC_CHOICES:
        raise ValueError(f"{MALLOC_VARIABLE}={choice!r} is not one of {_MALLOC_CHOICES}")
    if (choice == "system" or any(name in os.environ for name in _USER_MALLOC_VARIABLES)
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", "")):
        return None
    if _libc_function("gnu_get_libc_version") is None or _malloc_trim() is None:
        return None
    return _libc_function("mallopt")


@contextlib.contextmanager
def retained_heap() -> Iterator[None]:
    """Inside the block glibc's malloc keeps what torch frees for its next tensors. By default it gives
    every block above 32 MiB a mapping of its own and unmaps it when freed, so each large activation,
    gradient or tangent of a network at 256x256 came from fresh pages the kernel faults in and zeroes:
    scoring a TransNAS-Bench-101 cell spent more time in the kernel than in arithmetic, and ran 2.3-2.5x
    faster retained (bench/results/retained_heap_cpu.json), with the same bits. The price is a higher peak
    (a heap reuses less tightly than fresh mappings: +19-27% on that cell). When the outermost block ends,
    malloc goes back to its settled thresholds (``_SETTLED``), and the heap's free memory to the system where
    the process then holds over 1 GiB more than when the block began (``_KEEP_BELOW``: less is left for the
    next scoring to reuse, as glibc would keep it). Nested blocks and threads share one retention; elsewhere
    than glibc, with a user's malloc settings, or with ``VKDNW_FAST_MALLOC=system``, a no-op. Used by every
    scoring entry point (as a decorator too). It serves the main thread (glibc's main arena, which the
    scoring runs in): other threads' arenas, and the main thread's after a malloc of it failed (glibc then
    moves it to another arena), still map blocks larger than their 64 MiB heaps."""
    mallopt = _retaining_mallopt()
    if mallopt is None:
        yield
        return
    with _RETENTION.lock:
        _RETENTION.depth += 1
        if _RETENTION.depth == 1:
            _RETENTION.resident_before = resident_memory(os.getpid())
            for parameter, value in _RETAINED:
                mallopt(parameter, value)
    try:
        yield
    finally:
        with _RETENTION.lock:
            _RETENTION.depth -= 1
            if _RETENTION.depth == 0:
                for parameter, value in _SETTLED:
                    mallopt(parameter, value)
                before = _RETENTION.resident_before
                if not before or resident_memory(os.getpid()) - before > _KEEP_BELOW:
                    _malloc_trim()(0)


def resident_memory(pid: int) -> int:
    """The resident memory of process ``pid`` (Linux ``VmRSS``), in bytes; 0 where it cannot tell (a
    process that has just exited)."""
    return _proc_bytes(f"/proc/{pid}/status", "VmRSS") or 0


def available_memory(root: str | Path = "/") -> int | None:
    """The memory this process can still be given without swapping or a kill, in bytes: the system's
    ``MemAvailable``, or less where a control group caps this process and those beside it (a Slurm job,
    a container): its limit less what the group holds, page cache it can drop aside. None where neither
    can be told. ``root``: where ``/proc`` and ``/sys`` are read from (a test's tree)."""
    root = Path(root)
    room = [_proc_bytes(root / "proc/meminfo", "MemAvailable"), *_cgroup_rooms(root)]
    known = [r for r in room if r is not None]
    return min(known) if known else None


def _cgroup_rooms(root: Path) -> list[int]:
    """Limit less working set of every memory-limited control group this process is in, itself and
    its ancestors (a limit set on a parent binds its children), for cgroup v2 and v1 alike."""
    try:
        membership = (root / "proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    rooms = []
    for line in membership:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one unified hierarchy
            mount, files = root / "sys/fs/cgroup", ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            mount, files = root / "sys/fs/cgroup/memory", (
                "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        # Inside a container the group's own path may not exist under the mount (a cgroup namespace shows
        # the group as the root): the mount itself is then the group.
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts) + 1):
            room = _cgroup_room(mount.joinpath(*parts[:depth]), *files)
            if room is not None:
                rooms.append(room)
    return rooms


def _cgroup_room(group: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    """What a control group may still take: its limit less its usage less the inactive file cache the
    kernel reclaims before it kills (the working set, as container runtimes count it); None where the
    group has no limit or cannot be read."""
    try:
        limit_text = (group / limit_file).read_text().strip()
        if limit_text == "max":
            return None
        limit = int(limit_text)
        if limit >= _UNLIMITED:
            return None
        usage = int((group / usage_file).read_text())
        inactive = 0
        for line in (group / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
        return max(0, limit - max(0, usage - inactive))
    except (OSError, ValueError):
        return None
