"""TransNAS-Bench-101: the two spaces' strings, networks and sizes, and the bundled ground truth.

Oracles: the benchmark's README (string semantics, example strings), parameter counts written by hand
from the benchmark's network definitions (below), forward-hook MAC counts of the built networks, and
the bundled file itself read independently (gzip + csv here)."""
from __future__ import annotations

import csv
import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vkdnw_fast import benchmarks, evaluation, spaces
from vkdnw_fast.benchmarks import NoRelevanceError
from vkdnw_fast.benchmarks import transnas as tnb_benchmark
from vkdnw_fast.cli import main
from vkdnw_fast.proxies.size import count_macs
from vkdnw_fast.spaces import transnas

# ---------------------------------------------------------------- hand-written parameter counts
#
# The benchmark's networks (TransNAS-Bench-101 code, net_infer/net_macro.py, cell_micro.py, cell_ops.py,
# task_models/decoder.py): stem conv3x3 3->32 + BN(32), ReLU-conv3x3 32->64 + BN(64); head Linear(C, n).
# A conv of k x k from a to b channels has a*b*k*k weights, a BN of c channels 2c (gamma, beta).
STEM = 3 * 32 * 9 + 2 * 32 + 32 * 64 * 9 + 2 * 64  # 19,488


def micro_params(ops, outputs):
    """Micro encoder 64-41414: ten cells (c_in, c_out): (64,128), (128,128) x3, (128,256), (256,256) x3,
    (256,512), (512,512). Edges 0, 1, 3 leave node 0 (c_in -> c_out, the cell's stride), edges 2, 4, 5
    map c_out -> c_out. Summed over the ten cells: sum c_in*c_out = 679,936, sum c_out^2 = 851,968,
    sum 2*c_out = 5,120. conv3x3: 9*(those) + 5,120; conv1x1: (those) + 5,120; none: 0; skip: 0, except
    leaving node 0 of the three stride-2 cells, a FactorizedReduce (two 1x1 convs of c_out/2 + BN(c_out)):
    (64*128 + 256) + (128*256 + 512) + (256*512 + 1024) = 173,824. Head: 512*n + n."""
    from_input = {0: 0, 1: 173_824, 2: 679_936 + 5_120, 3: 9 * 679_936 + 5_120}
    inner = {0: 0, 1: 0, 2: 851_968 + 5_120, 3: 9 * 851_968 + 5_120}
    cell = sum((from_input if edge in (0, 1, 3) else inner)[op] for edge, op in enumerate(ops))
    return STEM + cell + 512 * outputs + outputs


def macro_params(digits, outputs):
    """Macro encoder: per digit two ResNet basic blocks; the first (c -> c', stride s) has
    9cc' + 2c' + 9c'^2 + 2c' and, where s = 2 or c != c', a 1x1 downsample conv + BN: cc' + 2c'; the
    second 2*(9c'^2 + 2c'). c' = 2c for digits 2, 4; s = 2 for digits 3, 4. Head: C*n + n."""
    total, c = STEM, 64
    for d in digits:
        c2 = 2 * c if d in (2, 4) else c
        total += 9 * c * c2 + 2 * c2 + 9 * c2 * c2 + 2 * c2
        if d in (3, 4) or c2 != c:
            total += c * c2 + 2 * c2
        total += 2 * (9 * c2 * c2 + 2 * c2)
        c = c2
    return total + c * outputs + outputs


@pytest.mark.parametrize("arch, task", [("64-41414-3_33_333", "class_scene"), ("64-41414-1_02_333", "class_object"),
                                        ("64-41414-0_12_210", "class_scene")])
def test_micro_parameter_counts_follow_the_benchmark_definition(arch, task):
    space = spaces.get("tnb_micro", dataset=task)
    expected = micro_params(transnas.parse_micro(arch), {"class_scene": 63, "class_object": 100}[task])
    model = space.build_model(arch)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert space.cost(arch)["params"] == expected
    if arch == "64-41414-3_33_333":
        assert expected == 41_443_935  # 19,488 + 3*(6,119,424+5,120) + 3*(7,667,712+5,120) + 512*63+63


@pytest.mark.parametrize("arch", ["64-1234-basic", "64-2311-basic", "64-413142-basic"])
def test_macro_parameter_counts_follow_the_benchmark_definition(arch):
    space = spaces.get("tnb_macro", dataset="class_object")
    expected = macro_params(transnas.parse_macro(arch), 100)
    assert sum(p.numel() for p in space.build_model(arch).parameters()) == expected
    assert space.cost(arch)["params"] == expected


@pytest.mark.parametrize("name, arch", [("tnb_micro", "64-41414-1_23_013"), ("tnb_micro", "64-41414-0_00_000"),
                                        ("tnb_macro", "64-1234-basic"), ("tnb_macro", "64-3412-basic")])
def test_flops_equal_hooked_macs_and_shapes_follow_the_skeleton(name, arch):
    space = spaces.get(name, dataset="room_layout", resolution=32)
    torch.manual_seed(0)
    model = space.build_model(arch).eval()
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 9)
    assert space.cost(arch)["flops"] == count_macs(model, x[:1])
    # Four halvings in the stem and "41414"'s / the layout's stride-2 stages, then the decoder pools.
    feature = model.encoder(x)
    halvings = 2 + (3 if name == "tnb_micro" else sum(int(d) > 2 for d in arch.split("-")[1]))
    assert feature.shape[-1] == -(-32 // 2 ** halvings)
    assert space.cost(arch)["layers"] == sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())


def test_none_edges_keep_upstream_parameters_in_the_graph():
    """A cell whose node-0 edges are all none: output independent of the input, yet every parameter
    gets a (zero) gradient, as x*0 gives in the benchmark where the width does not change."""
    space = spaces.get("tnb_micro", dataset="class_scene", resolution=32)
    model = space.build_model("64-41414-0_03_033")
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert float(model.encoder.stem[0].weight.grad.abs().sum()) == 0.0


# ---------------------------------------------------------------- strings, sampling, mutation


def test_the_spaces_hold_the_benchmarks_counts_and_documented_examples():
    micro, macro = transnas.micro_archs(), transnas.macro_archs()
    assert len(micro) == len(set(micro)) == 4096 and len(macro) == len(set(macro)) == 3256
    assert [sum(len(a.split("-")[1]) == n for a in macro) for n in (4, 5, 6)] == [210, 750, 2296]
    # README: "64-41414-1_02_333": node1 = skip(node0); node2 = none(node0) + conv1x1(node1);
    # node3 = conv3x3 of nodes 0, 1, 2. Edges in order (0,1), (0,2), (1,2), (0,3), (1,3), (2,3).
    ops = transnas.parse_micro("64-41414-1_02_333")
    assert [transnas.OPS[o] for o in ops] == ["skip_connect", "none", "conv_1x1", "conv_3x3", "conv_3x3", "conv_3x3"]
    assert transnas.EDGES == ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
    # README / API examples of the macro space.
    assert {"64-1234-basic", "64-2311-basic", "64-4111-basic"} <= set(macro)
    assert all(transnas.format_micro(transnas.parse_micro(a)) == a for a in micro)
    assert all(transnas.format_macro(transnas.parse_macro(a)) == a for a in macro)


@pytest.mark.parametrize("name, arch, message", [
    ("tnb_micro", "64-41414", "'<width>-<skeleton>-<cell>'"),
    ("tnb_micro", "32-41414-1_02_333", "base width is 64"),
    ("tnb_micro", "64-4141-1_02_333", "skeleton is '41414'"),
    ("tnb_micro", "64-41414-1_023_33", "groups of 1, 2 and 3"),
    ("tnb_micro", "64-41414-1_02_334", "op digit(s) ['4'] unknown"),
    ("tnb_macro", "64-1234-1_02_333", "end in '-basic'"),
    ("tnb_macro", "64-12a4-basic", "not a string of stage digits"),
    ("tnb_macro", "64-123-basic", "it has 3 stages"),
    ("tnb_macro", "64-1254-basic", "stage digits are 1"),
    ("tnb_macro", "64-1111-basic", "0 stages halve the resolution"),
    ("tnb_macro", "64-3333-basic", "0 stages double the channels"),
    ("tnb_macro", "64-4444-basic", "4 stages double the channels"),
    ("tnb_macro", "64-333331-basic", "5 stages halve"),
])
def test_malformed_strings_are_refused_with_the_reason(name, arch, message):
    with pytest.raises(ValueError) as error:
        spaces.get(name, resolution=32).validate(arch)
    assert message in str(error.value) and arch in str(error.value)


def test_every_task_has_its_network_outputs_and_input():
    with pytest.raises(ValueError, match="unknown TransNAS-Bench-101 task 'cifar10'"):
        spaces.get("tnb_macro", dataset="cifar10")
    assert [spaces.get("tnb_micro", dataset=t).num_classes for t in ("class_object", "class_scene", "room_layout",
                                                                      "jigsaw")] == [100, 63, 9, 1000]
    assert spaces.get("tnb_micro", dataset="class_object", num_classes=75).num_classes == 75
    assert spaces.get("tnb_micro").input_shape == (3, 256, 256)
    assert spaces.get("tnb_micro", dataset="jigsaw").input_shape == (9, 3, 64, 64)  # the config's tile_dim
    for task, channels in (("segmentsemantic", 17), ("normal", 3), ("autoencoder", 3)):
        space = spaces.get("tnb_macro", dataset=task, resolution=64)
        assert space.num_classes is None
        assert space.build_model("64-3412-basic")(torch.randn(2, 3, 64, 64)).shape == (2, channels, 64, 64)
        with pytest.raises(ValueError, match="num_classes does not apply"):
            spaces.get("tnb_micro", dataset=task, num_classes=10)


def generative_params(width):
    """GenerativeDecoder (decoder.py) with u = 5 (micro): conv3x3 layers with bias and BN(2c) except the
    last (tanh, no BN); widths width, 1024, 1024, 512, 512, 256, 128, 64, 64, 32, 32, 16, 32, 16, 3."""
    widths = [width, 1024, 1024, 512, 512, 256, 128, 64, 64, 32, 32, 16, 32, 16, 3]
    return sum(9 * a * b + b + (2 * b if i < 13 else 0) for i, (a, b) in enumerate(zip(widths, widths[1:])))


def test_dense_and_siamese_heads_follow_the_benchmark_definition():
    arch = "64-41414-3_33_333"
    encoder = micro_params(transnas.parse_micro(arch), 0)
    assert spaces.get("tnb_micro", dataset="autoencoder").cost(arch)["params"] == encoder + generative_params(512)
    # SegmentationDecoder, u = 5: conv 512->1024, one conv 1024->512, deconvs 512->256->128->64->32, deconv
    # 32->32, conv 32->17 (no BN).
    seg = [(512, 1024), (1024, 512), (512, 256), (256, 128), (128, 64), (64, 32), (32, 32)]
    expected = encoder + sum(9 * a * b + 3 * b for a, b in seg) + 9 * 32 * 17 + 17
    space = spaces.get("tnb_micro", dataset="segmentsemantic")
    assert space.cost(arch)["params"] == expected
    assert sum(p.numel() for p in space.build_model(arch).parameters()) == expected
    # SiameseDecoder: Linear(9 x 512 -> 1000) on the 9 tiles' concatenated features.
    jigsaw = spaces.get("tnb_micro", dataset="jigsaw", resolution=64)
    assert jigsaw.cost(arch)["params"] == encoder + 9 * 512 * 1000 + 1000
    model = jigsaw.build_model(arch).eval()
    tiles = torch.randn(2, 9, 3, 16, 16)
    assert model(tiles).shape == (2, 1000)
    assert jigsaw.cost(arch)["flops"] == count_macs(model, tiles[:1])


def test_label_free_proxies_score_dense_networks_and_the_others_say_why_not():
    from vkdnw_fast.proxies import ProxyError, compute_proxies

    # segmentsemantic: its last layer is linear (the image decoders' tanh saturates SynFlow's all-positive
    # forward, whose gradients, and score, are then 0).
    space = spaces.get("tnb_micro", dataset="segmentsemantic", resolution=32)
    arch = "64-41414-1_23_013"
    values = compute_proxies(space.build_model(arch), ["synflow", "naswot", "jacov", "params"], space=space,
                             arch=arch, batch_size=4)
    assert values["params"] == space.cost(arch)["params"] and values["synflow"] > 0
    for name, message in (("snip", "needs class logits"), ("vkdnw", r"shape \(4, 17, 32, 32\); expected \(N, C\)")):
        with pytest.raises(ProxyError, match=message):
            compute_proxies(space.build_model(arch), [name], space=space, arch=arch, batch_size=4)
    # jigsaw's encoder runs once per tile: AZ-NAS's per-block feature maps do not exist, and it says so.
    space = spaces.get("tnb_micro", dataset="jigsaw", resolution=96)
    with pytest.raises(ProxyError, match="block 0 .* ran again: .* siamese network"):
        compute_proxies(space.build_model(arch), ["expressivity"], space=space, arch=arch, batch_size=4)


@pytest.mark.parametrize("name", ["tnb_micro", "tnb_macro"])
def test_sampling_and_mutation_stay_in_the_space(name):
    space = spaces.get(name, resolution=32)
    members = set(space.enumerate())
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(50)]
    assert set(archs) <= members and len(set(archs)) > 40
    assert [space.sample(np.random.default_rng(3)) for _ in range(2)] == [space.sample(np.random.default_rng(3))] * 2
    for arch in archs:
        child = space.mutate(arch, rng)
        assert child in members and child != arch
        if name == "tnb_micro":
            assert sum(a != b for a, b in zip(transnas.parse_micro(arch), transnas.parse_micro(child))) == 1
        else:  # one substitution, insertion or deletion of a stage digit
            a, b = arch.split("-")[1], child.split("-")[1]
            short, long_ = sorted((a, b), key=len)
            if len(a) == len(b):
                assert sum(x != y for x, y in zip(a, b)) == 1
            else:
                assert len(long_) == len(short) + 1
                assert any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


# ---------------------------------------------------------------- the ground truth


def _bundled_rows():
    with gzip.open(tnb_benchmark.CSV, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def _no_path(ops):
    """Whether no chain of non-none edges leads from the cell input to its output (independent of
    the space module: edges in the README's order)."""
    reached = {0}
    for (source, target), op in zip(((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3)), ops):
        if op != 0 and source in reached:
            reached.add(target)
    return 3 not in reached


def test_naslib_tuples_map_onto_each_space_once_per_task():
    rows = _bundled_rows()
    assert len(rows) == 7 * (4096 + 3256)
    tuples = {}
    for row in rows:
        tuples.setdefault((row["search_space"], row["task"]), []).append(row["arch"])
    assert sorted(tuples) == sorted(itertools.product(("macro", "micro"), transnas.TASKS))
    for space_name, archs in (("micro", transnas.micro_archs()), ("macro", transnas.macro_archs())):
        strings = {t: transnas.from_naslib(f"tnb_{space_name}", json.loads(t.replace("(", "[").replace(")", "]")))
                   for t in tuples[(space_name, "class_scene")]}
        assert sorted(strings.values()) == sorted(archs)
        for task in transnas.TASKS:
            assert sorted(tuples[(space_name, task)]) == sorted(strings)
    # NASLib wrote the tuple's digits verbatim into the benchmark's string (macro: zeros dropped).
    assert transnas.from_naslib("tnb_micro", (1, 0, 2, 3, 3, 3)) == "64-41414-1_02_333"
    assert transnas.from_naslib("tnb_macro", (1, 2, 3, 4, 0, 0)) == "64-1234-basic"


def test_cells_with_no_input_output_path_are_the_chance_level_cells():
    """Under the benchmark's op codes (0 = none) the 169 cells whose output ignores the input are
    exactly the class_scene minimum (chance), and a constant network scores one value elsewhere; under
    NASLib's own op order (1 = none) the same test fails, so the mapping of the digits is pinned."""
    bench = benchmarks.get("tnb_micro")
    cells = list(itertools.product(range(4), repeat=6))
    archs = [transnas.format_micro(c) for c in cells]
    dead = {a for a, c in zip(archs, cells) if _no_path(c)}
    assert len(dead) == 169
    scene = dict(zip(archs, bench.values(archs, "class_scene")))
    lowest = min(scene.values())
    assert {a for a, v in scene.items() if v == lowest} == dead and lowest == pytest.approx(7.4840765)
    for task in ("class_object", "jigsaw", "segmentsemantic"):
        values = dict(zip(archs, bench.values(archs, task)))
        assert len({values[a] for a in dead}) == 1
    naslib_order_dead = {a for a, c in zip(archs, cells) if _no_path([{1: 0, 0: 1}.get(o, o) for o in c])}
    assert {a for a, v in scene.items() if v == lowest} != naslib_order_dead


def test_benchmark_lookups_metrics_and_errors():
    micro, macro = benchmarks.get("tnb_micro"), benchmarks.get("tnb_macro")
    assert micro.space == "tnb_micro" and macro.space == "tnb_macro"
    assert micro.archs() == list(spaces.get("tnb_micro").enumerate()) and len(macro.archs()) == 3256
    assert micro.datasets() == transnas.TASKS
    assert [micro.metrics(t)[0] for t in transnas.TASKS] == \
        ["valid@25", "valid@25", "valid@10", "valid@25", "valid@30", "valid@30", "valid@30"]
    rows = {(r["search_space"], r["task"], r["arch"]): float(r["val_metric"]) for r in _bundled_rows()}
    for space_name, bench, tuple_, arch in (("micro", micro, "(1, 0, 2, 3, 3, 3)", "64-41414-1_02_333"),
                                            ("macro", macro, "(1, 2, 3, 4)", "64-1234-basic"),
                                            ("macro", macro, "(4, 1, 3, 2, 3)", "64-41323-basic")):
        for task in transnas.TASKS:
            assert bench.value(arch, task) == rows[(space_name, task, tuple_)]
            assert bench.value(arch, task, bench.metrics(task)[0]) == rows[(space_name, task, tuple_)]
    with pytest.raises(ValueError, match="no task 'cifar10'"):
        micro.values(["64-41414-1_02_333"], "cifar10")
    with pytest.raises(ValueError, match="no metric 'valid@200'"):
        micro.values(["64-41414-1_02_333"], "class_scene", "valid@200")
    with pytest.raises(ValueError, match="op digit"):
        micro.values(["64-41414-1_02_339"], "class_scene")
    with pytest.raises(ValueError, match="not in the macro space"):
        macro.values(["64-1111-basic"], "class_scene")


def test_values_are_shown_in_their_unit_and_ndcg_reads_ssim_in_percent_and_no_loss():
    bench = benchmarks.get("tnb_micro")
    archs = transnas.micro_archs()[:50]
    for task in ("class_scene", "jigsaw", "segmentsemantic"):
        values = bench.values(archs, task)
        np.testing.assert_array_equal(bench.ndcg_relevance(values, task), values)
    for task in ("normal", "autoencoder"):
        ssim = bench.values(archs, task)
        np.testing.assert_array_equal(bench.ndcg_relevance(ssim, task), 100 * ssim)
    with pytest.raises(NoRelevanceError, match="room_layout: its metric is a negated L2 loss"):
        bench.ndcg_relevance(bench.values(archs, "room_layout"), "room_layout")
    assert [bench.unit(t) for t in ("jigsaw", "autoencoder", "room_layout")] == ["%", "SSIM", "negated L2 loss"]
    assert [bench.show(v, t) for v, t in ((42.104, "class_object"), (0.5526, "normal"), (-0.6504, "room_layout"))] \
        == ["42.10%", "SSIM 0.553", "L2 loss 0.650"]


# ---------------------------------------------------------------- the command line


def test_evaluate_and_search_run_on_the_spaces(tmp_path, monkeypatch):
    """End to end, at 32x32 instead of the benchmark's 256x256 (the spaces read the default then)."""
    from scipy.stats import kendalltau

    monkeypatch.setattr(transnas, "RESOLUTION", 32)
    out = tmp_path / "eval"
    # No --task: the space's default, class_scene (63 classes in the parameter counts below).
    assert main(["evaluate", "--space", "tnb_macro", "--limit", "4", "--seeds", "1",
                 "--proxies", "params", "--out", str(out), "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    archs = [r["arch"] for r in records]
    assert len(set(archs)) == 4 and set(archs) <= set(transnas.macro_archs())
    params = [macro_params(transnas.parse_macro(a), 63) for a in archs]
    assert [r["values"]["params"] for r in records] == params
    truth = benchmarks.get("tnb_macro").values(archs, "class_scene")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["spec"]["dataset"] == "class_scene" and metrics["spec"]["space"] == "tnb_macro"
    assert metrics["rankings"]["params"]["kendall"]["mean"] == pytest.approx(kendalltau(params, truth)[0])

    # Dense tasks: nDCG's gains read SSIM in percent; a loss has none, and the table says so.
    from sklearn.metrics import ndcg_score

    for task in ("normal", "room_layout"):
        out = tmp_path / task
        assert main(["evaluate", "--space", "tnb_micro", "--task", task, "--limit", "5", "--seeds", "1",
                     "--proxies", "params,l2_norm", "--out", str(out), "--quiet"]) == 0
        records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        truth = benchmarks.get("tnb_micro").values([r["arch"] for r in records], task)
        ranking = json.loads((out / "metrics.json").read_text())["rankings"]["l2_norm"]
        l2 = [[r["values"]["l2_norm"] for r in records]]
        if task == "normal":
            assert ranking["ndcg"]["mean"] == pytest.approx(ndcg_score([2 ** (100 * truth) - 1], l2))
        else:
            assert ranking["ndcg"]["mean"] is None and ranking["kendall"]["mean"] == pytest.approx(kendalltau(l2[0], truth)[0])
            assert "nDCG is undefined for room_layout" in evaluation.report(out)[1].splitlines()[-2]

    search = tmp_path / "search"
    assert main(["search", "--space", "tnb_micro", "--task", "class_object", "--algorithm", "naswot",
                 "--proxy", "naswot", "--samples", "2", "--runs", "2", "--out", str(search), "--no-progress"]) == 0
    results = json.loads((search / "results.json").read_text())
    assert results["space"] == {"name": "tnb_micro", "dataset": "class_object"}
    assert results["metrics"]["jigsaw"] == {"valid": "valid@10"}
    bench = benchmarks.get("tnb_micro")
    for run in json.loads((search / "runs.json").read_text()):
        assert run["arch"] in set(transnas.micro_archs())
        assert run["accuracy"]["class_object"]["valid"] == bench.value(run["arch"], "class_object")


def test_the_task_is_the_spaces_default_unless_given_and_given_once(tmp_path, capsys):
    assert evaluation.EvaluationSpec(space="tnb_micro").dataset == "class_scene"
    assert evaluation.EvaluationSpec(space="tnb_macro", dataset="jigsaw").dataset == "jigsaw"
    assert evaluation.EvaluationSpec().dataset == "cifar10"  # NB201's
    assert evaluation.EvaluationSpec(space="nb101").dataset == "cifar10"  # a space without datasets
    # --dataset and --task name one setting: a second value would silently replace the first.
    for command in (["evaluate", "--space", "tnb_micro", "--proxies", "params", "--limit", "2"],
                    ["search", "--space", "tnb_micro", "--algorithm", "random", "--samples", "2"]):
        with pytest.raises(SystemExit) as stop:
            main([*command, "--dataset", "class_scene", "--task", "class_object", "--out", str(tmp_path / "x")])
        assert stop.value.code == 2
        assert "--dataset/--task given twice (class_scene, then class_object by --task)" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- NAS-Bench-Suite-Zero's figures


def test_suite_zero_figures_are_looked_up_by_space_task_and_proxy():
    from vkdnw_fast.evaluation.published import beside, suite_zero

    # Cells of the heat-map (read twice, independently, from the saved figure).
    assert suite_zero("flops", "tnb_macro", "class_scene") == 0.85
    assert suite_zero("fisher", "tnb_micro", "autoencoder") == -0.58
    assert suite_zero("jacov", "tnb_micro", "segmentsemantic") == 0.80
    assert suite_zero("naswot_128", "nb101", "cifar10") == suite_zero("naswot", "nb101", "cifar10") == 0.31
    assert suite_zero("synflow@exact", "tnb_micro", "normal") == 0.0  # NaN there, stored as 0
    assert suite_zero("meco_opt", "tnb_micro", "class_scene") is None  # not one of its 13
    assert beside("params", "tnb_micro", "room_layout") == {"NAS-Bench-Suite-Zero": (0.30,)}
    assert beside("aggregate(flops,params)", "tnb_micro", "room_layout") == {}
    assert beside("flops@exact", "nb201", "cifar10") == {"VKDNW Table I": (0.623, 0.799, 0.745),
                                                         "NAS-Bench-Suite-Zero": (0.69,)}


@pytest.mark.parametrize("name", ["tnb_micro", "tnb_macro"])
def test_size_of_every_network_ranks_every_task_as_suite_zero_found(name):
    """FLOPs and parameters look at no data, so NAS-Bench-Suite-Zero's Spearman ρ of the two with each task's
    metric (NASLib's networks, the mean over 10 samples of 1,000) is a check of this project's builders, cost
    formulas and ground-truth mapping at once: over the whole space, every task agrees to rounding and
    sampling (0.02)."""
    from scipy.stats import spearmanr

    from vkdnw_fast.evaluation.published import suite_zero

    bench = benchmarks.get(name)
    archs = bench.archs()
    for task in transnas.TASKS:
        space = spaces.get(name, dataset=task)
        costs = [space.cost(arch) for arch in archs]
        truth = bench.values(archs, task)
        for proxy in ("flops", "params"):
            ours = spearmanr([cost[proxy] for cost in costs], truth)[0]
            assert ours == pytest.approx(suite_zero(proxy, name, task), abs=0.02), (task, proxy)


README_PROXIES = {"FLOPs": "flops", "params": "params", "l2_norm": "l2_norm", "SynFlow": "synflow",
                  "MeCo_opt": "meco_opt", "random forest": "random_forest"}


def test_the_readme_table_quotes_the_committed_samples():
    """The README's TransNAS-Bench-101 table: each cell's KT / SPR / nDCG is the committed run's (n/a where
    undefined), and the bracketed figure NAS-Bench-Suite-Zero's."""
    from test_evaluation import quoted_figures, readme_table

    from vkdnw_fast.evaluation.published import suite_zero

    header, body = readme_table("| space and task | FLOPs |")
    columns = header[1:]
    assert [README_PROXIES[c] for c in columns] == list(README_PROXIES.values())
    rows = {}
    for cells in body:
        space, task = cells[0].replace("`", "").split(", ")
        rows[(f"tnb_{space}", task)] = cells[1:]
    assert set(rows) == {(s, t) for s in ("tnb_micro", "tnb_macro") for t in transnas.TASKS}
    for (space, task), cells in rows.items():
        saved = json.loads((Path(__file__).parents[1] / "bench" / "results" / "tnb" / f"{space}_{task}_cheap500"
                            / "metrics.json").read_text())
        for column, cell in zip(columns, cells):
            proxy = README_PROXIES[column]
            if proxy not in saved["rankings"]:  # not scored on this task
                assert cell == "—", (space, task, proxy)
                continue
            figures, _, theirs = cell.partition(" (")
            assert figures == quoted_figures(saved["rankings"][proxy]), (space, task, proxy)
            published = suite_zero(proxy, space, task)
            assert (theirs.rstrip(")") or None) == (None if published is None else f"{published:.2f}"), (space, task, proxy)


@pytest.mark.parametrize("suffix, tables", [
    ("label_free100", {"| proxy (100 cells) |": True, "| proxy (100 cells, other tasks) |": False}),
    ("vkdnw100", {"| proxy (100 cells, VKDNW's runs) |": True}),
])
def test_the_readme_tables_of_the_samples_quote_the_committed_runs(suffix, tables):
    """The README's tables of TransNAS-Bench-101 samples of 100: every label-free proxy
    (``bench/transnas_label_free.sh``), one table for the classification tasks and one for the other five,
    and VKDNW with the NAS-Bench-201 reproduction's proxies (``bench/transnas_vkdnw.sh``, the classification
    tasks; the spectrum's deciles left out). One column per committed run, each cell the run's KT / SPR /
    nDCG (n/a where undefined) with NAS-Bench-Suite-Zero's SPR in brackets where it has the proxy, and "—"
    where the run has no such ranking; no table where no run is committed yet."""
    from test_evaluation import quoted_figures, readme_table

    from vkdnw_fast.evaluation.published import suite_zero

    results = Path(__file__).parents[1] / "bench" / "results" / "tnb"
    runs = sorted(run.name for run in results.glob(f"*_{suffix}"))
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    if not runs:
        assert not any(f"\n{table}" in readme for table in tables)
        return
    classification = {"class_scene", "class_object"}
    tables = {table: of_classification for table, of_classification in tables.items()
              if of_classification or any(name.removesuffix(f"_{suffix}").split("_", 2)[2] not in classification
                                          for name in runs)}
    quoted = []
    for table, of_classification in tables.items():
        header, body = readme_table(table)
        pairs = [(f"tnb_{space}", task) for space, task in  # columns such as "micro, `class_scene`"
                 (column.replace("`", "").split(", ") for column in header[1:])]
        assert all((task in classification) == of_classification for _, task in pairs)
        run_names = [f"{space}_{task}_{suffix}" for space, task in pairs]
        quoted += run_names
        saved = [json.loads((results / name / "metrics.json").read_text()) for name in run_names]
        assert all(s["architectures"] == 100 for s in saved)
        names = [name for name in dict.fromkeys(name for s in saved for name in s["rankings"])
                 if not name.startswith("fim_q")]
        assert [cells[0].strip("`") for cells in body] == names
        for cells in body:
            proxy = cells[0].strip("`")
            for (space, task), run, cell in zip(pairs, saved, cells[1:]):
                if proxy not in run["rankings"]:
                    assert cell == "—", (space, task, proxy)
                    continue
                published = suite_zero(proxy, space, task)
                ranking = run["rankings"][proxy]
                ranked_on = f" [{ranking['architectures']}]" if "architectures" in ranking else ""  # some failed
                expected = quoted_figures(ranking) + ranked_on + ("" if published is None else f" ({published:.2f})")
                assert cell == expected, (space, task, proxy)
    assert sorted(quoted) == runs


@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("name, arch, resolution", [("tnb_micro", "64-41414-1_23_013", 64),
                                                    ("tnb_macro", "64-23343-basic", 64)])
def test_the_engine_scores_the_benchmark_networks_as_the_float64_oracle(name, arch, resolution, preset):
    """VKDNW on the benchmark's own encoders and class_scene head (63 classes): the engine's Fisher matrix
    against the float64 torch.func oracle on the coordinates it sampled, at a small resolution."""
    import copy

    import torch

    import vkdnw_fast as vf
    from fisher_oracle import entropy_of, oracle_fisher

    space = spaces.get(name, dataset="class_scene", resolution=resolution)
    model = space.build_model(arch).double()
    # Three samples at 64 px: with two at 32 px the last BatchNorms normalise two values each, and the
    # matrix's float64 rounding then differed by 4e-9 between one and two threads.
    x = torch.randn(3, 3, resolution, resolution, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    config = vf.FisherConfig.preset(preset, init=None)
    # docs/method.md §3, independently: element 0 of the first 128 parameter tensors ('paper') or of the
    # weights of the first 128 conv/linear layers ('exact').
    if preset == "paper":
        coords = [(p, 0) for p, _ in list(model.named_parameters())[:128]]
    else:
        layers = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
        coords = [(f"{n}.weight", 0) for n in layers[:128]]
    result = vf.score(copy.deepcopy(model), x, config=config)
    assert result.weights == [f"{p}[{i}]" for p, i in coords] and result.skipped == {}
    # One backward pass per sample and logit: the vectorised oracle holds the gradient of every shifted
    # parameter tensor per logit and sample, some 20 GB for these 10-million-parameter networks.
    truth = oracle_fisher(copy.deepcopy(model), x, coords, preset, vectorize=False)
    fisher = vf.fisher_matrix(copy.deepcopy(model), x, config=config)
    assert float((fisher - truth).norm() / truth.norm()) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), abs=1e-9)
