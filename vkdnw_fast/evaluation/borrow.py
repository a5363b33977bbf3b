"""Scores an evaluation takes from another run instead of computing them again (``evaluate --scores-from``):
adding VKDNW to a sample whose label-free proxies are scored already costs VKDNW alone."""
from __future__ import annotations

from pathlib import Path

from ..config import PRESETS
from ..scoring import FISHER_PROXIES, column
from .spec import EvaluationSpec
from .store import lending_spec, load_records


def _preparation(preset: str) -> tuple:
    """What a proxy other than the Fisher ones depends on in a preset: the network's initialisation and
    memory format (``scoring.score_architecture`` computes such proxies once, on the first preset's)."""
    return PRESETS[preset].init, PRESETS[preset].memory_format


def _column_pairs(spec: EvaluationSpec, source: EvaluationSpec) -> dict[str, list[tuple[str, str]]]:
    """{proxy: [(the source's column, the spec's column)]} of the spec's proxies that the source scored
    the same way: a Fisher proxy at every preset of the spec, another on the same preparation."""
    pairs = {}
    for proxy in spec.proxies:
        if proxy not in source.proxies:
            continue
        if proxy in FISHER_PROXIES:
            if set(spec.presets) <= set(source.presets):
                pairs[proxy] = [(column(proxy, preset, source.presets), column(proxy, preset, spec.presets))
                                for preset in spec.presets]
        elif _preparation(source.presets[0]) == _preparation(spec.presets[0]):
            pairs[proxy] = [(proxy, proxy)]
    return pairs


def borrowed_scores(spec: EvaluationSpec, directory: str | Path) -> dict[tuple[str, int], dict[str, float]]:
    """{(arch, seed): {column: value}}: the values that the evaluation run in ``directory`` (running or
    published) holds for ``spec``'s seeds and for those of its proxies it scored the same way (same space,
    data and seed, so the same network and batch; a Fisher proxy at each of ``spec``'s presets), under
    ``spec``'s column names. A proxy is taken whole (all its columns) or not at all, and not where it
    failed there. An error names the run where it scored another space or data, or none of the proxies."""
    source = lending_spec(directory, spec.space_spec(), spec.data, "this evaluation")
    pairs = _column_pairs(spec, source)
    if not pairs:
        raise ValueError(f"--scores-from {directory} holds none of the proxies {list(spec.proxies)} as this "
                         f"evaluation scores them (presets {list(spec.presets)}); it scored {list(source.proxies)} "
                         f"with presets {list(source.presets)}")
    borrowed = {}
    for record in load_records(directory):
        if record["seed"] not in spec.seeds or "error" in record:
            continue
        values = {mine: record["values"][theirs] for columns in pairs.values()
                  if all(theirs in record["values"] for theirs, _ in columns) for theirs, mine in columns}
        if values:
            borrowed[(record["arch"], record["seed"])] = values
    return borrowed
