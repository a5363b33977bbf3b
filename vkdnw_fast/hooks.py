"""Temporary module hooks, removed however the block they serve ends."""
from __future__ import annotations

import contextlib
from typing import Iterable

from torch.utils.hooks import RemovableHandle


@contextlib.contextmanager
def removing(handles: Iterable[RemovableHandle]):
    """Run the block, then remove every hook in ``handles`` (also when it raises)."""
    handles = list(handles)
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()
