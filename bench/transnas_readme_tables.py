"""Rewrite the README's tables of TransNAS-Bench-101's 100-cell samples from the committed runs
(bench/results/tnb/*_label_free100/ and *_vkdnw100/metrics.json), in the form
tests/test_transnas.py checks (test_the_readme_tables_of_the_samples_quote_the_committed_runs): one column per
run (micro first, then macro; tasks in the benchmark's order), rows in the order the runs first rank each
proxy (VKDNW's runs without the spectrum's deciles, fim_q*), each cell KT / SPR / nDCG (n/a where undefined), [n]
where the proxy failed on some cells and ranks the n others, with NAS-Bench-Suite-Zero's SPR in brackets, "—"
where the run has no such ranking. A table of runs none of which is committed yet stays out of the README; the
first one's header line is written by hand, where its table goes.

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
# header: (the runs' name suffix, their tasks)
TABLES = {"| proxy (100 cells) |": ("label_free100", CLASSIFICATION),
          "| proxy (100 cells, other tasks) |": ("label_free100", OTHER_TASKS),
          "| proxy (100 cells, VKDNW's runs) |": ("vkdnw100", CLASSIFICATION)}


def quoted(proxy: str) -> bool:
    """Whether a table quotes the proxy: all but the spectrum's deciles, which VKDNW's runs score for its
    aggregate's ranking and the README does not list."""
    return not proxy.startswith("fim_q")


def figures(ranking: dict) -> str:
    """KT / SPR / nDCG, and [n] where the proxy failed on some cells and ranks the n others."""
    return " / ".join("n/a" if ranking[m]["mean"] is None else f"{ranking[m]['mean']:.3f}"
                      for m in ("kendall", "spearman", "ndcg")) + (
        f" [{ranking['architectures']}]" if "architectures" in ranking else "")


def committed(suffix: str, tasks: tuple[str, ...]) -> list[tuple[str, str]]:
    """The (space, task) of each committed run of the kind, in the tables' order."""
    return [(space, task) for space in SPACES for task in tasks
            if (RESULTS / f"{space}_{task}_{suffix}" / "metrics.json").is_file()]


def table(header: str, suffix: str, tasks: tuple[str, ...]) -> list[str]:
    columns = committed(suffix, tasks)
    runs = [json.loads((RESULTS / f"{space}_{task}_{suffix}" / "metrics.json").read_text())["rankings"]
            for space, task in columns]
    proxies = [name for name in dict.fromkeys(name for rankings in runs for name in rankings) if quoted(name)]
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
    for header, (suffix, tasks) in TABLES.items():
        start = next((i for i, line in enumerate(lines) if line.startswith(header)), None)
        if start is None:
            if committed(suffix, tasks):
                raise SystemExit(f"README.md has no table starting {header!r} for the committed {suffix} runs: "
                                 "write its header line where it goes")
            continue
        end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
        lines[start:end] = table(header, suffix, tasks)
    readme.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
