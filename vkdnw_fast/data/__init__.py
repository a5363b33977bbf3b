"""Bundled data files (provenance in ``README.md`` next to this file)."""
from __future__ import annotations

import csv
import functools
import gzip
from pathlib import Path

import numpy as np

NB201_CSV = Path(__file__).with_name("nb201_accuracies.csv.gz")
NB201_SIZE = 15625


@functools.lru_cache(maxsize=1)
def nb201_table() -> dict[str, np.ndarray]:
    """The NAS-Bench-201 ground-truth table, one read-only array per CSV column, row i = NATS index i.

    ``arch`` is an array of str, ``index`` of int64, every other column float64.
    """
    with gzip.open(NB201_CSV, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    if len(rows) != NB201_SIZE:
        raise ValueError(f"{NB201_CSV} has {len(rows)} rows, expected {NB201_SIZE}")
    columns = list(zip(*rows))
    table: dict[str, np.ndarray] = {}
    for name, values in zip(header, columns):
        if name == "arch":
            table[name] = np.array(values, dtype=str)
        elif name == "index":
            table[name] = np.array(values, dtype=np.int64)
        else:
            table[name] = np.array(values, dtype=np.float64)
        table[name].flags.writeable = False
    if not np.array_equal(table["index"], np.arange(NB201_SIZE)):
        raise ValueError(f"{NB201_CSV}: the index column is not 0..{NB201_SIZE - 1} in order")
    return table
