"""Rewrite the README's two tables of every label-free proxy on TransNAS-Bench-101's 100-cell samples from
the committed runs (bench/results/tnb/*_label_free100/metrics.json), in the form
tests/test_transnas.py::test_the_readme_label_free_tables_quote_the_committed_samples checks: one column per
run (micro first, then macro; tasks in the benchmark's order), rows in the order the runs first rank each
proxy, each cell KT / SPR / nDCG (n/a where undefined), [n] where the proxy failed on some cells and ranks the n
others, with NAS-Bench-Suite-Zero's SPR in brackets, "—" where the run has no such ranking.

    python bench/transnas_readme_tables.py          (then write the sentence on each new column by hand)
"""
from __future__ import annotations

import json
from pathlib import Path

from vkdnw_fast.evaluation.published import suite_zero

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "tnb"
SPACES = ("tnb_micro", "tnb_macro")
CLASSIFICATION = ("class_scene", "class_object")
OTHER_TASKS = ("jigsaw", "room_layout", "segmentsemantic", "normal", "autoencoder")
HEADERS = {CLASSIFICATION: "| proxy (100 cells) |", OTHER_TASKS: "| proxy (100 cells, other tasks) |"}


def figures(ranking: dict) -> str:
    """KT / SPR / nDCG, and [n] where the proxy failed on some cells and ranks the n others."""
    return " / ".join("n/a" if ranking[m]["mean"] is None else f"{ranking[m]['mean']:.3f}"
                      for m in ("kendall", "spearman", "ndcg")) + (
        f" [{ranking['architectures']}]" if "architectures" in ranking else "")


def table(header: str, tasks: tuple[str, ...]) -> list[str]:
    columns = [(space, task) for space in SPACES for task in tasks
               if (RESULTS / f"{space}_{task}_label_free100" / "metrics.json").is_file()]
    runs = [json.loads((RESULTS / f"{space}_{task}_label_free100" / "metrics.json").read_text())["rankings"]
            for space, task in columns]
    proxies = list(dict.fromkeys(name for rankings in runs for name in rankings))
    lines = [header + "".join(f" {space.removeprefix('tnb_')}, `{task}` |" for space, task in columns),
             "|---" * (len(columns) + 1) + "|"]
    for proxy in proxies:
        cells = []
        for (space, task), rankings in zip(columns, runs):
            if proxy not in rankings:
                cells.append("—")
                continue
            published = suite_zero(proxy, space, task)
            cells.append(figures(rankings[proxy]) + ("" if published is None else f" ({published:.2f})"))
        lines.append(f"| `{proxy}` | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    readme = ROOT / "README.md"
    lines = readme.read_text().splitlines()
    for tasks, header in HEADERS.items():
        start = next(i for i, line in enumerate(lines) if line.startswith(header))
        end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
        lines[start:end] = table(header, tasks)
    readme.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
