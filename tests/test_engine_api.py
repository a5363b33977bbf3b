"""What a user's own model meets: samplers found along the class hierarchy (subclasses that keep
or override their base's forward), the layers left out and why, outputs that are not a bare
tensor (``logits=``), and samples that interact. Each checked against the float64 oracle."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vkdnw_fast as vf
import vkdnw_fast.reference as reference
from vkdnw_fast import ops
from vkdnw_fast.engine import least_memory_plans, samples_at_most
from vkdnw_fast.init import initialise
from vkdnw_fast.prepare import probe_forward
from vkdnw_fast.samplers import WeightSampler, register_sampler, sampler_for
from vkdnw_fast.samplers.conv import ConvSampler
from vkdnw_fast.samplers.registry import overridden_methods
from vkdnw_fast.proxies import ProxyError, compute_proxies

from fisher_oracle import entropy_of, oracle_fisher


def initialised(model, seed=0):
    initialise(model, "kaiming_normal_fan_in", torch.Generator().manual_seed(seed))
    return model.double()


def copies(model):
    """A maker of copies of one model (parameters the initialisation leaves alone, like
    MultiheadAttention's in_proj_weight, come from the constructor's draw)."""
    return lambda: copy.deepcopy(model)


def batch(seed=1, n=6, shape=(3, 6, 6)):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def config(preset, **fields):
    return vf.FisherConfig.preset(preset, init=None, **fields)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


def coords_of(result):
    return [(w.split("[")[0], int(w.split("[")[1][:-1])) for w in result.weights]


def assert_matches_oracle(make, preset, x, expected_weights=None, **fields):
    """Engine's Fisher matrix and entropy against the oracle on the same sampled coordinates;
    ``expected_weights`` (names) pins which coordinates those are, ``fields`` the configuration's."""
    result = vf.score(make(), x, config=config(preset, **fields))
    if expected_weights is not None:
        assert result.weights == expected_weights
    truth = oracle_fisher(make(), x, coords_of(result), preset)
    assert relative_error(vf.fisher_matrix(make(), x, config=config(preset, **fields)), truth) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), abs=1e-9)
    return result


# --- 1. Samplers along the class hierarchy -------------------------------------------------------

class PlainConvSub(nn.Conv2d):
    """Inherits everything: the Conv2d sampler serves it as it is."""


class PlainLinearSub(nn.Linear):
    pass


class BatchNormAct2d(nn.BatchNorm2d):
    """As timm's: batch_norm applied directly, then an activation inside forward. The module's
    output is act(bn(x)), so a tap on it would see the wrong gradient."""

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                         self.momentum or 0.0, self.eps)
        return torch.relu(x) * 1.5


class SuperAct(nn.BatchNorm2d):
    def forward(self, x):
        return torch.tanh(super().forward(x))


class SameConv(nn.Conv2d):
    """As timm's Conv2dSame: pads in forward, then the convolution without padding."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ScaledLinear(nn.Linear):
    def forward(self, x):
        return 2.0 * super().forward(x) + 1.0


class SubclassNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = PlainConvSub(3, 6, 3, padding=1, bias=False)
        self.bn1 = BatchNormAct2d(6)
        self.conv2 = SameConv(6, 8, 2, stride=2)
        self.bn2 = SuperAct(8)
        self.fc1 = ScaledLinear(8, 8)
        self.fc2 = PlainLinearSub(8, classes)

    def forward(self, x):
        x = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.mean((2, 3)))))


@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_subclasses_of_sampled_layers_match_the_oracle(preset):
    x = batch()
    make = copies(initialised(SubclassNet()))
    names = [n for n, _ in make().named_parameters()] if preset == "paper" else \
        ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    result = assert_matches_oracle(make, preset, x, [f"{n}[0]" for n in names])
    assert result.skipped == {}
    assert result.aleph == (len(names) if preset == "paper" else 4)


def test_subclasses_in_float32_are_verified_and_close_to_the_oracle():
    """The op tap's check allows float32 rounding (no false refusal) and the result stays exact."""
    model, x = initialised(SubclassNet()), batch()
    result = vf.score(copy.deepcopy(model).float(), x.float(), config=config("exact"))
    truth = oracle_fisher(copy.deepcopy(model), x, coords_of(result), "exact")
    assert relative_error(vf.fisher_matrix(model.float(), x.float(), config=config("exact")), truth) < 1e-4


def test_final_linear_subclass_overriding_forward_is_not_taken_for_the_features_plan():
    """A final Linear subclass that keeps nn.Linear's forward is taken as z = W h + b (D = 8 unit
    cotangents); one returning 2 (W h + b) + 1 must not be: its plan is another, and asking for
    'features' is an error."""
    model = SubclassNet(classes=12)
    model.fc2 = ScaledLinear(8, 12)
    result = assert_matches_oracle(copies(initialised(model)), "exact", batch())
    assert not result.strategy.startswith("features")
    with pytest.raises(ValueError, match="final nn.Linear"):
        vf.score(initialised(model), batch(), config=config("exact", strategy="features"))
    model.fc2 = PlainLinearSub(8, 12)
    result = assert_matches_oracle(copies(initialised(model)), "exact", batch(), strategy="features")
    assert result.strategy.startswith("features (D=8")


class StandardisedConv(nn.Conv2d):
    """Transforms its weight before the convolution (timm's StdConv2d): no Conv2d formula applies."""

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True))
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class StridedConv(nn.Conv2d):
    """Applies its own weight but with another stride than its attribute says."""

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, 2, self.padding)


@pytest.mark.parametrize("conv, reason", [
    (StandardisedConv, "the forward never applied them through the module"),
    (StridedConv, "StridedConv overrides Conv2d.forward and applies its parameters with conv2d differently from "
                  "Conv2d.forward (another output for the same input), so the Conv2d sampler does not apply"),
])
def test_subclass_whose_forward_breaks_the_formula_takes_the_general_path(conv, reason):
    model = SubclassNet()
    model.conv1 = conv(3, 6, 3, padding=1, bias=False)
    result = assert_matches_oracle(copies(initialised(model)), "exact", batch(), strategy="rows")
    assert list(result.general) == ["conv1.weight[0]"] and reason in result.general["conv1.weight[0]"]
    assert result.strategy == "rows (K=4 factor rows) + general (1 forward-mode tangents)"


# --- 2. What a layer is: aleph, the exact selection and the samplers agree ------------------------

class TinyViT(nn.Module):
    """torchvision's ViT in small: patch convolution, class token, positional embedding,
    nn.TransformerEncoder (its attention's out_proj is a Linear subclass applied by a functional call)."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 3, stride=3)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 5, dim))
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=12, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], 1) + self.pos
        return self.head(self.encoder(tokens)[:, 0])


def tiny_vit():
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the attention's in_proj_weight
        return initialised(TinyViT())


# The oracle vmaps scaled-dot-product attention, which has no batching rule (a loop, and a warning).
@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
def test_vit_layers_are_each_sampled_once_by_a_tap():
    """out_proj, a Linear that nn.MultiheadAttention applies by a functional call, is tapped by the
    attention's sampler there: every layer has a tap, none takes the general path."""
    x = batch()
    make = copies(tiny_vit())
    sampled = ["patch"] + [f"encoder.layers.{i}.{m}" for i in range(2) for m in ("self_attn.out_proj", "linear1",
                                                                                   "linear2")] + ["head"]
    result = assert_matches_oracle(make, "exact", x, [f"{name}.weight[0]" for name in sampled])
    assert result.skipped == {} and result.general == {}
    # aleph counts every layer, out_proj included; each is sampled.
    assert result.aleph == 8 == result.num_weights


def test_layers_beyond_max_weights_are_named():
    result = vf.score(initialised(SubclassNet()), batch(), config=config("exact", max_weights=3))
    assert result.skipped == {"fc2": "beyond the first max_weights=3 sampleable layers"}
    paper = vf.score(initialised(SubclassNet()), batch(), config=config("paper", max_weights=3))
    assert list(paper.skipped) == [n for n, _ in SubclassNet().named_parameters()][3:]


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
def test_paper_preset_samples_every_parameter_of_a_vit():
    result = assert_matches_oracle(copies(tiny_vit()), "paper", batch(),
                                   [f"{name}[0]" for name, _ in tiny_vit().named_parameters()])
    assert "no weight sampler is registered for TinyViT" in result.general["cls_token[0]"]


# --- 4. Samples that interact ----------------------------------------------------------------------

class BatchCentre(nn.Module):
    def forward(self, x):
        return x - x.mean(0, keepdim=True)


class CentredNet(SubclassNet):
    """Mixes the batch in a module of its own, after the first convolution."""

    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.ReLU(), BatchCentre())

    def forward(self, x):
        x = self.bn2(self.conv2(self.block(self.bn1(self.conv1(x)))))
        return self.fc2(torch.relu(self.fc1(x.mean((2, 3)))))


class MixingForward(SubclassNet):
    """Mixes the batch in its own forward code, between two modules."""

    def forward(self, x):
        x = self.bn1(self.conv1(x))
        x = x + x.roll(1, 0)
        x = self.bn2(self.conv2(x))
        return self.fc2(torch.relu(self.fc1(x.mean((2, 3)))))


@pytest.mark.parametrize("model, message", [
    (CentredNet, r"changes sample 1's output of BatchCentre 'block.1', the first module where it happens"),
    (MixingForward, r"changes sample 1's input of SameConv 'conv2': the model's own forward \(MixingForward\) "
                    r"mixes the samples before calling it"),
])
@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_samples_that_interact_are_named(model, message, preset):
    with pytest.raises(ValueError, match=message):
        vf.score(initialised(model()), batch(), config=config(preset))


# --- 3. Outputs that are not a bare tensor ----------------------------------------------------------

class DictOut(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)
        return {"features": torch.tanh(logits[:, :3]), "out": logits}


class TupleOut(DictOut):
    def forward(self, x):
        return tuple(super().forward(x).values())


@dataclasses.dataclass
class Output:
    logits: torch.Tensor
    aux: torch.Tensor


class DataclassOut(DictOut):
    def forward(self, x):
        out = super().forward(x)
        return Output(logits=out["out"], aux=out["features"])


class SingleTensorList(DictOut):
    def forward(self, x):
        return [self.net(x)]


@pytest.mark.parametrize("wrapper, logits", [
    (DictOut, "out"), (DictOut, lambda out: out["out"]), (TupleOut, 1), (DataclassOut, None),
    (DataclassOut, "logits"), (SingleTensorList, None),
])
@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_structured_output_scores_as_the_bare_model(wrapper, logits, preset):
    bare, x = initialised(SubclassNet()), batch()
    expected = vf.score(bare, x, config=config(preset))
    wrapped = wrapper(copy.deepcopy(bare))
    result = vf.score(wrapped, x, config=config(preset), logits=logits)
    assert result.vkdnw == pytest.approx(expected.vkdnw, rel=1e-12, abs=1e-12)
    assert torch.allclose(result.eigenvalues, expected.eigenvalues, rtol=1e-12, atol=0)
    assert result.weights == [f"net.{name}" for name in expected.weights]
    matrix = vf.fisher_matrix(wrapped, x, config=config(preset), logits=logits)
    assert relative_error(matrix, vf.fisher_matrix(bare, x, config=config(preset))) < 1e-12


def test_structured_output_in_forward_mode_and_the_reference():
    bare, x = initialised(SubclassNet()), batch()
    expected = vf.fisher_matrix(bare, x, config=config("exact"))
    wrapped = DictOut(copy.deepcopy(bare))
    forward = vf.fisher_matrix(wrapped, x, config=config("exact", strategy="forward"), logits="out")
    assert relative_error(forward, expected) < 1e-12
    slow = reference.fisher_matrix(wrapped, x, config=config("exact"), logits="out")
    assert relative_error(slow, expected) < 1e-12


def test_structured_output_in_the_proxies():
    bare = initialised(SubclassNet())
    names = ["vkdnw", "synflow", "grad_norm", "jacov", "zico"]
    expected = compute_proxies(bare, names, input_shape=(3, 6, 6), batch_size=8, init=None)
    wrapped = compute_proxies(DictOut(copy.deepcopy(bare)), names, input_shape=(3, 6, 6), batch_size=8,
                              init=None, logits="out")
    assert wrapped == pytest.approx(expected, rel=1e-12, abs=1e-12)
    with pytest.raises(ProxyError, match=r"DictOut returned dict\('features': Tensor\(1, 3\), 'out': Tensor\(1, 5\)\): "
                                         r"which part is the logits is ambiguous"):
        compute_proxies(DictOut(copy.deepcopy(bare)), ["synflow"], input_shape=(3, 6, 6), batch_size=8, init=None,
                        num_classes=5)


@pytest.mark.parametrize("wrapper, logits, message", [
    (TupleOut, None, r"TupleOut returned tuple\(Tensor\(6, 3\), Tensor\(6, 5\)\): which part is the logits is "
                     r"ambiguous; pass logits= \(a key, an index, an attribute name, or a callable"),
    (DictOut, "logit", r"DictOut returned dict\('features': Tensor\(6, 3\), 'out': Tensor\(6, 5\)\): it has no "
                       r"'logit'"),
    (TupleOut, 2, r"TupleOut returned tuple\(.*\): it has no 2"),
    (DataclassOut, "scores", r"DataclassOut returned Output\(logits=Tensor\(6, 5\), aux=Tensor\(6, 3\)\): it has no "
                             r"'scores'"),
    (DictOut, lambda out: out, r"the logits of DictOut are a dict; scoring needs one \(N, C\) tensor"),
])
def test_ambiguous_or_missing_logits_are_errors_naming_the_output(wrapper, logits, message):
    with pytest.raises(TypeError, match=message):
        vf.score(wrapper(initialised(SubclassNet())), batch(), config=config("exact"), logits=logits)


# --- Registering a sampler (the README's examples) ---------------------------------------------------

class CheckedConv(nn.Conv2d):
    """Overrides forward but computes exactly Conv2d's: registering the Conv2d sampler for it
    explicitly skips the per-call verification an overriding subclass otherwise gets."""

    def forward(self, x):
        if x.dim() != 4:
            raise ValueError("CheckedConv takes (N, C, H, W)")
        return super().forward(x)


class ChannelScale(nn.Module):
    """A layer of one's own: y[n, c] = weight[c] * x[n, c]."""

    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1)


register_sampler(CheckedConv)(ConvSampler)


@register_sampler(ChannelScale)
class ChannelScaleSampler(WeightSampler):
    """d y[n, c, l] / d weight[c] = x[n, c, l]: a 1-d correlation of input channel c with output
    gradient channel c, which is what ``ops.sampled_grad`` computes for the coordinate (c, c, 0)."""

    sampled_params = ("weight",)

    def coordinate(self, module, param_name, flat_index):
        return (flat_index, flat_index, 0)  # (output channel, input channel, kernel offset)

    def capture(self, module, plan, args):
        return (plan.keep(args[0].flatten(2), 1),)  # only the input channels the coordinates read

    def grads(self, module, plan, saved, grad_output):
        return ops.sampled_grad(saved[0], grad_output.flatten(2), plan.op_coords, (1,), (0,), (1,), 1)


class OwnLayersNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv = CheckedConv(3, 6, 3, padding=1)
        self.scale = ChannelScale(6)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        return self.fc(torch.relu(self.scale(self.conv(x))).mean((2, 3)))


@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_registered_samplers_match_the_oracle(preset):
    model = initialised(OwnLayersNet())
    with torch.no_grad():
        model.scale.weight.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(2))
    make = copies(model)
    # The explicit registration wins over the Conv2d base: its own instance, tapped on the output.
    assert sampler_for(model.conv) is not sampler_for(nn.Conv2d(1, 1, 1)) and overridden_methods(model.conv) == []
    names = ["conv.weight", "conv.bias", "scale.weight", "fc.weight", "fc.bias"] if preset == "paper" else \
        ["conv.weight", "fc.weight"]  # ChannelScale is not a layer (vkdnw_fast.layers)
    assert_matches_oracle(make, preset, batch(), [f"{name}[0]" for name in names])


# --- The probe: what independent models pass, what it returns ----------------------------------------

class PerSampleNorms(nn.Module):
    """GroupNorm and LayerNorm normalise within each sample: no interaction."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gn = nn.GroupNorm(2, 4)
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.ln(self.gn(self.conv(x)).mean((2, 3))))


def test_probe_passes_independent_models_and_lists_the_modules_called():
    model = PerSampleNorms().double().eval()
    assert probe_forward(model, batch()) == set(model.modules())
    vit = tiny_vit().eval()
    called = probe_forward(vit, batch())
    attention = vit.encoder.layers[0].self_attn
    assert attention in called and attention.out_proj not in called and vit.encoder.layers[1].linear2 in called
    # One sample: nothing can interact, the modules are still listed.
    assert vit.head in probe_forward(vit, batch(n=1))


def _float32_precision() -> str:
    """What cuDNN convolutions in float32 run at now, read through the API ieee_float32 sets."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(conv, "fp32_precision"):
        return conv.fp32_precision
    return "tf32" if torch.backends.cudnn.allow_tf32 else "ieee"


def test_ieee_float32_turns_tf32_off_for_the_block_and_restores_the_callers_setting():
    from vkdnw_fast.prepare import ieee_float32

    before = _float32_precision()
    assert before == "tf32"  # PyTorch's default for cuDNN convolutions, which the engine must not score with
    with pytest.raises(RuntimeError, match="inside"):
        with ieee_float32():
            assert _float32_precision() == "ieee"
            raise RuntimeError("inside")
    assert _float32_precision() == before


def test_every_scoring_forward_runs_in_ieee_float32():
    spy = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    seen = []  # the scorers run on copies of the model, which keep its hooks
    spy.register_forward_pre_hook(lambda module, args: seen.append(_float32_precision()))
    vf.score(spy, input_shape=(3, 8, 8), batch_size=4)
    compute_proxies(spy, ["naswot", "synflow", "jacov"], input_shape=(3, 8, 8), batch_size=4, num_classes=5)
    reference.score(spy, input_shape=(3, 8, 8), batch_size=4)
    assert seen and set(seen) == {"ieee"}
    assert _float32_precision() == "tf32"


# --- Chunks of samples ----------------------------------------------------------------------------

@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("strategy", ["rows", "features", "forward"])
def test_a_batch_scored_in_chunks_of_samples_matches_the_oracle(preset, strategy):
    """sample_chunk=4 of 10 samples (4, 4 and 2, each a forward and its passes): the BatchNorm statistics are
    still the whole batch's, as the oracle's are (a chunk's own would differ)."""
    result = assert_matches_oracle(copies(initialised(SubclassNet())), preset, batch(n=10), sample_chunk=4,
                                   strategy=strategy)
    assert result.plan == strategy and result.strategy.startswith(strategy)
    assert ", in 3 chunks of 4 samples" in result.strategy


@pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")
def test_the_general_path_in_chunks_of_samples_matches_the_oracle():
    """The ViT's class token and positional embedding (no tap takes them) by the general path, chunk by chunk."""
    result = assert_matches_oracle(copies(tiny_vit()), "paper", batch(n=5), sample_chunk=2)
    assert "cls_token[0]" in result.general and ", in 3 chunks of 2 samples" in result.strategy


def test_least_memory_plans_score_rows_in_chunks_of_16_samples():
    """Under engine.least_memory_plans auto takes rows (forward mode otherwise, 4 tangents against K=9) and 40
    samples go in chunks of 16, 16 and 8; the Fisher matrix is the oracle's."""
    make, x = copies(initialised(SubclassNet(classes=10))), batch(n=40)
    assert vf.score(make(), x, config=config("exact")).plan == "forward"
    with least_memory_plans():
        result = assert_matches_oracle(make, "exact", x)
    assert result.plan == "rows" and result.strategy.startswith("rows (K=9 factor rows)")
    assert ", in 3 chunks of 16 samples" in result.strategy


def test_samples_at_most_chunks_the_batch_and_keeps_the_plan_auto_chooses():
    """engine.samples_at_most (the worker pool's way to fit a large network beside others): auto keeps forward
    mode, 10 samples go in chunks of 4, 4 and 2, the Fisher matrix is the oracle's; a config's own smaller chunk,
    and an inner block's, stay the smaller."""
    make, x = copies(initialised(SubclassNet(classes=10))), batch(n=10)
    with samples_at_most(4):
        result = assert_matches_oracle(make, "exact", x)
        assert result.plan == "forward" and ", in 3 chunks of 4 samples" in result.strategy
        assert ", in 5 chunks of 2 samples" in vf.score(make(), x, config=config("exact", sample_chunk=2)).strategy
        with samples_at_most(8):
            assert ", in 3 chunks of 4 samples" in vf.score(make(), x, config=config("exact")).strategy
    assert "chunks" not in vf.score(make(), x, config=config("exact")).strategy
    with pytest.raises(ValueError, match="samples_at_most needs at least one sample a chunk, got 0"):
        with samples_at_most(0):
            pass
