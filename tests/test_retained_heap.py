"""The retained heap (``memory.retained_heap``): inside it glibc's malloc serves large tensors from its heap and
keeps what is freed, afterwards it maps them again and the heap's free memory goes back; a user's malloc settings
stand; every scoring entry point runs inside one, and the scores are the same bits as without it. Told from
glibc's own account of its mappings (``mallinfo2``) and the process's resident memory."""
import ctypes
import os

import pytest
import torch
from torch import nn

import vkdnw_fast as vf
from vkdnw_fast import memory, reference
from vkdnw_fast.memory import release_freed_memory, resident_memory, retained_heap
from vkdnw_fast.proxies import compute_proxies
from vkdnw_fast.scoring import score_architecture
from vkdnw_fast.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
MIB = 2**20
BIG = 64 * MIB  # above glibc's largest dynamic mmap threshold (32 MiB): mapped on its own unless retained


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _mallinfo2() -> _Mallinfo2:
    mallinfo2 = memory._libc_function("mallinfo2")
    mallinfo2.restype = _Mallinfo2
    return mallinfo2()


@pytest.fixture(autouse=True)
def glibc(monkeypatch):
    for name in (memory.MALLOC_VARIABLE, *memory._USER_MALLOC_VARIABLES, "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    if memory._libc_function("mallinfo2") is None or memory._retaining_mallopt() is None:
        pytest.skip("not glibc 2.33 or later")


def _mapped_by_a_large_tensor() -> int:
    """How much of a new tensor glibc maps on its own (``hblkhd``: bytes in such blocks), where the tensor is
    larger than all the heap's free chunks together (``fordblks``), so that none of them can hold it."""
    before = _mallinfo2()
    size = before.fordblks + BIG
    tensor = torch.empty(size, dtype=torch.uint8)  # pages untouched: nothing becomes resident
    grown = _mallinfo2().hblkhd - before.hblkhd
    del tensor
    return grown


def test_inside_a_retained_heap_a_large_tensor_comes_from_the_heap_and_outside_from_a_mapping():
    with retained_heap():
        assert _mapped_by_a_large_tensor() == 0
    assert _mapped_by_a_large_tensor() >= BIG


def test_a_nested_block_keeps_the_retention_until_the_outermost_ends():
    with retained_heap():
        with retained_heap():
            pass
        assert memory._RETENTION.depth == 1
        assert _mapped_by_a_large_tensor() == 0
    assert memory._RETENTION.depth == 0
    assert _mapped_by_a_large_tensor() >= BIG


def _freed_in_a_block(size: int) -> tuple[int, int]:
    """(resident memory inside a retained block after ``size`` bytes were written and freed there, after the
    block); a small tensor allocated after them pins the heap's top, so that only a trim gives them back."""
    release_freed_memory()  # what earlier tests left free in the heap does not count
    with retained_heap():
        block = torch.ones(size // 4)
        pinned = torch.ones(1024)
        del block
        inside = resident_memory(os.getpid())
    after = resident_memory(os.getpid())
    assert pinned.sum().item() == 1024
    return inside, after


def test_what_a_block_freed_stays_resident_in_it_and_goes_back_at_its_end_where_it_is_large():
    inside, after = _freed_in_a_block(memory._KEEP_BELOW + 256 * MIB)
    assert inside - after > memory._KEEP_BELOW


def test_less_than_a_gib_freed_stays_for_the_next_scoring():
    inside, after = _freed_in_a_block(256 * MIB)
    assert inside - after < 64 * MIB


@pytest.mark.parametrize("variables", [{"MALLOC_MMAP_MAX_": "65536"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1"},
                                       {memory.MALLOC_VARIABLE: "system"}])
def test_a_users_malloc_settings_or_system_leave_malloc_alone(monkeypatch, variables):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with retained_heap():
        assert memory._RETENTION.depth == 0
        assert _mapped_by_a_large_tensor() >= BIG


def test_an_unknown_malloc_choice_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(memory.MALLOC_VARIABLE, "jemalloc")
    with pytest.raises(ValueError, match="VKDNW_FAST_MALLOC='jemalloc' is not one of"):
        with retained_heap():
            pass


class _Wide(nn.Module):
    """Activations of 16 x 32 x 128 x 128 floats (32 MiB) and larger tangents: mapped blocks unless retained."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_scores_are_the_same_bits_with_and_without_the_retained_heap(monkeypatch, preset):
    def fisher():
        result = vf.score(_Wide(), input_shape=(3, 128, 128), batch_size=16, config=preset, seed=3)
        return result.vkdnw, result.eigenvalues

    retained = fisher()
    monkeypatch.setenv(memory.MALLOC_VARIABLE, "system")
    system = fisher()
    assert retained[0] == system[0]
    assert torch.equal(retained[1], system[1])


def _depths_seen(run) -> list[int]:
    """The retention depth at every forward of an NB201 network that ``run(model)`` scores."""
    seen: list[int] = []
    model = nb201.build_model(ARCH, 10)
    model.register_forward_hook(lambda *_: seen.append(memory._RETENTION.depth))
    run(model)
    return seen


@pytest.mark.parametrize("entry", ["score", "fisher_matrix", "reference.score", "compute_proxies", "score_architecture"])
def test_every_scoring_entry_point_runs_inside_a_retained_heap(entry):
    shape = dict(input_shape=(3, 32, 32), batch_size=8)
    runs = {
        "score": lambda model: vf.score(model, **shape),
        "fisher_matrix": lambda model: vf.fisher_matrix(model, **shape),
        "reference.score": lambda model: reference.score(model, **shape),
        "compute_proxies": lambda model: compute_proxies(model, ["naswot", "jacov"], **shape),
        "score_architecture": lambda model: score_architecture(nb201.NB201Space(), ARCH, ["naswot"], model=model,
                                                               batch_size=8),
    }
    seen = _depths_seen(runs[entry])
    assert seen and min(seen) >= 1
    assert memory._RETENTION.depth == 0


def test_the_readme_quotes_the_recorded_benchmark():
    """The README's figures for the retained heap are those of ``bench/results/retained_heap_cpu.json``: the
    TransNAS-Bench-101 cell's speedup per preset and its higher peak, the NB201 cell's speedups, the same bits."""
    import json
    from pathlib import Path

    root = Path(__file__).parents[1]
    rows = {(row["network"], row["preset"]): row
            for row in json.loads((root / "bench/results/retained_heap_cpu.json").read_text())["results"]}
    assert all(row["same_bits"] for row in rows.values())
    paper, exact = (rows[("tnb-micro-class_scene", preset)] for preset in ("paper", "exact"))
    nb201 = sorted(rows[("nb201-c10", preset)]["system_over_retained"] for preset in ("paper", "exact"))
    peaks = sorted(100 * (row["peak_retained_over_system"] - 1) for row in (paper, exact))
    quoted = (f"that cell scores {paper['system_over_retained']:.1f}× (`paper`) and {exact['system_over_retained']:.1f}× "
              f"(`exact`) faster, an NB201 cell at 32×32 {nb201[0]:.1f}–{nb201[1]:.1f}×, with the same bits and a "
              f"{peaks[0]:.0f}–{peaks[1]:.0f}% higher peak")
    assert quoted in " ".join((root / "README.md").read_text().split())
