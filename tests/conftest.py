"""Fixtures shared by the test modules."""
import pytest


@pytest.fixture
def started_pools(monkeypatch):
    """What each worker pool (``backends.PoolBackend``) started from now on knew at its start: its memory
    share, the (arch, peak, base, samples a chunk) records it was given, their largest peak, and the (arch,
    seconds) it was given to time candidates by."""
    from vkdnw_fast import backends

    started = []
    real_init = backends.PoolBackend.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        started.append({"memory": self.memory, "seen": sorted(self.seen), "peak": self.peak,
                        "timed": sorted(self._timed)})
    monkeypatch.setattr(backends.PoolBackend, "__init__", init)
    return started
