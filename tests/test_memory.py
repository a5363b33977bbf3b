"""The memory a worker pool may share: the system's MemAvailable, or less where a control group (a Slurm
job, a container) caps the process, read from fake /proc and /sys trees laid out as the kernel lays them;
and the memory a worker gives back between candidates."""
import os

import numpy as np
import pytest

from vkdnw_fast.memory import (_malloc_trim, available_memory, forget_tracebacks, parse_bytes, release_freed_memory,
                               resident_memory)

GIB = 2**30


def tree(root, files):
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def meminfo(available):
    return f"MemTotal:       99999999 kB\nMemAvailable:   {available // 1024} kB\nMemFree: 1 kB\n"


def test_a_cgroup_v2_limit_on_a_parent_binds_less_its_working_set(tmp_path):
    # A Slurm job's group caps 8 GiB and holds 5 GiB, 1 GiB of it inactive page cache; the step below it
    # has no limit of its own: 8 - (5 - 1) = 4 GiB are left, not the node's 16.
    root = tree(tmp_path, {
        "proc/meminfo": meminfo(16 * GIB),
        "proc/self/cgroup": "0::/slurm/job1/step0\n",
        "sys/fs/cgroup/memory.max": "max\n",
        "sys/fs/cgroup/slurm/memory.max": "max\n",
        "sys/fs/cgroup/slurm/job1/memory.max": f"{8 * GIB}\n",
        "sys/fs/cgroup/slurm/job1/memory.current": f"{5 * GIB}\n",
        "sys/fs/cgroup/slurm/job1/memory.stat": f"anon {4 * GIB}\nfile {GIB}\ninactive_file {GIB}\nactive_file 0\n",
        "sys/fs/cgroup/slurm/job1/step0/memory.max": "max\n",
    })
    assert available_memory(root) == 4 * GIB


def test_a_cgroup_v1_memory_limit_binds_and_unlimited_groups_do_not(tmp_path):
    root = tree(tmp_path, {
        "proc/meminfo": meminfo(20 * GIB),
        "proc/self/cgroup": "5:cpuset:/\n4:memory:/docker/abc\n0::/\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",  # the kernel's "no limit"
        "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": f"{6 * GIB}\n",
        "sys/fs/cgroup/memory/docker/abc/memory.usage_in_bytes": f"{3 * GIB}\n",
        "sys/fs/cgroup/memory/docker/abc/memory.stat": f"cache 1\ninactive_file 7\ntotal_inactive_file {GIB // 2}\n",
    })
    assert available_memory(root) == 6 * GIB - (3 * GIB - GIB // 2)


def test_a_container_sees_its_group_as_the_root_and_the_system_binds_where_it_has_less(tmp_path):
    files = {
        "proc/self/cgroup": "0::/\n",  # a cgroup namespace: the group is the mount itself
        "sys/fs/cgroup/memory.max": f"{2 * GIB}\n",
        "sys/fs/cgroup/memory.current": f"{GIB}\n",
        "sys/fs/cgroup/memory.stat": "inactive_file 0\n",
    }
    assert available_memory(tree(tmp_path / "roomy", {"proc/meminfo": meminfo(16 * GIB), **files})) == GIB
    assert available_memory(tree(tmp_path / "tight", {"proc/meminfo": meminfo(GIB // 4), **files})) == GIB // 4


def test_without_proc_the_memory_cannot_be_told(tmp_path):
    assert available_memory(tmp_path) is None
    assert available_memory(tree(tmp_path / "bare", {"proc/meminfo": meminfo(3 * GIB)})) == 3 * GIB


def test_freed_heap_memory_goes_back_to_the_system():
    """glibc keeps freed heap chunks: 400 MB of 64 KiB buffers (below its mmap threshold: heap), all but
    the last freed (which pins the heap's top, so free() cannot shrink it), stay resident until released."""
    if _malloc_trim() is None:
        pytest.skip("no malloc_trim: not glibc")
    pid = os.getpid()
    buffers = [bytearray(b"\1" * 65536) for _ in range(6400)]
    pinned = buffers[-1]
    del buffers
    kept = resident_memory(pid)
    release_freed_memory()
    assert kept - resident_memory(pid) > 300 * 2**20
    assert pinned[0] == 1


def test_a_worker_starts_its_next_candidate_without_the_last_ones_freed_memory():
    from vkdnw_fast.backends import Job, score_job
    from vkdnw_fast.spaces import nb201

    if _malloc_trim() is None:
        pytest.skip("no malloc_trim: not glibc")
    job = Job({"name": "nb201", "dataset": "cifar10"}, ("heap",), ("paper",), 0, None, heap_scorer)
    first, second = (score_job(job, nb201.NB201Space().sample(np.random.default_rng(seed))) for seed in (0, 1))
    assert first["ok"] and second["ok"]
    assert first["peak_rss"] - first["base_rss"] > 300 * 2**20  # the scorer's 400 MB were resident
    assert second["base_rss"] < first["peak_rss"] - 300 * 2**20  # and were given back before the next


def test_memory_held_in_reference_cycles_is_collected_before_the_next_candidate():
    """A scorer's garbage in a reference cycle is freed only by the cyclic collector, which runs when
    allocations say so, not when a candidate ends; the worker runs it where it still holds that much."""
    import gc

    from vkdnw_fast.backends import Job, score_job
    from vkdnw_fast.spaces import nb201

    if _malloc_trim() is None:
        pytest.skip("no malloc_trim: not glibc")
    job = Job({"name": "nb201", "dataset": "cifar10"}, ("cycle",), ("paper",), 0, None, cycle_scorer)
    enabled = gc.isenabled()
    gc.disable()  # the collector does not happen to run in between
    try:
        first, second = (score_job(job, nb201.NB201Space().sample(np.random.default_rng(seed))) for seed in (0, 1))
    finally:
        if enabled:
            gc.enable()
    assert first["ok"] and second["ok"]
    assert first["peak_rss"] - first["base_rss"] > 300 * 2**20
    assert second["base_rss"] < first["peak_rss"] - 300 * 2**20


def test_forgetting_tracebacks_drops_those_of_the_causes_and_contexts_too():
    def fails(message):
        raise ValueError(message)

    try:
        try:
            fails("inner")
        except ValueError as inner:
            try:
                fails("while handling")
            except ValueError:
                raise RuntimeError("outer") from inner
    except RuntimeError as outer:
        error = outer
    chain = [error, error.__cause__, error.__context__]
    assert all(e is not None and e.__traceback__ is not None for e in chain)
    forget_tracebacks(error)
    assert [e.__traceback__ for e in chain] == [None, None, None]
    assert str(error) == "outer" and str(error.__cause__) == "inner"


_SURVIVORS = []  # what a scorer leaves allocated (a library's cache): it pins the heap's top above the freed


def heap_scorer(space, arch, proxies, **kwargs):
    buffers = [bytearray(b"\1" * 65536) for _ in range(6400)]
    _SURVIVORS.append(buffers[-1])  # the last allocated: at the heap's top
    return {"heap": float(len(buffers))}


def cycle_scorer(space, arch, proxies, **kwargs):
    buffer = bytearray(400 * 2**20)
    buffer[::4096] = b"\1" * (len(buffer) // 4096)  # every page written, so resident
    garbage = {"buffer": buffer}
    garbage["self"] = garbage  # unreachable once returned, yet not freed by reference counting
    return {"cycle": 1.0}


def test_memory_sizes_read_binary_units_bare_or_with_ib_and_decimal_units_with_b():
    assert parse_bytes("16GiB") == parse_bytes("16G") == parse_bytes(" 16 g ") == 16 * GIB
    assert parse_bytes("16GB") == 16 * 10**9
    assert parse_bytes("512MiB") == parse_bytes("0.5G") == GIB // 2
    assert parse_bytes("1.5T") == 3 * 2**39
    assert parse_bytes("17179869184") == parse_bytes("17179869184B") == 16 * GIB
    for bad in ("", "G", "16Q", "-1G", "1e9", "16 GiB of it"):
        with pytest.raises(ValueError, match="is not a memory size; write e.g. 16GiB"):
            parse_bytes(bad)
    with pytest.raises(ValueError, match="must be more than 0 bytes"):
        parse_bytes("0.0G")


def test_the_core_api_imports_without_posix_modules():
    """``resource`` and ``fcntl`` are POSIX's (not Windows'): scoring a model must not need them."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['resource'] = None; sys.modules['fcntl'] = None\n"
            "import torch, vkdnw_fast as vf, vkdnw_fast.reference, vkdnw_fast.proxies\n"
            "from vkdnw_fast.memory import peak_rss\n"
            "print(peak_rss() > 0, vf.score(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), "
            "torch.nn.Linear(64, 3)), input_shape=(3, 6, 6), batch_size=4).vkdnw >= 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_peak_memory_is_0_where_neither_proc_nor_resource_tells(monkeypatch):
    import sys

    from vkdnw_fast import memory

    monkeypatch.setattr(memory, "_proc_bytes", lambda path, field: None)
    monkeypatch.setitem(sys.modules, "resource", None)
    assert memory.peak_rss() == 0
