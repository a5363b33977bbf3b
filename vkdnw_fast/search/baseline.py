"""The random-search baseline of a search: the same budget of architectures drawn uniformly without
replacement, scored like the search's candidates, the best by the same aggregate."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import spaces
from ..journal import cell_directory, discard
from ..metrics import aggregate
from .config import SearchConfig
from .driver import check_job, check_outcome, stored_outcome
from .store import SearchError, Store


@dataclass
class BaselineResult:
    best_arch: str
    best_values: dict[str, float]
    archs: list[str]
    failed: int


def random_search(config: SearchConfig, out: str | Path, backend) -> BaselineResult:
    """Random search with the same budget: ``config.iterations`` distinct architectures drawn
    uniformly without replacement from the (finite) space with ``default_rng(config.seed)``, each
    scored like a search candidate; the best by the aggregated score over them (the first among
    equals) is its answer. Scores the search already has are reused; results go to the record's
    ``baseline`` table, so a rerun scores nothing twice."""
    space = spaces.from_spec(config.space)
    try:
        members = list(space.enumerate())
    except NotImplementedError as exc:
        raise SearchError(f"random search needs a finite space: {exc}") from None
    if config.iterations > len(members):
        raise SearchError(f"random search of {config.iterations} architectures in a space of {len(members)}")
    picks = np.random.default_rng(config.seed).choice(len(members), size=config.iterations, replace=False)
    archs = [space.validate(members[i]) for i in picks]
    check_job(backend.job, config)
    with Store(out) as store:
        store.start_or_resume(config)
        done, scored = store.baseline(), store.values_by_arch()
        outcomes: dict[int, dict[str, Any]] = {}
        for idx, arch in enumerate(archs):
            if idx in done:
                if done[idx]["arch"] != arch:
                    raise SearchError(f"{out}: stored random-search architecture {idx} is {done[idx]['arch']}, "
                                      f"drawn now {arch}")
                outcomes[idx] = stored_outcome(done[idx])
            elif arch in scored:
                outcomes[idx] = {"ok": True, "values": scored[arch]}
                store.add_baseline(idx, arch, outcomes[idx])
            else:
                backend.submit(idx, arch)
        store.commit()
        journal = backend.job.journal  # where the scorings under way keep their passes, if anywhere
        while len(outcomes) < len(archs):
            arrived = []
            for idx, outcome in backend.wait():
                outcome = outcomes[idx] = check_outcome(outcome, config.proxies)
                store.add_baseline(idx, arch=archs[idx], outcome=outcome)
                arrived.append(archs[idx])
            store.commit()
            for arch in arrived if journal is not None else ():
                discard(cell_directory(journal, arch, backend.job.seed))
        if journal is not None:  # with what a crash between a commit and a removal left
            discard(journal)
    good = [i for i in range(len(archs)) if outcomes[i]["ok"]]
    if not good:
        raise SearchError("random search: no architecture could be scored")
    table = {p: np.array([outcomes[i]["values"][p] for i in good]) for p in config.proxies}
    best = good[int(np.argmax(aggregate(table, config.proxies)))]
    return BaselineResult(best_arch=archs[best], best_values={p: outcomes[best]["values"][p] for p in config.proxies},
                          archs=archs, failed=len(archs) - len(good))
