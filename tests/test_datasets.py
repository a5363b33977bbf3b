"""Real images for the scoring batch (``vkdnw_fast.datasets``, ``--data``): files in the CIFAR python
format and ``.npz`` written here, batches checked against a numpy re-computation of the stated
shuffle and normalisation, proxies against the same batch fed by hand, and every error message."""
from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vkdnw_fast import cli, datasets, spaces
from vkdnw_fast.datasets import DataError, DataSource
from vkdnw_fast.evaluation import EvaluationSpec
from vkdnw_fast.evaluation.store import open_results
from vkdnw_fast.proxies import compute_proxies
from vkdnw_fast.scoring import score_architecture

# NAS-Bench-201's CIFAR normalisation, written out independently of the module's table.
C10_MEAN, C10_STD = np.array([125.3, 123.0, 113.9]) / 255, np.array([63.0, 62.1, 66.7]) / 255
C100_MEAN, C100_STD = np.array([129.3, 124.1, 112.4]) / 255, np.array([68.2, 65.4, 70.4]) / 255


def cifar_rows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 3072), dtype=np.uint8)


def write_pickle(path, obj) -> str:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)
    return str(path)


def write_cifar10(path, count: int = 40, seed: int = 0, classes: int = 10):
    rows = cifar_rows(count, seed)
    labels = list(np.random.default_rng(seed + 100).integers(0, classes, count))
    write_pickle(path, {b"batch_label": b"training batch", b"data": rows, b"labels": [int(v) for v in labels]})
    return rows, np.array(labels)


def expected_batch(rows_chw: np.ndarray, labels: np.ndarray, batch: int, seed: int, mean, std):
    """The stated protocol, computed directly: permutation, [0, 1] scaling, per-channel normalisation."""
    chosen = np.random.default_rng(seed).permutation(len(rows_chw))[:batch]
    images = rows_chw[chosen].astype(np.float64) / 255.0
    images = (images - np.asarray(mean).reshape(1, -1, 1, 1)) / np.asarray(std).reshape(1, -1, 1, 1)
    return images, labels[chosen]


def test_cifar10_batch_file(tmp_path):
    rows, labels = write_cifar10(tmp_path / "data_batch_1", count=40)
    images, targets = datasets.load(tmp_path / "data_batch_1").batch(16, seed=3)
    want_images, want_labels = expected_batch(rows.reshape(40, 3, 32, 32), labels, 16, 3, C10_MEAN, C10_STD)
    assert images.dtype == np.float32 and images.shape == (16, 3, 32, 32)
    np.testing.assert_allclose(images, want_images, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(targets, want_labels)
    # The channel rows are R, G, B planes of 1024 values: pixel (row 5, column 7) of image 0's green plane.
    first = int(np.random.default_rng(3).permutation(40)[0])
    assert images[0, 1, 5, 7] == pytest.approx((rows[first, 1024 + 5 * 32 + 7] / 255 - C10_MEAN[1]) / C10_STD[1], abs=1e-6)
    # A larger batch of the same seed begins with the smaller one; another seed is another batch.
    np.testing.assert_array_equal(datasets.load(tmp_path / "data_batch_1").batch(32, seed=3)[0][:16], images)
    assert not np.array_equal(datasets.load(tmp_path / "data_batch_1").batch(16, seed=4)[0], images)


def test_cifar_directories(tmp_path):
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    parts = [write_cifar10(c10 / f"data_batch_{i}", count=8, seed=i) for i in range(1, 6)]
    write_cifar10(c10 / "test_batch", count=8, seed=99)  # not a training file: not read
    rows = np.concatenate([p[0] for p in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([p[1] for p in parts])
    images, targets = datasets.load(c10).batch(40, seed=1)
    want_images, want_labels = expected_batch(rows, labels, 40, 1, C10_MEAN, C10_STD)
    np.testing.assert_allclose(images, want_images, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(targets, want_labels)

    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    rows = cifar_rows(30, 7)
    fine = np.arange(30) * 3 % 100
    write_pickle(c100 / "train", {b"data": rows, b"fine_labels": [int(v) for v in fine],
                                  b"coarse_labels": [0] * 30})
    dataset = datasets.load(c100)
    assert dataset.kind == "cifar100"
    images, targets = dataset.batch(12, seed=0)
    want_images, want_labels = expected_batch(rows.reshape(30, 3, 32, 32), fine, 12, 0, C100_MEAN, C100_STD)
    np.testing.assert_allclose(images, want_images, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(targets, want_labels)


def test_npz_layouts_and_normalisation(tmp_path):
    rng = np.random.default_rng(5)
    nhwc = rng.integers(0, 256, (25, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, 25)
    np.savez(tmp_path / "u8.npz", images=nhwc, labels=labels)
    chw = nhwc.transpose(0, 3, 1, 2)
    scaled = chw.astype(np.float64) / 255
    mean, std = scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))  # the file's own statistics
    images, targets = datasets.load(tmp_path / "u8.npz").batch(10, seed=2)
    want_images, want_labels = expected_batch(chw, labels, 10, 2, mean, std)
    np.testing.assert_allclose(images, want_images, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(targets, want_labels)

    # Float (N, C, H, W) images are taken as stored; given mean and std replace the file's statistics.
    floats = rng.normal(3.0, 2.0, (12, 1, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "f.npz", images=floats, labels=np.zeros(12, dtype=np.int32))
    images, _ = datasets.load(DataSource(str(tmp_path / "f.npz"), mean=(1.0,), std=(4.0,))).batch(5, seed=0)
    chosen = np.random.default_rng(0).permutation(12)[:5]
    np.testing.assert_allclose(images, (floats[chosen].astype(np.float64) - 1.0) / 4.0, rtol=1e-6)
    images, _ = datasets.load(tmp_path / "f.npz").batch(12, seed=0)
    np.testing.assert_allclose(images.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(images.std(), 1.0, rtol=1e-5)


class Tiny(nn.Module):
    """A small classifier with nn.ReLU modules (NASWOT hooks them) and no BatchNorm."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(24, classes)

    def forward(self, x):
        return self.head(self.pool(self.relu(self.conv(x))).flatten(1))


def tiny_npz(tmp_path, count: int = 48, classes: int = 10, side: int = 32, name: str = "tiny.npz") -> str:
    rng = np.random.default_rng(11)
    path = tmp_path / name
    np.savez(path, images=rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8),
             labels=rng.integers(0, classes, count))
    return str(path)


def test_proxies_see_the_real_batch_and_labels(tmp_path):
    path = tiny_npz(tmp_path)
    images, labels = datasets.load(path).batch(16, seed=4)
    batch = torch.from_numpy(images)
    torch.manual_seed(0)
    model = Tiny().double()
    kwargs = dict(batch_size=16, seed=4, num_classes=10, init=None)
    real = compute_proxies(model, ["naswot", "grad_norm"], data=path, **kwargs)
    by_hand = compute_proxies(model, ["naswot", "grad_norm"], inputs=batch, **kwargs)
    gaussian = compute_proxies(model, ["naswot", "grad_norm"], input_shape=(3, 32, 32), **kwargs)
    # NASWOT reads no labels: the real batch fed by hand gives the same value, Gaussian noise another.
    assert real["naswot"] == pytest.approx(by_hand["naswot"], rel=1e-12)
    assert real["naswot"] != pytest.approx(gaussian["naswot"], rel=1e-6)
    # GradNorm with the file's labels: sqrt(sum ||dL/dtheta||^2), L the mean cross-entropy of the
    # training-mode forward against them (the batch fed by hand gets random labels instead).
    work = Tiny().double()
    work.load_state_dict(model.state_dict())
    loss = F.cross_entropy(work(batch.double()), torch.from_numpy(labels))
    grads = torch.autograd.grad(loss, list(work.parameters()))
    assert real["grad_norm"] == pytest.approx(float(torch.sqrt(sum((g ** 2).sum() for g in grads))), rel=1e-10)
    assert real["grad_norm"] != pytest.approx(by_hand["grad_norm"], rel=1e-6)


def test_vf_score_with_data(tmp_path):
    import vkdnw_fast as vf

    path = tiny_npz(tmp_path)
    torch.manual_seed(2)
    model = Tiny()
    images, _ = datasets.load(path).batch(16, seed=1)
    real = vf.score(model, batch_size=16, seed=1, data=path)  # the shape comes from the file
    by_hand = vf.score(model, torch.from_numpy(images), seed=1)
    np.testing.assert_array_equal(real.eigenvalues.numpy(), by_hand.eigenvalues.numpy())
    assert real.vkdnw != pytest.approx(vf.score(model, input_shape=(3, 32, 32), batch_size=16, seed=1).vkdnw,
                                       rel=1e-6)


def test_naswot_128_takes_128_real_images(tmp_path):
    path = tiny_npz(tmp_path, count=130)
    torch.manual_seed(1)
    model = Tiny().double()
    images, _ = datasets.load(path).batch(128, seed=0)
    value = compute_proxies(model, "naswot_128", data=path, seed=0, init=None)["naswot_128"]
    assert value == pytest.approx(compute_proxies(model, "naswot", inputs=torch.from_numpy(images), seed=0,
                                                  init=None)["naswot"], rel=1e-12)


def test_score_architecture_with_data(tmp_path):
    path = tiny_npz(tmp_path, count=70)
    space = spaces.from_spec({"name": "nb201", "dataset": "cifar10"})
    arch = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    images, labels = datasets.load(path).batch(64, seed=0)
    real = score_architecture(space, arch, ["snip"], data=path)
    # The same network and batch through compute_proxies, which takes the real labels from the file too.
    by_hand = compute_proxies(space.build_model(arch), "snip", data=path, space=space, arch=arch)
    assert real["snip"] == pytest.approx(by_hand["snip"], rel=1e-9)
    assert real["snip"] != pytest.approx(score_architecture(space, arch, ["snip"])["snip"], rel=1e-4)
    with pytest.raises(DataError, match=re.escape(path) + ".*3x32x32.*3x16x16"):
        score_architecture(spaces.from_spec({"name": "nb201", "dataset": "ImageNet16-120"}), arch, ["snip"], data=path)


def error(tmp_path, name: str, obj=None, raw: bytes | None = None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    elif name.endswith(".npz"):
        np.savez(path, **obj)
    else:
        write_pickle(path, obj)
    with pytest.raises(DataError) as info:
        datasets.load(path).batch(4, seed=0)
    assert str(path) in str(info.value)
    return str(info.value)


def test_error_messages(tmp_path):
    rows = cifar_rows(6, 0)
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "absent")) + ": no such data file"):
        datasets.load(tmp_path / "absent")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match="not an extracted CIFAR archive"):
        datasets.load(tmp_path / "empty_dir")
    partial = tmp_path / "cifar-10-batches-py"
    partial.mkdir()
    write_cifar10(partial / "data_batch_1", count=6)
    with pytest.raises(DataError, match="without data_batch_2, data_batch_3, data_batch_4, data_batch_5"):
        datasets.load(partial)
    assert "not a readable CIFAR python-format batch" in error(tmp_path, "garbage", raw=b"not a pickle at all")
    assert "pickled list, not a CIFAR batch" in error(tmp_path, "a_list", [1, 2, 3])
    assert "needs the keys data and labels" in error(tmp_path, "no_labels", {b"data": rows})
    assert "data must be (N, 3072) uint8" in error(tmp_path, "short_rows", {b"data": rows[:, :100], b"labels": [0] * 6})
    assert "labels must be 6 integers" in error(tmp_path, "few_labels", {b"data": rows, b"labels": [0] * 5})
    assert "non-negative, the smallest is -1" in error(tmp_path, "negative", {b"data": rows, b"labels": [0] * 5 + [-1]})
    assert "not a readable .npz" in error(tmp_path, "broken.npz", raw=b"PK not a zip")
    assert "missing labels" in error(tmp_path, "nolabels.npz", {"images": np.zeros((6, 8, 8, 3), np.uint8)})
    assert "(N, H, W, C) or (N, C, H, W)" in error(tmp_path, "flat.npz", {"images": np.zeros((6, 8, 8), np.uint8),
                                                                           "labels": np.zeros(6, int)})
    assert "cannot tell the channel axis" in error(tmp_path, "ambiguous.npz", {"images": np.zeros((6, 3, 8, 3), np.uint8),
                                                                               "labels": np.zeros(6, int)})
    assert "uint8 or float" in error(tmp_path, "ints.npz", {"images": np.zeros((6, 8, 8, 3), np.int32),
                                                            "labels": np.zeros(6, int)})
    assert "channel 0 is constant" in error(tmp_path, "flat_channel.npz", {"images": np.zeros((6, 8, 8, 1), np.uint8),
                                                                          "labels": np.zeros(6, int)})
    assert "a batch of 4 images is needed, it holds 3" in error(tmp_path, "three", {b"data": rows[:3], b"labels": [0] * 3})
    path = tiny_npz(tmp_path, count=20, classes=100, side=8, name="hundred.npz")
    with pytest.raises(DataError, match=re.escape(path) + r": it has labels up to \d+; arch 'x' has 10 classes"):
        compute_proxies(Tiny(), "naswot", data=path, batch_size=8, num_classes=10, arch="x")


def test_evaluate_cli_with_data(tmp_path, capsys):
    path = tiny_npz(tmp_path, count=70)
    out = tmp_path / "run"
    # 4 architectures: the random-forest ranking of the report needs 2 to train and 2 to test.
    common = ["nb201", "evaluate", "--limit", "4", "--seeds", "1", "--proxies", "naswot", "--quiet",
              "--out", str(out)]
    assert cli.main([*common, "--data", path]) == 0
    assert f"scored on real images from {path}" in capsys.readouterr().out
    saved = json.loads((out / "run.json").read_text())
    assert saved["data"] == path
    space = spaces.from_spec({"name": "nb201", "dataset": "cifar10"})
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(records) == 4
    record = records[0]
    # float32 forwards: the evaluation scores with one torch thread, this process with the machine's
    # (the same batch and weights; summation order alone differs, ~1e-8 relative)
    assert record["values"] == pytest.approx(score_architecture(space, record["arch"], ["naswot"], data=path),
                                             rel=1e-6)
    # The data are part of the run: resuming with other data, or with none, is refused.
    other = tiny_npz(tmp_path, count=70, name="other.npz")
    assert cli.main([*common, "--data", other]) == 2
    assert "data (stored" in capsys.readouterr().err
    assert cli.main(common) == 2
    # A file that cannot feed the networks fails before anything is scored.
    assert cli.main([*common[:-1], str(tmp_path / "run2"), "--data", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz: no such data file" in capsys.readouterr().err
    assert not (tmp_path / "run2" / "results.jsonl").exists()


def test_spec_keeps_old_runs_and_refuses_other_data(tmp_path):
    plain = EvaluationSpec(proxies=("flops",), limit=2, seeds=(0,))
    assert "data" not in plain.to_json()  # run.json of a Gaussian run reads as it always did
    path = tiny_npz(tmp_path)
    open_results(tmp_path / "run", EvaluationSpec(proxies=("flops",), limit=2, seeds=(0,), data=path))
    with pytest.raises(ValueError, match="data"):
        open_results(tmp_path / "run", plain)


def test_search_cli_data(tmp_path, capsys):
    from vkdnw_fast.search import cli as search_cli

    path = tiny_npz(tmp_path, count=70)
    out = tmp_path / "search"
    command = ["--space", "nb201", "--algorithm", "naswot", "--proxy", "naswot", "--samples", "2", "--no-progress",
               "--out", str(out)]
    assert search_cli.main([*command, "--data", path]) == 0
    assert json.loads((out / "run.json").read_text())["data"] == path
    assert json.loads((out / "results.json").read_text())["data"] == path
    space = spaces.from_spec({"name": "nb201", "dataset": "cifar10", "subset": "all"})
    record = json.loads((out / "scores.jsonl").read_text().splitlines()[0])
    # one scoring thread there, the machine's here: float32 summation order differs (~1e-8)
    assert record["values"]["naswot"] == pytest.approx(
        score_architecture(space, record["arch"], ["naswot"], data=path)["naswot"], rel=1e-6)
    with pytest.raises(SystemExit):
        search_cli.main(command)  # the scores were computed on the file: Gaussian ones are another protocol
    assert "data (stored" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        search_cli.main(["--space", "nb201", "--algorithm", "random", "--samples", "2", "--out", str(tmp_path / "r"),
                         "--data", path])
    assert "--data not used by --algorithm random" in capsys.readouterr().err


def test_search_refuses_scores_computed_on_other_data(tmp_path, capsys):
    from vkdnw_fast.search import cli as search_cli

    path = tiny_npz(tmp_path)
    evaluated = tmp_path / "evaluated"
    open_results(evaluated, EvaluationSpec(proxies=("naswot",), subset="all", seeds=(0,), data=path))
    with pytest.raises(SystemExit):
        search_cli.main(["--space", "nb201", "--algorithm", "naswot", "--proxy", "naswot", "--samples", "2",
                         "--scores-from", str(evaluated), "--out", str(tmp_path / "search")])
    assert f"scored on {path}, the search scores on Gaussian noise" in capsys.readouterr().err


def test_score_cli_with_data(tmp_path, monkeypatch, capsys):
    import sys

    import vkdnw_fast as vf

    (tmp_path / "tiny_data_nets.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(3, 4, 3)\n"
        "        self.fc = torch.nn.Linear(4, 5)\n"
        "    def forward(self, x):\n"
        "        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))\n")
    path = tiny_npz(tmp_path, count=20, classes=5, side=8)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["score", "--model", "tiny_data_nets:Net", "--data", path, "--batch-size", "16", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    import tiny_data_nets

    images, _ = datasets.load(path).batch(16, seed=0)
    assert printed["vkdnw"] == pytest.approx(vf.score(tiny_data_nets.Net(), torch.from_numpy(images)).vkdnw, abs=1e-12)
    assert cli.main(["score", "--model", "tiny_data_nets:Net", "--data", path, "--input-shape", "3,16,16"]) == 2
    assert "its images are 3x8x8 (C x H x W); the network takes 3x16x16" in capsys.readouterr().err
