"""What the resumable runs (the evaluations, the searches) share: a run directory keeps the
configuration it was started with, and resuming it with another one is refused, naming every field
that differs, before anything is computed under the wrong settings; and one process at a time writes
it (``DirectoryLock``)."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")

LOCK_NAME = "run.lock"


class DirectoryInUseError(RuntimeError):
    """Another process is writing the run directory."""


class DirectoryLock:
    """An exclusive ``fcntl`` lock on ``directory/run.lock`` (the directory created if missing), held
    until ``release`` or the end of the process (even by SIGKILL, so no stale lock outlives a crash).
    Two processes appending to one run would store results twice or interleave their lines; the
    second is refused, naming the first's pid."""

    def __init__(self, directory: str | Path, what: str, error: type[Exception] = DirectoryInUseError):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.file = open(self.directory / LOCK_NAME, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.seek(0)
            holder = self.file.read().strip() or "?"
            self.file.close()
            raise error(f"{self.directory} is being written by another {what} (pid {holder}): wait for it to end "
                        "(the same command then resumes), or use another --out directory") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()

    def __enter__(self) -> "DirectoryLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def config_from_saved(cls: type[C], saved: Mapping[str, Any]) -> C:
    """The configuration dataclass ``cls`` from its saved JSON form (lists become tuples); a field
    missing from ``saved`` takes its default, one ``cls`` does not know is an error naming it."""
    unknown = sorted(set(saved) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s) {unknown} in a saved run; was it made by a newer version?")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


def check_saved_config(directory: str | Path, saved: Mapping[str, Any], requested: Mapping[str, Any], *,
                       ignore: Iterable[str] = (), error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming each field (a nested one as ``space.dataset``) in which the
    configuration saved in ``directory`` differs from the requested one, ``ignore``d fields aside.

    Pass both normalised the same way (e.g. read back into the configuration class and written out
    again), so that a field the saved one predates compares as its default. Values are compared as
    JSON data (a tuple equals the list it is saved as)."""
    ignored = set(ignore)
    theirs, mine = _flatten(_as_json(saved)), _flatten(_as_json(requested))
    differing = [f"{key} (stored {theirs.get(key)!r}, requested {mine.get(key)!r})"
                 for key in sorted(set(theirs) | set(mine))
                 if key.split(".")[0] not in ignored and theirs.get(key) != mine.get(key)]
    if differing:
        raise error(f"{directory} holds a run with a different configuration: " + "; ".join(differing)
                    + ". Use another --out directory, or the stored settings.")


def _as_json(config: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(config))


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
