"""The figures of evaluation runs and the eq. 15 aggregate of any proxies from the command line, on small
synthetic result stores, against straightforward recomputations with scipy."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from matplotlib.container import BarContainer
from scipy import stats

from vkdnw_fast import benchmarks, cli
from vkdnw_fast.evaluation import EvaluationSpec, bar_plot, compute_metrics, scatter_plot
from vkdnw_fast.evaluation.plots import axis_scale

NB201 = benchmarks.get("nb201")
PROXIES = ("vkdnw_single", "jacov", "expressivity", "trainability", "flops", "naswot")


def _records(spec: EvaluationSpec, seed: int = 0) -> list[dict]:
    """Synthetic scores of every (architecture, seed): noisy functions of the accuracy, FLOPs with
    ties, Jacov a tight cluster with one far outlier, trainability over nine decades."""
    rng = np.random.default_rng(seed)
    records = []
    for s in spec.seeds:
        for i, a in enumerate(spec.archs()):
            accuracy = NB201.value(a, spec.dataset)
            values = {"vkdnw_single": accuracy + rng.normal(0, 10), "expressivity": rng.normal(),
                      "jacov": -65 - (rng.uniform(1e3, 1e5) if i == 7 else rng.uniform(0, 1)),
                      "trainability": -10 ** (9 * (i * 0.618 % 1) - 3), "flops": float(round(accuracy / 20)),
                      "naswot": accuracy + rng.normal(0, 5)}
            records.append({"arch": a, "seed": s, "values": {p: values[p] for p in spec.proxies}})
    return records


def _store(directory, spec: EvaluationSpec, records: list[dict]):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "run.json").write_text(json.dumps(spec.to_json()))
    (directory / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def _spec(**fields) -> EvaluationSpec:
    return EvaluationSpec(**{"proxies": PROXIES, "limit": 40, "sample_seed": 4, "seeds": (0, 1), **fields})


def _eq15(columns: list[np.ndarray]) -> np.ndarray:
    """docs/method.md eq. 15 written out: Σ log of each value's average ascending rank (below it,
    plus the middle of its ties)."""
    total = np.zeros(len(columns[0]))
    for v in columns:
        total += [math.log((v < x).sum() + ((v == x).sum() + 1) / 2) for x in v]
    return total


def _ndcg(scores: np.ndarray, accuracy: np.ndarray, k: int) -> float:
    order = np.argsort(-scores)[:k]  # no ties in the aggregates tested here
    discount = 1 / np.log2(np.arange(2, len(order) + 2))
    return float(((2.0 ** accuracy[order] - 1) @ discount) / ((2.0 ** np.sort(accuracy)[::-1][:k] - 1) @ discount))


def _table(spec, records, column):
    return np.array([[next(r["values"][column] for r in records if r["arch"] == a and r["seed"] == s)
                      for a in spec.archs()] for s in spec.seeds])


def _titles(fig) -> dict[str, str]:
    return {ax.get_title().split("\n")[0]: ax.get_title() for ax in fig.axes if ax.get_title()}


def _kt_spr(title: str) -> tuple[float, float]:
    found = re.search(r"KT (-?\d\.\d{3})  SPR (-?\d\.\d{3})", title)
    assert found, title
    return float(found[1]), float(found[2])


def test_axis_rule_on_known_shapes():
    rng = np.random.default_rng(0)
    assert axis_scale(rng.uniform(0, 1, 500)) == ("linear", None)
    decades = 10.0 ** rng.uniform(0, 40, 500)
    assert axis_scale(decades) == ("symlog", decades.min())
    cluster_and_outliers = np.concatenate([-65 - rng.uniform(0, 1, 480), -1e4 * rng.uniform(1, 10, 20)])
    assert axis_scale(cluster_and_outliers)[0] == "rank"  # Jacov's panel: a line at 0 on any value axis
    assert axis_scale(np.array([1.0, 2.0, -np.inf]))[0] == "rank"
    # swap_reg on TransNAS-Bench jigsaw: zeros, a denormal (3.6e-314) and values up to 1.8e-8; on a
    # symmetric-log axis with the denormal as threshold matplotlib overflows (1 / 3.6e-314 > 1.8e308).
    underflowing = np.concatenate([np.zeros(40), [3.6e-314], 10.0 ** rng.uniform(-200, -8, 59)])
    assert axis_scale(underflowing)[0] == "rank"


def test_scatter_titles_carry_each_rankings_kt_and_spr():
    spec = _spec()
    records = _records(spec)
    fig = scatter_plot(spec, records, extra_aggregates=[("naswot", "jacov")])
    titles = _titles(fig)
    assert set(titles) == {*PROXIES, "aggregate (eq. 15)", "aggregate(naswot,jacov) (eq. 15)"}
    accuracy = np.array([NB201.value(a, "cifar10") for a in spec.archs()])
    expected = {p: _table(spec, records, p) for p in PROXIES}
    for name, members in [("aggregate", ("vkdnw_single", "jacov", "expressivity", "trainability", "flops")),
                          ("aggregate(naswot,jacov)", ("naswot", "jacov"))]:
        expected[f"{name} (eq. 15)"] = np.array([_eq15([expected[p][i] for p in members]) for i in range(2)])
    for name, per_seed in expected.items():
        kendall = np.mean([stats.kendalltau(v, accuracy)[0] for v in per_seed])
        spearman = np.mean([stats.spearmanr(v, accuracy)[0] for v in per_seed])
        assert _kt_spr(titles[name]) == (pytest.approx(kendall, abs=5.01e-4), pytest.approx(spearman, abs=5.01e-4))
        assert "(mean of 2 seeds)" in titles[name]
    # The titles agree with the table's rankings.
    table = compute_metrics(spec, records)["rankings"]
    assert _kt_spr(titles["aggregate (eq. 15)"]) == (round(table["aggregate"]["kendall"]["mean"], 3),
                                                    round(table["aggregate"]["spearman"]["mean"], 3))
    labels = {ax.get_title().split("\n")[0]: ax.get_xlabel() for ax in fig.axes}
    assert labels["jacov"].startswith("rank of jacov") and "symmetric log" in labels["trainability"]


def test_scatter_counts_non_finite_values_and_leaves_nan_out(tmp_path):
    spec = _spec(seeds=(0,))
    records = _records(spec, seed=1)
    archs = spec.archs()
    for r in records:
        if r["arch"] in archs[:2]:
            r["values"]["jacov"] = -math.inf
        if r["arch"] == archs[3]:
            r["values"]["jacov"] = math.inf
        if r["arch"] in archs[5:8]:
            r["values"]["naswot"] = math.nan
    titles = _titles(scatter_plot(spec, records, tmp_path / "s.png", extra_aggregates=[("naswot", "flops")]))
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "+inf 1, -inf 2 at the rank axis's ends" in titles["jacov"]
    assert "NaN 3 left out" in titles["naswot"] and "NaN 3 left out" in titles["aggregate(naswot,flops) (eq. 15)"]
    accuracy = np.array([NB201.value(a, "cifar10") for a in archs])
    jacov = _table(spec, records, "jacov")[0]
    finite_order = np.where(np.isinf(jacov), np.sign(jacov) * 1e12, jacov)  # ±inf as extremes
    assert _kt_spr(titles["jacov"])[0] == pytest.approx(stats.kendalltau(finite_order, accuracy)[0], abs=5.01e-4)
    naswot = _table(spec, records, "naswot")[0]
    keep = ~np.isnan(naswot)
    assert _kt_spr(titles["naswot"])[1] == pytest.approx(stats.spearmanr(naswot[keep], accuracy[keep])[0], abs=5.01e-4)
    flops = _table(spec, records, "flops")[0]
    aggregate = _eq15([naswot[keep], flops[keep]])
    assert _kt_spr(titles["aggregate(naswot,flops) (eq. 15)"])[0] == pytest.approx(
        stats.kendalltau(aggregate, accuracy[keep])[0], abs=5.01e-4)


def test_report_aggregates_any_proxies_from_the_stored_scores(tmp_path, capsys):
    spec = _spec()
    records = _records(spec, seed=2)
    run = _store(tmp_path / "run", spec, records)
    assert cli.main(["report", str(run), "--aggregate", "naswot,jacov,trainability", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rankings"]["aggregate(naswot,jacov,trainability)"]
    assert row["proxies"] == ["naswot", "jacov", "trainability"]
    accuracy = np.array([NB201.value(a, "cifar10") for a in spec.archs()])
    scores = [_eq15([_table(spec, records, p)[i] for p in row["proxies"]]) for i in range(2)]
    assert row["kendall"]["mean"] == pytest.approx(np.mean([stats.kendalltau(s, accuracy)[0] for s in scores]))
    assert row["spearman"]["std"] == pytest.approx(np.std([stats.spearmanr(s, accuracy)[0] for s in scores]))
    assert row["ndcg"]["mean"] == pytest.approx(np.mean([_ndcg(s, accuracy, 40) for s in scores]))
    assert cli.main(["report", str(run), "--aggregate", "naswot,jacov,trainability"]) == 0
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if x.startswith("aggregate(naswot,jacov,trainability) "))
    assert line.split()[1] == f"{row['kendall']['mean']:.3f}" and line.split()[9] == f"{row['ndcg']['std']:.3f}"
    assert cli.main(["report", str(run)]) == 0
    # The rest of the table is the same, its name column widened for the longer name.
    assert [x.split() for x in capsys.readouterr().out.splitlines()] == [x.split() for x in printed.splitlines()
                                                                          if x != line]


def test_aggregate_names_per_preset_and_clear_errors(tmp_path, capsys):
    spec = _spec(proxies=("vkdnw", "naswot"), presets=("paper", "exact"), seeds=(0,))
    rng = np.random.default_rng(3)
    records = [{"arch": a, "seed": 0, "values": {"vkdnw@paper": rng.normal(), "vkdnw@exact": rng.normal(),
                                                 "naswot": rng.normal()}} for a in spec.archs()]
    run = _store(tmp_path / "run", spec, records)
    result = compute_metrics(spec, records, extra_aggregates=[("vkdnw", "naswot"), ("vkdnw@exact", "naswot")])
    assert {"aggregate(vkdnw,naswot)@paper", "aggregate(vkdnw,naswot)@exact",
            "aggregate(vkdnw@exact,naswot)"} <= result["rankings"].keys()
    assert result["rankings"]["aggregate(vkdnw@exact,naswot)"] == result["rankings"]["aggregate(vkdnw,naswot)@exact"]
    for bad, message in [("zen,naswot", "'zen' is not a column of this run"),
                         ("vkdnw@fast,naswot", "'vkdnw@fast' is not a column"),
                         ("naswot,naswot", "names a proxy twice")]:
        assert cli.main(["report", str(run), "--aggregate", bad]) == 2
        assert message in capsys.readouterr().err


def test_bars_show_every_rankings_metrics_per_run(tmp_path, capsys):
    results = []
    for dataset in ("cifar10", "ImageNet16-120"):
        spec = _spec(dataset=dataset)
        run = _store(tmp_path / dataset, spec, _records(spec))
        result = compute_metrics(spec, _records(spec))
        (run / "metrics.json").write_text(json.dumps(result))
        results.append(result)
    fig = bar_plot(results)
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert names == [n for n in results[0]["rankings"]]
    for ax, result in zip(fig.axes, results):
        bars = [c for c in ax.containers if isinstance(c, BarContainer)]
        assert [c.get_label() for c in bars] == ["KT", "SPR", "nDCG@40"]
        for container, key in zip(bars, ("kendall", "spearman", "ndcg")):
            widths = [bar.get_width() for bar in container.patches]
            assert widths == pytest.approx([result["rankings"][n][key]["mean"] for n in names])
    out = tmp_path / "bars.png"
    assert cli.main(["plot", "bars", str(tmp_path / "cifar10"), str(tmp_path / "ImageNet16-120" / "metrics.json"),
                     "--out", str(out), "--aggregate", "naswot,flops"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and f"wrote {out}" in capsys.readouterr().out
    assert cli.main(["plot", "bars", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "neither a run directory" in capsys.readouterr().err


def test_runs_of_one_sample_join_into_one_panel_sorted_by_a_metric(tmp_path, capsys):
    """Two proxy sets scored on the same sample (the reproduction and the every-proxy run) in one panel,
    best SPR first; runs of different samples, or ranking by the same name, are refused by name."""
    first, second = _spec(proxies=("vkdnw_single", "jacov", "flops")), _spec(proxies=("naswot", "trainability"),
                                                                             seeds=(0,))
    runs = {}
    for name, spec in [("first", first), ("second", second), ("other", _spec(sample_seed=5))]:
        runs[name] = _store(tmp_path / name, spec, _records(spec))
        (runs[name] / "metrics.json").write_text(json.dumps(compute_metrics(spec, _records(spec))))
    out = tmp_path / "bars.png"
    assert cli.main(["plot", "bars", f"{runs['first']}+{runs['second']}", "--out", str(out), "--sort-by",
                     "spearman"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    saved = {name: json.loads((runs[name] / "metrics.json").read_text())["rankings"] for name in ("first", "second")}
    # each run's random forest is named by the number of proxies it was fitted on
    renamed = {"first": {"random_forest": "random_forest(3 features)"},
               "second": {"random_forest": "random_forest(2 features)"}}
    spearman = {renamed[run].get(n, n): r["spearman"]["mean"] for run, rankings in saved.items()
                for n, r in rankings.items()}
    from vkdnw_fast.evaluation.report import join_runs

    fig = bar_plot([join_runs([json.loads((runs[n] / "metrics.json").read_text()) for n in ("first", "second")])],
                   sort_by="spearman")
    names = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert names == sorted(spearman, key=lambda n: -spearman[n]) and len(names) == 7
    spr_bars = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)][1]
    assert [b.get_width() for b in spr_bars.patches] == pytest.approx([spearman[n] for n in names])
    assert "40 architectures, 2 + 1 seeds" in fig.axes[0].get_title()
    for joined, message in [(f"{runs['first']}+{runs['other']}", "sample_seed 5 != 4"),
                            (f"{runs['first']}+{runs['first']}", "both rank by")]:
        assert cli.main(["plot", "bars", joined, "--out", str(out)]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["plot", "bars", f"{runs['first']}+{runs['second']}", "--out", str(out),
                     "--aggregate", "naswot,flops"]) == 2
    assert "cannot be drawn for joined runs" in capsys.readouterr().err


def test_plot_scatter_command_redraws_a_saved_run(tmp_path, capsys):
    spec = _spec(seeds=(0,))
    run = _store(tmp_path / "run", spec, _records(spec))
    assert cli.main(["plot", "scatter", str(run), "--aggregate", "naswot,flops"]) == 0
    assert (run / "scatter.png").read_bytes()[:4] == b"\x89PNG" and "scatter.png" in capsys.readouterr().out


def test_a_run_of_quantile_levels_alone_still_gets_its_panels_and_constant_ones_read_na():
    spec = EvaluationSpec(proxies=("fim_q1", "fim_q2"), limit=6, seeds=(0,))
    records = [{"arch": a, "seed": 0, "values": {"fim_q1": float(i % 4), "fim_q2": 1.0}}
               for i, a in enumerate(spec.archs())]
    titles = _titles(scatter_plot(spec, records))
    accuracy = [NB201.value(a, "cifar10") for a in spec.archs()]
    assert _kt_spr(titles["fim_q1"])[0] == pytest.approx(stats.kendalltau([i % 4 for i in range(6)], accuracy)[0],
                                                        abs=5.01e-4)
    assert "KT n/a  SPR n/a" in titles["fim_q2"]
