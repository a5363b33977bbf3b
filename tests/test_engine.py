"""The Fisher engine against the independent float64 oracle, on small models of every shape the
engine handles, for both presets and every pass plan."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import gc
import warnings
import weakref

import pytest
import torch
from torch import nn

import vkdnw_fast as vf
import vkdnw_fast.reference as reference
from vkdnw_fast import engine, ops
from vkdnw_fast.init import initialise
from vkdnw_fast.selection import select_weights

from fisher_oracle import entropy_of, oracle_fisher


class PlainCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


class PooledCNN(PlainCNN):
    """Ends in adaptive average pooling, whose forward-mode rule has no vmap batching rule."""
    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))


class ResidualCNN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True))
        self.conv_a = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_b = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        x = self.stem(x)
        y = self.bn_b(self.conv_b(torch.relu(self.bn_a(self.conv_a(x)))))
        y += x  # in-place residual add after a sampled BN
        return self.head(torch.relu_(y).mean((2, 3)))


class GroupedCNN(nn.Module):
    """Grouped, depthwise (dilated, strided, 'same'-padded), asymmetrically padded (even kernel,
    'same') and 1-d convolutions."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 12, 3, stride=2, padding=1, groups=4, bias=False)
        self.bn = nn.BatchNorm2d(12)
        self.depthwise = nn.Conv2d(12, 12, 3, padding="same", dilation=2, groups=12)
        self.even = nn.Conv2d(12, 12, 4, padding="same", bias=False)
        self.temporal = nn.Conv1d(12, 6, 2, stride=2, padding=1)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.grouped(torch.relu(self.conv(x)))))
        x = torch.relu(self.even(torch.relu(self.depthwise(x)))).flatten(2)   # (N, 12, L)
        return self.fc(torch.relu(self.temporal(x)).mean(2))


class MLP(nn.Module):
    def __init__(self, classes=10, hidden=16):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.net(x)


class PostScaled(PlainCNN):
    """Logits are not the output of the final Linear: 'features' does not apply."""

    def forward(self, x):
        return 0.5 * super().forward(x)


MODELS = {
    "plain": lambda: PlainCNN(10),
    "residual_bn": lambda: ResidualCNN(10),
    "grouped_depthwise": lambda: GroupedCNN(10),
    "mlp": lambda: MLP(10),
    "features_lt_classes": lambda: MLP(classes=12, hidden=4),   # D = 4 < C = 12
    "features_gt_classes": lambda: MLP(classes=3, hidden=16),   # D = 16 > C = 3
    "post_scaled": lambda: PostScaled(7),
    "adaptive_pooled": lambda: PooledCNN(10),
}


def initialised(name, seed=0):
    model = MODELS[name]()
    initialise(model, "kaiming_normal_fan_in", torch.Generator().manual_seed(seed))
    return model.double()


def batch(seed=1, n=6):
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def expected_coords(model, preset):
    """docs/method.md §3, independently: element 0 of the first 128 parameter tensors ('paper') or of the
    weight of the first 128 conv/linear layers ('exact')."""
    if preset == "paper":
        return [(name, 0) for name, _ in list(model.named_parameters())[:128]]
    layers = [name for name, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    return [(f"{name}.weight", 0) for name in layers[:128]]


def config(preset, **fields):
    return vf.FisherConfig.preset(preset, init=None, **fields)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fisher_matrix_and_entropy_match_oracle(name, preset):
    model, x = initialised(name), batch()
    truth = oracle_fisher(initialised(name), x, expected_coords(model, preset), preset)
    result = vf.score(model, x, config=config(preset))
    assert result.weights == [f"{n}[{i}]" for n, i in expected_coords(model, preset)]
    assert relative_error(vf.fisher_matrix(model, x, config=config(preset)), truth) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), abs=1e-9)
    truth_eigenvalues = torch.linalg.eigvalsh(truth).flip(0).clamp_min(0)
    assert torch.allclose(result.eigenvalues, truth_eigenvalues, rtol=1e-8, atol=1e-12 * float(truth_eigenvalues[0]))


@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("strategy", ["rows", "features", "forward"])
@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("name", ["plain", "residual_bn", "grouped_depthwise", "features_lt_classes",
                                  "features_gt_classes"])
def test_every_pass_plan_gives_the_same_matrix(name, preset, strategy, chunk):
    """Chunks of cotangent rows (vmapped backward) or tangents give the same matrix as one at a time."""
    model, x = initialised(name), batch()
    truth = oracle_fisher(initialised(name), x, expected_coords(model, preset), preset)
    result_matrix = vf.fisher_matrix(model, x, config=config(preset, strategy=strategy, pass_chunk=chunk))
    assert relative_error(result_matrix, truth) < 1e-9


@pytest.mark.parametrize("chunk", [2, 64])
def test_chunked_passes_with_the_twin_ops(chunk, monkeypatch):
    """Under vmap the twins batch natively and the compiled op through its vmap rule: same result."""
    model, x = initialised("residual_bn"), batch()
    compiled = vf.fisher_matrix(model, x, config=config("paper", pass_chunk=chunk))
    monkeypatch.setattr(ops, "_has_kernel", lambda op, device: False)
    twin = vf.fisher_matrix(model, x, config=config("paper", pass_chunk=chunk))
    assert relative_error(compiled, twin) < 1e-12


def cpu_allocation_failure() -> RuntimeError:
    """The CPU allocator's own error for an allocation it cannot make (1 EiB). Made on a thread of its own:
    glibc moves a thread whose malloc failed to another of its arenas for good, and the main thread's
    arena is the one the retained heap (``memory.retained_heap``) works in, which later tests check."""
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(torch.empty, 2**60, dtype=torch.uint8).exception()


def simulated_out_of_memory(device: str, what: str) -> BaseException:
    """The error running out of memory raises: a GPU's ``torch.OutOfMemoryError``, or the CPU allocator's own."""
    if device == "cpu":
        return cpu_allocation_failure()
    return torch.OutOfMemoryError(f"CUDA out of memory (simulated: {what})")


def _vmap_out_of_memory_above(limit, tried, monkeypatch, device="cuda"):
    """The engine's vmap, failing when a call maps more than ``limit`` rows or tangents: as a GPU does
    (``torch.OutOfMemoryError``), or as the CPU allocator does past a process's memory limit (a real
    allocation it cannot make: a RuntimeError)."""
    real_vmap = engine.vmap

    def vmap(fn, *args, **kwargs):
        mapped = real_vmap(fn, *args, **kwargs)

        def call(first, *rest):
            tried.append(first.shape[0])
            result = mapped(first, *rest)  # fail as late as possible: after the backward freed what it could
            if first.shape[0] > limit:
                raise simulated_out_of_memory(device, f"{first.shape[0]} rows")
            return result
        return call
    monkeypatch.setattr(engine, "vmap", vmap)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
@pytest.mark.parametrize("name, strategy", [("residual_bn", "rows"), ("residual_bn", "forward"),
                                            ("features_lt_classes", "features")])
def test_a_pass_that_runs_out_of_memory_is_retried_in_halves(name, strategy, device, monkeypatch):
    """A block of 8 rows (or jvp's tangents) that does not fit is retried as 4, then 2, which is kept; the
    matrix is the oracle's (a block failing part-way through its backward still has the graph to retry on)."""
    model, x = initialised(name), batch()
    truth = oracle_fisher(initialised(name), x, expected_coords(model, "paper"), "paper")
    tried = []
    _vmap_out_of_memory_above(2, tried, monkeypatch, device)
    result = vf.fisher_matrix(model, x, config=config("paper", strategy=strategy, pass_chunk=8, tangents="jvp"))
    assert relative_error(result, truth) < 1e-9
    assert tried[:3] == [8, 4, 2] if strategy != "features" else tried[:2] == [4, 2]
    assert max(tried[3 if strategy != "features" else 2:]) <= 2


@pytest.mark.parametrize("device, error, message", [("cuda", torch.OutOfMemoryError, "simulated: 1 rows"),
                                                    ("cpu", RuntimeError, "DefaultCPUAllocator: can't allocate memory")])
def test_out_of_memory_at_one_row_reaches_the_caller(device, error, message, monkeypatch):
    """As the allocator's error, not as a plan that cannot differentiate the model."""
    model, x = initialised("residual_bn"), batch()
    tried = []
    _vmap_out_of_memory_above(0, tried, monkeypatch, device)
    with pytest.raises(error, match=message) as raised:
        vf.fisher_matrix(model, x, config=config("paper", strategy="forward", pass_chunk=8, tangents="jvp"))
    assert not isinstance(raised.value, ValueError)
    assert tried == [8, 4, 2, 1] * 4  # blocks of 8 tangents down to 1, for chunks of 6, 3, 2 and 1 samples


class GraphOutOfMemory(nn.Module):
    """``inner``, as if the graph of its forward outgrew the memory above ``limit`` samples (a forward
    without grad, as the one freezing the batch statistics, fits)."""

    def __init__(self, inner, limit, device, tried):
        super().__init__()
        self.inner, self.limit, self.device = inner, limit, device
        self.record = lambda size: tried.append(size)  # a function survives the scoring's deep copy as itself

    def forward(self, x):
        if torch.is_grad_enabled():
            self.record(x.shape[0])
            if x.shape[0] > self.limit:
                raise simulated_out_of_memory(self.device, f"{x.shape[0]} samples")
        return self.inner(x)


@pytest.mark.parametrize("device", ["cuda", "cpu"])
@pytest.mark.parametrize("preset, strategy", [("exact", "rows"), ("paper", "features"), ("exact", "forward")])
def test_a_forward_that_runs_out_of_memory_is_scored_in_chunks_of_half_as_many_samples(device, preset, strategy):
    """6 samples fail, 3 too, 2 fit: three chunks of 2, the matrix of the whole batch scored at once (with the
    whole batch's BatchNorm statistics under exact)."""
    model, x = initialised("residual_bn"), batch()
    whole = vf.fisher_matrix(model, x, config=config(preset, strategy=strategy))
    tried = []
    wrapped = GraphOutOfMemory(initialised("residual_bn"), 2, device, tried)
    result = vf.score(wrapped, x, config=config(preset, strategy=strategy))
    assert result.strategy.startswith(strategy) and result.strategy.endswith(", in 3 chunks of 2 samples")
    # The probe's two forwards of two samples, then the scoring's: 6 and 3 fail, every chunk after has 2.
    assert tried[:5] == [2, 2, 6, 3, 2] and set(tried[5:]) <= {2}
    assert relative_error(vf.fisher_matrix(wrapped, x, config=config(preset, strategy=strategy)), whole) < 1e-12


@pytest.mark.parametrize("factor", ["cholesky", "sqrt"])
def test_both_exact_factors_give_the_exact_matrix(factor):
    model, x = initialised("residual_bn"), batch()
    truth = oracle_fisher(initialised("residual_bn"), x, expected_coords(model, "exact"), "exact")
    assert relative_error(vf.fisher_matrix(model, x, config=config("exact", factor=factor)), truth) < 1e-9


def test_forward_mode_through_an_op_without_a_batching_rule_is_exact_and_quiet():
    model, x = initialised("adaptive_pooled"), batch()
    truth = oracle_fisher(initialised("adaptive_pooled"), x, expected_coords(model, "exact"), "exact")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # torch's "performance drop" note on the fallback must not reach users
        matrix = vf.fisher_matrix(model, x, config=config("exact", strategy="forward", pass_chunk=4))
    assert relative_error(matrix, truth) < 1e-9


def test_automatic_plan_is_the_cheapest_and_reported():
    x = batch()
    # 11 sampled tensors: 6 factor rows beat 11 tangents (each costing about one cotangent).
    rows = vf.score(ResidualCNN(6).double(), x, config=config("paper"))
    assert rows.strategy.startswith("rows (K=6") and rows.passes == 6 and rows.plan == "rows"
    # 8 sampled tensors (three Linears' weights and biases, BatchNorm's gamma and beta), 12 classes, 4 features.
    lt = vf.score(initialised("features_lt_classes"), x, config=config("paper"))
    assert lt.strategy.startswith("features (D=4") and lt.passes == 4 and lt.num_weights == 8 and lt.plan == "features"
    # 3 sampled weights (one per linear) against 39 factor rows and 50 features: forward mode.
    forward = vf.score(MLP(classes=40, hidden=50).double(), x, config=config("exact"))
    assert forward.strategy.startswith("forward (P=3") and forward.passes == 3 and forward.plan == "forward"
    with pytest.raises(ValueError, match="final nn.Linear"):
        vf.score(initialised("post_scaled"), x, config=config("exact", strategy="features"))


class FrontHeavy(nn.Module):
    """A wide first layer, then a narrow stack of 60: nearly all multiply-accumulates precede every sampled
    layer but the first two, so linearised tangents of the stack's weights cost little. Its logits are scaled (no
    ``features`` plan: they are not a final Linear's output)."""

    def __init__(self, depth=60, classes=60):
        super().__init__()
        self.wide = nn.Linear(3 * 6 * 6, 512)
        self.narrow = nn.Linear(512, 8)
        self.stack = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.Tanh()) for _ in range(depth)])
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        return self.head(self.stack(torch.tanh(self.narrow(torch.tanh(self.wide(x.flatten(1))))))) / 2


def test_each_weights_share_of_the_network_is_its_layers_multiply_accumulates_from_it_on():
    model = FrontHeavy().double()
    weights = select_weights(model, config("exact")).weights
    macs = [108 * 512, 512 * 8] + [8 * 8] * 60 + [8 * 60]  # per sample, in call order
    x = batch()
    counted, _ = engine._layer_census(model, weights, x)
    assert len(weights) == len(macs) == 63
    assert counted.shares == pytest.approx([sum(macs[i:]) / sum(macs) for i in range(63)], rel=1e-12)
    assert counted.layer_calls == 63 and counted.macs == len(x) * sum(macs)


def test_automatic_plan_counts_a_linearised_tangent_by_the_network_after_its_layer():
    """63 tangents against 59 factor rows. Where a batch's layer calls are large the linearised map counts its
    tangents by their shares (about 3.5 in all) and the trace by its forwards: forward mode; jvp's blocks (1.2
    each) take rows, and so does this tiny network's own batch, whose trace and tangents are Python."""
    model, x = FrontHeavy().double(), batch()
    weights = select_weights(model, config("exact")).weights
    small, _ = engine._layer_census(model, weights, x)
    large = dataclasses.replace(small, macs=small.macs * 10**6)  # the same layers at a million times the work
    cpu, auto, by_jvp = torch.device("cpu"), config("exact"), config("exact", tangents="jvp")
    assert sum(large.shares) == pytest.approx(3.43, abs=0.01) and engine._forward_cost(auto, cpu, large) < 9
    assert engine._forward_cost(by_jvp, cpu, large) == engine._forward_cost(auto, cpu, small) == pytest.approx(75.6)
    assert engine._linearised_cost(small) > 100
    plans = [engine._choose(cfg, 59, None, engine._forward_cost(cfg, cpu, counted), 0.0, False)
             for cfg, counted in ((auto, large), (by_jvp, large), (auto, small))]
    assert plans == ["forward", "rows", "rows"]
    chosen = vf.score(model, x, config=auto)
    linearised = vf.score(model, x, config=config("exact", strategy="forward", tangents="linearised"))
    assert chosen.strategy == "rows (K=59 factor rows)" and linearised.strategy == "forward (P=63 tangents)"
    assert linearised.vkdnw == pytest.approx(chosen.vkdnw, abs=1e-9)
    assert torch.allclose(linearised.eigenvalues, chosen.eigenvalues, rtol=1e-8, atol=1e-20)


def test_linearised_trace_is_counted_by_the_batchs_work_per_layer_call():
    """The trace's Python per graph node is amortised by the multiply-accumulates of each layer call: at one
    sample this network's trace counts tens of cotangents, at a large batch of wide convolutions little more than
    the trace's own forwards, and forward mode then wins against the factor rows it lost to."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 20))
    linearised = config("exact", tangents="linearised")
    weights = select_weights(model, linearised).weights

    def counted(samples):
        return engine._layer_census(model, weights, torch.randn(samples, 3, 64, 64))[0]
    per_sample = 64 * 64 * 64 * 3 * 9 + 64 * 64 * 64 * 64 * 9 + 64 * 20
    one, many = counted(1), counted(32)
    assert (one.layer_calls, one.macs) == (3, per_sample) and (many.layer_calls, many.macs) == (3, 32 * per_sample)
    assert engine._trace_cost(one) > 40 and 4 < engine._trace_cost(many) < 7
    # 19 factor rows (20 classes), 64 features; the three tangents' shares sum to about 2.
    plans = [engine._choose(linearised, 19, 64, engine._forward_cost(linearised, torch.device("cpu"), census), 0.0,
                            False) for census in (one, many)]
    assert plans == ["rows", "forward"]


@pytest.mark.parametrize("tangents", ["linearised", "jvp"])
def test_forward_mode_runs_without_the_tapped_forwards_graph(monkeypatch, tangents):
    """The activations the tapped forward saved for its backward are freed before the forward-mode passes
    (the logits and the final Linear's call held them: a TransNAS cell's peak memory fell by a quarter)."""
    model, x = FrontHeavy(depth=4, classes=40).double(), batch()
    saved = []  # a weak reference to each Tanh output, which autograd saves for the Tanh's backward
    for module in model.modules():
        if isinstance(module, nn.Tanh):
            module.register_forward_hook(lambda module, args, output: saved.append(weakref.ref(output)))
    alive = []
    forward_mode = engine._forward_mode

    def counting(*args, **kwargs):
        gc.collect()
        alive.append(sum(ref() is not None for ref in saved))
        return forward_mode(*args, **kwargs)
    monkeypatch.setattr(engine, "_forward_mode", counting)
    result = vf.score(model, x, config=config("exact", strategy="forward", tangents=tangents))
    assert result.strategy == "forward (P=7 tangents)" and saved and alive == [0]


def test_reference_implementation_agrees_with_engine():
    model, x = initialised("grouped_depthwise"), batch()
    for preset in ("paper", "exact"):  # the reference shares no kernel code with the engine
        fast = vf.score(model, x, config=config(preset))
        slow = reference.score(model, x, config=config(preset))
        assert slow.vkdnw == pytest.approx(fast.vkdnw, abs=1e-10)
        assert torch.allclose(slow.eigenvalues, fast.eigenvalues, rtol=1e-9, atol=1e-14)
        assert slow.strategy.startswith("reference") and slow.plan is None


def test_twin_and_compiled_ops_give_the_same_score(monkeypatch):
    model, x = initialised("residual_bn"), batch()
    compiled = vf.score(model, x, config=config("paper"))
    monkeypatch.setattr(ops, "_has_kernel", lambda op, device: False)
    twin = vf.score(model, x, config=config("paper"))
    assert twin.vkdnw == pytest.approx(compiled.vkdnw, abs=1e-12)


def test_float32_engine_matches_float64_oracle_closely():
    model = initialised("residual_bn")
    truth = oracle_fisher(initialised("residual_bn"), batch(), expected_coords(model, "exact"), "exact")
    result = vf.fisher_matrix(model.float(), batch().float(), config=config("exact"))
    assert result.dtype == torch.float64
    assert relative_error(result, truth) < 1e-4


def test_element_policies_pick_the_documented_index():
    model = initialised("plain")
    x = batch()
    relative = vf.score(model, x, config=config("exact", element="relative", element_position=1.0))
    sizes = [m.weight.numel() for m in (model.conv1, model.conv2, model.fc)]
    assert relative.weights == [f"conv1.weight[{sizes[0] - 1}]", f"conv2.weight[{sizes[1] - 1}]",
                                f"fc.weight[{sizes[2] - 1}]"]
    random_a = vf.score(model, x, config=config("exact", element="random", element_seed=3))
    random_b = vf.score(model, x, config=config("exact", element="random", element_seed=3))
    assert random_a.weights == random_b.weights
    coords = [(w.split("[")[0], int(w.split("[")[1][:-1])) for w in random_a.weights]
    truth = oracle_fisher(initialised("plain"), x, coords, "exact")
    engine = vf.fisher_matrix(model, x, config=config("exact", element="random", element_seed=3))
    assert relative_error(engine, truth) < 1e-9


def test_max_weights_limits_the_sample():
    result = vf.score(initialised("residual_bn"), batch(), config=config("paper", max_weights=4))
    assert result.num_weights == 4 and result.weights[0] == "stem.0.weight[0]"
    assert result.aleph == len(list(initialised("residual_bn").parameters()))


def test_aleph_by_preset():
    model = initialised("grouped_depthwise")
    assert vf.score(model, batch(), config=config("paper")).aleph == len(list(model.parameters()))
    assert vf.score(model, batch(), config=config("exact")).aleph == 6   # 5 convs + 1 linear
    result = vf.score(model, batch(), config=config("exact"))
    assert result.single == pytest.approx(result.aleph + result.vkdnw)


def test_score_is_seeded_and_leaves_caller_state_alone():
    model = ResidualCNN(10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    first = vf.score(model, input_shape=(3, 8, 8), batch_size=8, seed=5)
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    again = vf.score(model, input_shape=(3, 8, 8), batch_size=8, seed=5)
    other = vf.score(model, input_shape=(3, 8, 8), batch_size=8, seed=6)
    assert first.vkdnw == again.vkdnw and torch.equal(first.eigenvalues, again.eigenvalues)
    assert other.vkdnw != first.vkdnw


def test_init_none_with_inputs_is_a_function_of_weights_and_inputs():
    model, x = initialised("plain"), batch()
    a = vf.score(model, x, config=config("exact"), seed=0)
    b = vf.score(model, x, config=config("exact"), seed=99)
    assert a.vkdnw == b.vkdnw


def test_init_reproduces_the_documented_distribution():
    model = nn.Conv2d(64, 64, 3)
    initialise(model, "kaiming_normal_fan_in", torch.Generator().manual_seed(0))
    std = (2.0 / (64 * 9)) ** 0.5
    assert float(model.weight.detach().std()) == pytest.approx(std, rel=0.02)
    assert float(model.bias.detach().abs().max()) == 0.0


def test_paper_batchnorm_keeps_fresh_running_statistics():
    """'paper' leaves BN near the identity (running mean 0, var 1); 'exact' uses batch stats."""
    model, x = initialised("residual_bn"), batch()
    paper = vf.fisher_matrix(model, x, config=config("paper"))
    with_batch_stats = vf.fisher_matrix(model, x, config=config("paper", batchnorm="batch"))
    assert relative_error(paper, with_batch_stats) > 1e-3


class TupleOut(PlainCNN):
    def forward(self, x):
        return x, super().forward(x)


class OneClass(PlainCNN):
    def __init__(self):
        super().__init__(classes=1)


class Exploding(PlainCNN):
    def forward(self, x):
        return super().forward(x) * float("inf")


class NoRunningStats(PlainCNN):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(6, track_running_stats=False)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.bn(self.conv1(x)))))
        return self.fc(x.mean((2, 3)))


class Parameterless(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :4]


@pytest.mark.parametrize("model, preset, message", [
    (TupleOut(), "paper", "returned tuple"),
    (OneClass(), "paper", "at least 2 classes"),
    (Exploding(), "paper", "non-finite logits"),
    (NoRunningStats(), "exact", "'bn' has track_running_stats=False"),
    (Parameterless(), "exact", "no weights to sample"),
])
def test_bad_models_get_clear_errors(model, preset, message):
    with pytest.raises((ValueError, TypeError), match=message):
        vf.score(model, input_shape=(3, 6, 6), batch_size=4, config=preset)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="input_shape"):
        vf.score(PlainCNN())
    with pytest.raises(ValueError, match="floating-point tensor"):
        vf.score(PlainCNN(), torch.zeros(4, 3, 6, 6, dtype=torch.bool))
    # Integer inputs are token ids, kept integer: a CNN fails on them, and is told so.
    with pytest.raises(ValueError, match=r"PlainCNN fails on a batch shaped like the scoring batch \(4, 3, 6, 6\) of "
                                         r"integer token ids \(torch.int64, kept integer for a model that looks them "
                                         r"up; pass real-valued inputs as a floating-point tensor\)"):
        vf.score(PlainCNN(), torch.zeros(4, 3, 6, 6, dtype=torch.long))


class OutOfMemoryCNN(nn.Module):
    """A CNN whose forward needs more memory than the process can get."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        raise cpu_allocation_failure()


def test_a_forward_out_of_memory_reaches_the_caller_as_itself():
    with pytest.raises(RuntimeError, match="DefaultCPUAllocator: can't allocate memory") as raised:
        vf.score(OutOfMemoryCNN(), input_shape=(3, 6, 6), batch_size=4)
    assert not isinstance(raised.value, ValueError)


def test_unsupported_conv_padding_mode_is_named():
    model = PlainCNN()
    model.conv1.padding_mode = "reflect"
    with pytest.raises(ValueError, match="Conv2d 'conv1' uses padding_mode='reflect'"):
        vf.score(model, input_shape=(3, 6, 6), batch_size=4, config="exact")


def test_paper_factor_negative_tail_is_an_error_not_nan():
    # Without smoothing, 1 - cumsum(p) rounds to -2.2e-16 before the last class for these
    # logits (9 equal, one far below), and the authors' d_j = sqrt(p_j q_j / q_{j-1}) is NaN.
    class Peaked(PlainCNN):
        def forward(self, x):
            return 0.0 * super().forward(x) + torch.tensor([0.0] * 9 + [-60.0], dtype=x.dtype)
    cfg = vf.FisherConfig.preset("paper", smoothing=0.0, init=None)
    with pytest.raises(ValueError, match="non-finite"):
        vf.score(Peaked().double(), batch(), config=cfg)


def test_config_presets_and_fields():
    paper, exact = vf.FisherConfig.preset("paper"), vf.FisherConfig.preset("exact")
    assert paper.preset_name == "paper" and exact.preset_name == "exact"
    assert (exact.weights, exact.batchnorm, exact.factor, exact.aleph) == ("layers", "batch", "cholesky", "layers")
    assert (paper.weights, paper.batchnorm, paper.smoothing, paper.fp16_smoothing_constants, paper.factor,
            paper.aleph) == ("parameter_tensors", "running", 0.05, True, "paper", "parameter_tensors")
    # The field defaults, the unnamed preset and the default preset are one configuration.
    assert vf.FisherConfig() == vf.FisherConfig.preset() == vf.FisherConfig.preset(vf.DEFAULT_PRESET)
    custom = dataclasses.replace(exact, max_weights=3)
    assert custom.preset_name is None and custom.max_weights == 3
    with pytest.raises(ValueError, match="unknown FisherConfig preset 'papr'"):
        vf.FisherConfig.preset("papr")
    with pytest.raises(ValueError, match=r"unknown FisherConfig field\(s\) \['factr'\]"):
        vf.FisherConfig.preset("exact", factr="sqrt")
    with pytest.raises(ValueError, match="FisherConfig.factor='chol'"):
        vf.FisherConfig(factor="chol")
    with pytest.raises(ValueError, match="only factor='paper' accepts them"):
        vf.FisherConfig.preset("paper", factor="cholesky")
    for chunk in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"FisherConfig.sample_chunk must be None or a positive int, got {chunk!r}"):
            vf.FisherConfig.preset("exact", sample_chunk=chunk)
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.factor = "sqrt"
