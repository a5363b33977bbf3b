"""The package's layering (docs/architecture.md): a module imports only from its own layer or lower
ones, the search spaces and benchmarks know nothing of scoring, and the engine no specific sampler.
Read from the source with ``ast``, so an import inside a function counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "vkdnw_fast"

# Top-level module or subpackage -> its layer (docs/architecture.md).
LAYERS = {
    "config": 1, "layers": 1, "timing": 1, "journal": 1, "linearise": 1, "hooks": 1, "ops": 1, "spectrum": 1, "metrics": 1, "data": 1,
    "datasets": 1,
    "registry": 1, "runs": 1, "memory": 1, "_C": 1,
    "spaces": 2, "benchmarks": 2,
    "init": 3, "prepare": 3, "samplers": 3, "selection": 3,
    "engine": 4, "reference": 4,
    "proxies": 5,
    "scoring": 6,
    "backends": 7,
    "evaluation": 8, "search": 8, "throughput": 8,
    "cli": 9,
}


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(the imported vkdnw_fast module, dotted after the package name; line) of every import in ``path``."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(module[: len(module) - node.level])  # the package (of an __init__ too)
                target = base + (node.module.split(".") if node.module else [])
                names = [target + [alias.name] for alias in node.names]
            elif node.module and node.module.split(".")[0] == "vkdnw_fast":
                names = [node.module.split(".") + [alias.name] for alias in node.names]
            else:
                continue
            found += [(".".join(name[1:]), node.lineno) for name in names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.split(".", 1)[1], node.lineno) for alias in node.names
                      if alias.name.startswith("vkdnw_fast.")]
    return found


def layer_of(dotted: str) -> int | None:
    return LAYERS.get(dotted.split(".")[0])


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    assert [p for p in SOURCES if p.parent == PACKAGE and layer_of(p.stem) is None and p.stem != "__init__"] == []
    assert [p for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("__") and layer_of(p.name) is None] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_higher_layer(path):
    own = path.relative_to(PACKAGE).with_suffix("").parts
    if own == ("__init__",):
        return  # the package's public API re-exports from every layer
    mine = layer_of(own[0])
    upward = [(target, line) for target, line in imports_of(path)
              if layer_of(target) is not None and layer_of(target) > mine]
    assert upward == [], f"{path.relative_to(PACKAGE)} (layer {mine}) imports higher layers: {upward}"


def test_the_engine_uses_no_specific_sampler():
    for name in ("engine.py", "reference.py", "selection.py"):
        specific = [t for t, _ in imports_of(PACKAGE / name)
                    if t.startswith("samplers.") and t.split(".")[1] not in ("base", "registry", "ModulePlan",
                                                                               "WeightSampler", "sampler_for",
                                                                               "supported_types", "register_sampler")]
        assert specific == [], f"{name} imports specific samplers: {specific}"


def test_spaces_and_benchmarks_know_nothing_of_scoring():
    for path in [*(PACKAGE / "spaces").rglob("*.py"), *(PACKAGE / "benchmarks").rglob("*.py")]:
        targets = {t.split(".")[0] for t, _ in imports_of(path)}
        assert targets <= {"spaces", "benchmarks", "data", "registry"}, (path, targets)


def test_no_mutable_module_state_for_data_paths():
    offenders = [str(p.relative_to(PACKAGE)) for p in SOURCES
                 if any(isinstance(n, ast.Global) for n in ast.walk(ast.parse(p.read_text())))]
    assert offenders == []
