"""What the resumable runs (the NB201 evaluation, the search) share: a run directory keeps the
configuration it was started with, and resuming it with another one is refused, naming every field
that differs, before anything is computed under the wrong settings."""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

C = TypeVar("C")


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
