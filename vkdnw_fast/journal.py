"""The engine's finished blocks of passes kept on disk while a network is scored, so that a scoring cut
short after hours (a TransNAS-Bench-101 macro layout takes up to three on one CPU core) resumes at its first
missing block, with the same bits, instead of from the start.

``journaled(directory)`` turns it on for the scorings inside it (``evaluate`` and ``search`` give each
(architecture, seed) under way a directory of its own, ``cell_directory``, removed once its result is
recorded). Each blocked
computation of the engine (``engine._in_blocks``: the backward passes of ``rows`` and ``features``, the
tangents of ``forward``) takes the next ``PassLog`` in program order; a log whose fingerprint (the
computation's inputs: the network's logits, its cotangents or weights) differs from the one on disk holds
another computation's blocks, which are dropped rather than used."""
from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import shutil
import warnings
from pathlib import Path
from typing import Iterator

import torch

_ACTIVE: contextvars.ContextVar["Journal | None"] = contextvars.ContextVar("vkdnw_journal", default=None)


def digest(*parts: torch.Tensor | str) -> str:
    """A fingerprint of tensors (their dtype, shape and bytes) and strings."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


class PassLog:
    """The blocks of one blocked computation: ``fingerprint`` and ``<start>-<size>.pt`` files in a directory."""

    def __init__(self, directory: Path, fingerprint: str):
        self.directory = directory
        self.fingerprint = fingerprint
        self.writable = True

    def _blocks(self) -> list[tuple[int, int, Path]]:
        found = []
        for path in self.directory.glob("*.pt"):
            start, _, size = path.stem.partition("-")
            if start.isdigit() and size.isdigit():
                found.append((int(start), int(size), path))
        return sorted(found)

    def finished(self, device: torch.device | str) -> list[tuple[int, int, torch.Tensor]]:
        """(start, size, block) of the blocks saved from the computation's start on, contiguous; what follows
        a gap or a block that cannot be read is dropped, and everything if the directory holds another
        computation's blocks."""
        try:
            same = (self.directory / "fingerprint").read_text() == self.fingerprint
        except OSError:  # none yet, or unreadable
            same = False
        if not same:
            shutil.rmtree(self.directory, ignore_errors=True)
            return []
        found, blocks, position = self._blocks(), [], 0
        for start, size, path in found:
            if start != position:
                break
            try:
                block = torch.load(path, map_location=device, weights_only=True)
            except Exception:  # a file no writer finished (they are renamed into place) or a damaged disk
                break
            if not isinstance(block, torch.Tensor) or block.shape[0] != size:
                break
            blocks.append((start, size, block))
            position = start + size
        for start, _, path in found:
            if start >= position:
                path.unlink(missing_ok=True)
        return blocks

    def save(self, start: int, size: int, block: torch.Tensor) -> None:
        """Keep a finished block (its first dimension the block's size); each file appears whole or not at all.
        Where the directory cannot be written (a full disk, say) the scoring goes on without a journal: a
        warning says so once."""
        if not self.writable:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            stamp = self.directory / "fingerprint"
            if not stamp.exists():
                _write_atomically(stamp, lambda path: path.write_text(self.fingerprint))
            _write_atomically(self.directory / f"{start}-{size}.pt",
                              lambda path: torch.save(block.detach().cpu(), path))
        except OSError as error:
            self.writable = False
            warnings.warn(f"the journal {self.directory} cannot keep this scoring's finished passes ({error}); "
                          "it goes on without them", RuntimeWarning, stacklevel=2)


def _write_atomically(path: Path, write) -> None:
    partial = path.with_name(path.name + ".partial")
    write(partial)
    os.replace(partial, path)


class Journal:
    """The blocked computations of the scorings inside ``journaled``, numbered in the order they run."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._calls = 0
        self.taken = 0  # blocks taken from the directory instead of run

    def next_log(self, fingerprint: str) -> PassLog:
        log = PassLog(self.directory / f"pass{self._calls}", fingerprint)
        self._calls += 1
        return log


def active() -> Journal | None:
    """The journal of the scoring under way, if any."""
    return _ACTIVE.get()


@contextlib.contextmanager
def journaled(directory: str | Path | None) -> Iterator[Journal | None]:
    """Keep the finished blocks of the scorings inside in ``directory`` and resume from those found there
    (``None``: no journal)."""
    if directory is None:
        yield None
        return
    journal = Journal(directory)
    token = _ACTIVE.set(journal)
    try:
        yield journal
    finally:
        _ACTIVE.reset(token)


def cell_directory(root: str | Path, arch: str, seed: int) -> Path:
    """The journal directory of one (architecture, seed) under ``root`` (architecture strings hold
    characters, such as NAS-Bench-201's ``|``, that a file name should not)."""
    return Path(root) / f"{hashlib.sha256(arch.encode()).hexdigest()[:20]}-{seed}"


def keep_sample_chunk(directory: str | Path, samples: int) -> None:
    """Note in a scoring's journal directory the samples a chunk its blocks are computed with (the whole batch:
    its size), so that a resumed scoring can be started on the same chunks: another chunk's blocks differ, and
    are computed again. Where the directory cannot be written the note is left out (the journal says why)."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(directory / "sample_chunk", lambda path: path.write_text(str(samples)))
    except OSError:
        pass


def kept_sample_chunk(directory: str | Path) -> int | None:
    """The samples a chunk noted by ``keep_sample_chunk``, where the directory keeps a block; else None."""
    directory = Path(directory)
    try:
        text = (directory / "sample_chunk").read_text()
    except OSError:
        return None
    if not (text.isdigit() and int(text) > 0 and any(directory.glob("pass*/*.pt"))):
        return None
    return int(text)


def discard(directory: str | Path) -> None:
    """Remove a journal directory once its scoring's result is kept elsewhere."""
    shutil.rmtree(directory, ignore_errors=True)


def prune(root: str | Path, keep: set[Path]) -> None:
    """Remove the journal directories under ``root`` but those in ``keep``."""
    root = Path(root)
    if root.is_dir():
        for directory in root.iterdir():
            if directory not in keep:
                discard(directory)
