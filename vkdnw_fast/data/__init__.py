"""Bundled data files (provenance in ``README.md`` next to this file)."""
from __future__ import annotations

import csv
import functools
import gzip
from pathlib import Path

import numpy as np

NB201_CSV = Path(__file__).with_name("nb201_accuracies.csv.gz")
NB201_SIZE = 15625
NB201_EXTRA_CSV = Path(__file__).with_name("nb201_extra_accuracies.csv.gz")
NASLIB_ZC_CSV = Path(__file__).with_name("nb201_naslib_zc_proxies_725.csv.gz")
NASLIB_ZEN_CSV = Path(__file__).with_name("nb201_naslib_zen.csv.gz")
_TEXT_COLUMNS = ("arch", "dataset")


def _read_columns(path: Path) -> dict[str, np.ndarray]:
    """A bundled CSV as one read-only array per column: text columns str, ``index`` int64, the rest
    float64."""
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        columns = list(zip(*reader))
    table: dict[str, np.ndarray] = {}
    for name, values in zip(header, columns):
        dtype = str if name in _TEXT_COLUMNS else np.int64 if name == "index" else np.float64
        table[name] = np.array(values, dtype=dtype)
        table[name].flags.writeable = False
    return table


@functools.lru_cache(maxsize=1)
def nb201_table() -> dict[str, np.ndarray]:
    """The NAS-Bench-201 ground-truth table, one read-only array per CSV column, row i = NATS index i.

    ``arch`` is an array of str, ``index`` of int64, every other column float64.
    """
    table = _read_columns(NB201_CSV)
    if len(table["index"]) != NB201_SIZE:
        raise ValueError(f"{NB201_CSV} has {len(table['index'])} rows, expected {NB201_SIZE}")
    if not np.array_equal(table["index"], np.arange(NB201_SIZE)):
        raise ValueError(f"{NB201_CSV}: the index column is not 0..{NB201_SIZE - 1} in order")
    return table


@functools.lru_cache(maxsize=1)
def nb201_extra_table() -> dict[str, np.ndarray]:
    """NAS-Bench-201's 12-epoch accuracies and NASLib's 200-epoch validation accuracies of all 15,625
    cells (``README.md``), row i = NATS index i, checked against ``nb201_table``'s cell strings."""
    table = _read_columns(NB201_EXTRA_CSV)
    if not np.array_equal(table["arch"], nb201_table()["arch"]):
        raise ValueError(f"{NB201_EXTRA_CSV}: its cells are not nb201_accuracies.csv.gz's, in the same order")
    return table


@functools.lru_cache(maxsize=1)
def naslib_zc_table() -> dict[str, np.ndarray]:
    """NAS-Bench-Suite-Zero's zero-cost proxy scores on about 725 NB201 cells per dataset (``README.md``):
    columns ``index``, ``arch``, ``dataset`` (``cifar10``, ``cifar100``, ``imagenet16``), one per proxy
    in NASLib's names, ``naslib_val_accuracy``; read-only arrays, one row per (dataset, cell)."""
    return _read_columns(NASLIB_ZC_CSV)


@functools.lru_cache(maxsize=1)
def naslib_zen_table() -> dict[str, np.ndarray]:
    """NAS-Bench-Suite-Zero's Zen scores of all 15,625 NB201 cells (``README.md``): columns ``index``,
    ``arch``, ``zen_cifar10``, ``zen_cifar100``, ``zen_imagenet16``, row i = NATS index i, checked
    against ``nb201_table``'s cell strings."""
    table = _read_columns(NASLIB_ZEN_CSV)
    if not np.array_equal(table["arch"], nb201_table()["arch"]):
        raise ValueError(f"{NASLIB_ZEN_CSV}: its cells are not nb201_accuracies.csv.gz's, in the same order")
    return table
