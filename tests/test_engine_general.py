"""The engine's general path (weights no sampler's tap can take: class and distillation tokens, positional
embeddings, relative-position bias tables, layer scale, nn.MultiheadAttention's bias_k / bias_v, layers
called on tensors that are not batch-first) and taps under real code (in-place ops, outputs used several
times, modules called several times, scaled-dot-product attention under the batched backward,
nn.MultiheadAttention's projections inside F.multi_head_attention_forward), each against the independent
float64 oracle for both presets."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vkdnw_fast as vf
from vkdnw_fast import engine

from fisher_oracle import entropy_of, oracle_fisher, randomised_float64

# The oracle vmaps attention and adaptive ops without batching rules (a loop, and a warning).
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")


def tokens_of(x):
    """(N, 3, 6, 6) images -> (N, 36, 3) pixel tokens."""
    return x.flatten(2).transpose(1, 2)


class LayerScale(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class ViTTokens(nn.Module):
    """Patch convolution, class and distillation tokens, positional embedding, nn.TransformerEncoder
    (pre-norm, batch-first), layer scale on its output, two heads (DeiT's mean of both)."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 3, stride=3)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 6, dim))
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=12, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.scale = LayerScale(dim)
        self.head = nn.Linear(dim, classes)
        self.head_dist = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)                               # (N, 4, D)
        n = x.shape[0]
        t = torch.cat([self.cls_token.expand(n, -1, -1), self.dist_token.expand(n, -1, -1), t], 1) + self.pos_embed
        t = self.scale(self.encoder(t))
        return (self.head(t[:, 0]) + self.head_dist(t[:, 1])) / 2


class RelativeBiasAttention(nn.Module):
    """Swin-like window attention: a relative-position bias table indexed by a buffer, added to the
    attention logits of scaled_dot_product_attention; Linear q/k/v and projection; layer scale."""

    def __init__(self, dim=8, heads=2, length=9):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.table = nn.Parameter(torch.zeros(2 * length - 1, heads))
        offsets = torch.arange(length).view(-1, 1) - torch.arange(length).view(1, -1) + length - 1
        self.register_buffer("index", offsets)
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, t):
        n, length, dim = t.shape
        q, k, v = self.qkv(t).reshape(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        bias = self.table[self.index].permute(2, 0, 1)                             # (heads, L, L)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        return t + self.gamma * self.proj(out.transpose(1, 2).reshape(n, length, dim))


class SwinLike(nn.Module):
    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 2, stride=2)
        self.norm = nn.LayerNorm(dim)
        self.attention = RelativeBiasAttention(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)                               # (N, 9, D)
        return self.head(self.attention(self.norm(t)).mean(1))


class AttentionModule(nn.Module):
    """nn.MultiheadAttention with separate key/value sizes (q/k/v_proj_weight) and bias_k/bias_v,
    returning its attention weights too (the explicit softmax path)."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.embed = nn.Linear(3, dim)
        self.attention = nn.MultiheadAttention(dim, 2, kdim=3, vdim=3, add_bias_kv=True, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = tokens_of(x)
        out, weights = self.attention(self.embed(t), t, t)
        return self.head(out.mean(1)) + weights.mean(1)[:, :5]


class FoldedAttention(nn.Module):
    """nn.MultiheadAttention on the batch folded with the patches, (N * 4, 9, D): its sampler refuses the
    call (its batch is not the samples) and the general path takes its weights."""

    def __init__(self, classes=5, dim=4):
        super().__init__()
        self.embed = nn.Linear(3, dim)
        self.attention = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        n = x.shape[0]
        t = self.embed(tokens_of(x)).reshape(n * 4, 9, -1)
        return self.head(self.attention(t, t, t)[0].reshape(n, 36, -1).mean(1))


class SequenceFirst(nn.Module):
    """nn.TransformerEncoderLayer in its default (T, N, D) layout: its Linears and LayerNorms see the
    samples along dimension 1, which their samplers cannot reduce (the probe finds it)."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.embed = nn.Linear(3, dim)
        self.encoder = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=12, dropout=0.0)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(tokens_of(x).transpose(0, 1))).mean(0))


class FoldedBatch(nn.Module):
    """MobileViT-like: the batch folded with the patch positions (N * 4, 9, D) around a Linear, and a
    Linear on a tensor regrouped in pairs, (2, N * 18, D): batch-first in the probe's batch of two, not
    in the scoring batch (the engine's own check finds it)."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.embed = nn.Linear(3, dim)
        self.folded = nn.Linear(dim, dim)
        self.paired = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        n = x.shape[0]
        t = torch.relu(self.embed(tokens_of(x)))                                   # (N, 36, D)
        t = torch.relu(self.folded(t.reshape(n * 4, 9, -1))).reshape(n, 36, -1)
        t = torch.relu(self.paired(t.reshape(2, -1, t.shape[-1]))).reshape(n, 36, -1)
        return self.head(t.mean(1))


class InPlace(nn.Module):
    """In-place ops on tapped outputs: conv(x).relu_(), y += fc(h) after a Linear, an in-place scale of
    Linear outputs on tokens (a view of the matmul's result)."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.token = nn.Linear(6, 6)
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(6, 8)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        h = self.bn(self.conv(x).relu_()).relu_()
        t = self.token(h.flatten(2).transpose(1, 2)).mul_(0.5).tanh_()             # (N, 36, 6)
        h = t.mean(1)
        y = self.fc1(h)
        y += self.fc2(h)
        y[:, :3] *= 2.0
        return self.head(y.relu_())


class Shared(nn.Module):
    """A convolution called twice (the per-sample gradient is the sum over calls), an output used
    several times and inside batched matmuls."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.mix = nn.Linear(3, 4)
        self.head = nn.Linear(4, classes)

    def forward(self, x):
        h = self.conv(torch.relu(self.conv(x)))
        t = self.mix(tokens_of(h))                                                 # (N, 36, 4)
        gram = torch.softmax(t @ t.transpose(1, 2) / 2.0, -1) @ t                  # used three times
        return self.head((gram + t).mean(1) * t.mean(1))


class Attention(nn.Module):
    """Linear q/k/v feeding F.scaled_dot_product_attention (causal), a Linear after it."""

    def __init__(self, classes=5, dim=4):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(3, dim), nn.Linear(3, dim), nn.Linear(3, dim)
        self.out = nn.Linear(dim, classes)

    def forward(self, x):
        t = tokens_of(x)
        q, k, v = (m(t).unflatten(-1, (2, -1)).transpose(1, 2) for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).flatten(2)
        return self.out(out.mean(1))


class WithPReLU(nn.Module):
    """A learnt activation slope (no sampler) between two convolutions, per channel and shared."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.act = nn.PReLU(4)
        self.shared = nn.PReLU()
        self.fc = nn.Linear(4, classes)

    def forward(self, x):
        return self.fc(self.shared(self.act(self.conv(x)).mean((2, 3))))


class TextClassifier(nn.Module):
    """Embedding + nn.TransformerEncoder on integer tokens (cut from the image: not differentiated)."""

    def __init__(self, classes=5, vocab=11, dim=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=12, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        ids = ((x.flatten(1)[:, :12] * 3).round().clamp(-5, 5) + 5).long()
        return self.head(self.encoder(self.embed(ids)).mean(1))


class TokenClassifier(nn.Module):
    """A text classifier fed token ids (N, L): Embedding with a padding id, positional embedding,
    nn.TransformerEncoder masking the padding keys, mean over tokens."""

    def __init__(self, classes=5, vocab=13, dim=8, length=7):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, length, dim))
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=12, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids) + self.pos, src_key_padding_mask=ids == 0).mean(1))


def token_ids(seed=1, n=6):
    return torch.randint(0, 13, (n, 7), generator=torch.Generator().manual_seed(seed))


GENERAL = {"vit_tokens": ViTTokens, "prelu": WithPReLU, "text": TextClassifier, "swin_like": SwinLike,
           "multihead_attention": AttentionModule, "folded_attention": FoldedAttention,
           "sequence_first": SequenceFirst, "folded_batch": FoldedBatch}
TAPS = {"in_place": InPlace, "shared": Shared, "attention": Attention}
MODELS = {**GENERAL, **TAPS, "token_ids": TokenClassifier}


def built(name, seed=0):
    return randomised_float64(MODELS[name](), seed)


def batch(seed=1, n=6):
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def sampled_coords(model, preset, element):
    """(parameter, flat index) sampled, independently of the engine: the first 128 parameter tensors
    ('paper') or the weight of every convolution and Linear, subclasses included ('exact')."""
    params = dict(model.named_parameters())
    if preset == "paper":
        tensors = list(params.items())[:128]
    else:
        tensors = [(f"{name}.weight", params[f"{name}.weight"]) for name, m in model.named_modules()
                   if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight is not None]
    return [(name, 0 if element == "first" else p.numel() - 1) for name, p in tensors]


def config(preset, element="first", **fields):
    return vf.FisherConfig.preset(preset, init=None, element="relative",
                                  element_position={"first": 0.0, "last": 1.0}[element], **fields)


def assert_matches_oracle(name, preset, element="first", n=6, inputs=None, **fields):
    model, x = built(name), batch(n=n) if inputs is None else inputs
    coords = sampled_coords(model, preset, element)
    truth = oracle_fisher(built(name), x, coords, preset, vectorize=name != "prelu")
    cfg = config(preset, element, **fields)
    result = vf.score(model, x, config=cfg)
    assert result.weights == [f"{p}[{i}]" for p, i in coords]
    assert result.skipped == {}
    fisher = vf.fisher_matrix(model, x, config=cfg)
    assert float((fisher - truth).norm() / truth.norm()) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), rel=1e-9, abs=1e-12)
    truth_eigenvalues = torch.linalg.eigvalsh(truth).flip(0).clamp_min(0)
    assert torch.allclose(result.eigenvalues, truth_eigenvalues, rtol=1e-9, atol=1e-12 * float(truth_eigenvalues[0]))
    return result


# Which sampled weights take the general path, and why (a fragment of the reason). nn.MultiheadAttention's
# projections (in_proj, q/k/v_proj, out_proj) have a sampler, whichever the layout; its bias_k / bias_v do not.
SEQUENCE_FIRST = "it is called on an input of shape (36, 2, "
FOLDED_QUERY = "it is called on a query of shape (24, 9, 4) (batch_first=True) for a batch of 6"
EXPECTED_GENERAL = {
    ("vit_tokens", "paper"): {
        "cls_token": "no weight sampler", "dist_token": "no weight sampler", "pos_embed": "no weight sampler",
        "scale.gamma": "registered for LayerScale"},
    ("vit_tokens", "exact"): {},
    ("swin_like", "paper"): {"attention.table": "RelativeBiasAttention", "attention.gamma": "RelativeBiasAttention"},
    ("swin_like", "exact"): {},
    ("prelu", "paper"): {"act.weight": "registered for PReLU", "shared.weight": "registered for PReLU"},
    ("multihead_attention", "paper"): {f"attention.{p}": "its sampler samples in_proj_weight" for p in
                                       ("bias_k", "bias_v")},
    ("multihead_attention", "exact"): {},
    ("sequence_first", "paper"): {f"{m}.{p}": SEQUENCE_FIRST for m in
                                  ("embed", "encoder.linear1", "encoder.linear2", "encoder.norm1", "encoder.norm2")
                                  for p in ("weight", "bias")},
    ("sequence_first", "exact"): {f"{m}.weight": SEQUENCE_FIRST for m in
                                  ("embed", "encoder.linear1", "encoder.linear2")},
    ("text", "exact"): {},
    ("text", "paper"): {},
    ("folded_attention", "exact"): {"attention.out_proj.weight": FOLDED_QUERY},
    ("folded_attention", "paper"): {f"attention.{p}": FOLDED_QUERY for p in
                                    ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")},
    ("folded_batch", "exact"): {"folded.weight": "input of shape (8, 9, 8) for a batch of 2",
                                "paired.weight": "giving Tensor(2, 108, 8) for a batch of 6"},
}


# Many general weights for few factor rows (K = 5): per-sample reverse mode for every column (the automatic
# plan); else the taps' plan (rows here) and forward-mode tangents for the general weights.
BY_REVERSE = {("sequence_first", "paper")}


@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("name", sorted(GENERAL))
def test_general_path_matches_oracle(name, preset):
    result = assert_matches_oracle(name, preset, **({} if (name, preset) in BY_REVERSE else {"strategy": "rows"}))
    expected = EXPECTED_GENERAL.get((name, preset))
    general = {w.split("[")[0]: reason for w, reason in result.general.items()}
    if expected is not None:
        assert sorted(general) == sorted(expected)
        assert all(fragment in general[w] for w, fragment in expected.items())
    if (name, preset) in BY_REVERSE:
        assert result.strategy == f"per-sample reverse mode (K=5 rows, P={result.num_weights} weights)"
        assert result.plan == "per_sample"
    elif general:
        assert result.strategy.endswith(f" + general ({len(general)} forward-mode tangents)")
    else:
        assert "general" not in result.strategy


def test_per_sample_reverse_mode_is_bounded_in_memory(monkeypatch):
    """Its bound counts K = 5 gradients of each shifted tensor per sample. Every column by it, in chunks of
    samples (at least 8, or the batch), while that many samples' gradients of all sampled tensors fit; for the
    general weights only while theirs do; then forward-mode tangents. Same matrix each time."""
    params = dict(built("sequence_first").named_parameters())
    every = 5 * sum(p.numel() for p in params.values())
    general = 5 * sum(params[name].numel() for name in EXPECTED_GENERAL["sequence_first", "paper"])
    monkeypatch.setattr(engine, "_PER_SAMPLE_GRADIENTS_LIMIT", 8 * every)   # eight samples of ten at a time
    result = assert_matches_oracle("sequence_first", "paper", n=10)
    assert result.strategy == f"per-sample reverse mode (K=5 rows, P={len(params)} weights)"
    monkeypatch.setattr(engine, "_PER_SAMPLE_GRADIENTS_LIMIT", 6 * every - 1)   # not the six samples at once
    result = assert_matches_oracle("sequence_first", "paper")
    assert result.strategy == "rows (K=5 factor rows) + general (10 weights by per-sample reverse mode, 5 rows)"
    assert result.plan == "rows"  # the general path's columns do not change the plan it names
    assert result.passes == 5 + 5
    monkeypatch.setattr(engine, "_PER_SAMPLE_GRADIENTS_LIMIT", 6 * general)
    assert vf.score(built("sequence_first"), batch(), config=config("paper")).strategy == result.strategy
    monkeypatch.setattr(engine, "_PER_SAMPLE_GRADIENTS_LIMIT", 6 * general - 1)
    result = assert_matches_oracle("sequence_first", "paper")
    assert result.strategy == "rows (K=5 factor rows) + general (10 forward-mode tangents)"


@pytest.mark.parametrize("name", ["vit_tokens", "text", "sequence_first"])
def test_multihead_attention_takes_the_fast_path(name):
    """Batch-first and sequence-first: in_proj and out_proj are tapped inside F.multi_head_attention_forward,
    each sampled once (out_proj.weight is one layer of aleph under 'exact'), none on the general path; and
    F.linear is torch's own again afterwards."""
    linear = F.linear
    paper = vf.score(built(name), batch(), config=config("paper"))
    attention = [w for w in paper.weights if ".self_attn." in w]
    assert len(attention) == 4 * len(set(w.rsplit(".self_attn.", 1)[0] for w in attention)) > 0
    assert sorted({w.split(".self_attn.")[1].split("[")[0] for w in attention}) == [
        "in_proj_bias", "in_proj_weight", "out_proj.bias", "out_proj.weight"]
    exact = vf.score(built(name), batch(), config=config("exact"))
    assert [w for w in exact.weights if ".self_attn." in w] == [w for w in attention if ".out_proj.weight" in w]
    assert exact.aleph == exact.num_weights + len(exact.skipped)
    for result in (paper, exact):
        assert not [w for w in result.general if ".self_attn." in w]
    assert F.linear is linear


@pytest.mark.parametrize("element", ["first", "last"])
@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_token_ids_stay_integer(preset, element):
    """A LongTensor of ids is scored as it is (the oracle differentiates the same integer batch); only the
    positional embedding takes the general path."""
    ids = token_ids()
    result = assert_matches_oracle("token_ids", preset, element, inputs=ids)
    assert sorted(w.split("[")[0] for w in result.general) == (["pos"] if preset == "paper" else [])
    assert result.aleph == result.num_weights + len(result.skipped)
    prepared = vf.prepare.prepare(built("token_ids"), inputs=ids.int(), init=None)
    assert prepared.inputs.dtype == torch.int32 and torch.equal(prepared.inputs, ids.int())
    same = vf.score(built("token_ids"), ids.int(), config=config(preset, element))
    assert same.vkdnw == pytest.approx(result.vkdnw, rel=1e-12)


class Unmasked(TokenClassifier):
    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids) + self.pos).mean(1))


def test_the_encoder_layers_fused_path_does_not_hide_the_attention():
    """Under 'exact' nothing before the encoder is tapped and ids need no gradient, so nothing would require
    grad there: the fused inference path of nn.TransformerEncoderLayer, which calls neither its attention
    nor its Linears, is off in the probe and the tapped forward."""
    model, ids = randomised_float64(Unmasked()), token_ids()
    coords = sampled_coords(model, "exact", "first")
    truth = oracle_fisher(randomised_float64(Unmasked()), ids, coords, "exact")
    result = vf.score(model, ids, config=config("exact"))
    assert result.general == {} and result.strategy == "rows (K=4 factor rows)"
    assert float((vf.fisher_matrix(model, ids, config=config("exact")) - truth).norm() / truth.norm()) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), rel=1e-9, abs=1e-12)
    assert torch.backends.mha.get_fastpath_enabled()


class MixesTokens(TokenClassifier):
    def forward(self, ids):
        t = self.embed(ids)
        return self.head(self.encoder(t - t.mean(0)).mean(1))


def test_the_probe_perturbs_token_ids_with_ids_of_the_batch():
    with pytest.raises(ValueError, match=r"samples interact: replacing sample 0 of the batch changes sample 1's "
                                         r"input of TransformerEncoder 'encoder': the model's own forward"):
        vf.score(MixesTokens().double(), token_ids(), config=config("exact"))


@pytest.mark.parametrize("inputs, message", [
    (None, r"TokenClassifier's nn.Embedding 'embed' would look up the Gaussian noise that input_shape= draws; "
           r"pass its token ids as inputs="),
    (token_ids() > 6, r"inputs must be a floating-point tensor \(N, ...\) or integer token ids \(N, L\)"),
    (token_ids()[0], r"inputs must be a floating-point tensor"),
])
def test_token_id_models_refuse_other_inputs(inputs, message):
    with pytest.raises(ValueError, match=message):
        vf.score(TokenClassifier(), inputs, input_shape=None if inputs is not None else (7,), config="exact")


def test_general_path_other_elements_and_plans():
    """The last element of every tensor; the features plan and chunked backward passes beside it."""
    assert_matches_oracle("vit_tokens", "paper", "last")
    result = assert_matches_oracle("swin_like", "paper", "last", strategy="features", pass_chunk=3,
                                   memory_format="contiguous")
    assert result.strategy == "features (D=8 unit cotangents on the final Linear's input) + general (2 forward-mode " \
                              "tangents)"
    assert result.passes == 8 + 2
    # Forward mode takes every column itself: no general pass on top.
    result = assert_matches_oracle("swin_like", "paper", strategy="forward")
    assert result.strategy == f"forward (P={result.num_weights} tangents)"


@pytest.mark.parametrize("strategy", ["auto", "rows"])
def test_only_general_weights(strategy):
    """No tap at all: forward mode takes every column, even when a backward plan is asked for."""
    model, x = built("vit_tokens"), batch()
    truth = oracle_fisher(built("vit_tokens"), x, [("cls_token", 0), ("dist_token", 0), ("pos_embed", 0)], "paper")
    cfg = config("paper", max_weights=3, strategy=strategy)
    result = vf.score(model, x, config=cfg)
    assert result.strategy == "forward (P=3 tangents)" and len(result.general) == 3
    assert float((vf.fisher_matrix(model, x, config=cfg) - truth).norm() / truth.norm()) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("chunk", [None, 3])
@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("name", sorted(TAPS))
def test_taps_survive_real_code(name, preset, chunk):
    """Taps only (no general column), one cotangent per backward and three vmapped into one."""
    result = assert_matches_oracle(name, preset, strategy="rows", pass_chunk=chunk, memory_format="contiguous")
    assert result.general == {} and result.strategy.startswith("rows (K=")


def test_a_model_without_general_weights_takes_the_cheaper_of_rows_and_tangents():
    """No general path: 3 tangents (one per tapped layer) against 4 factor rows."""
    model, x = built("shared"), batch()
    result = vf.score(model, x, config=config("exact"))
    assert result.strategy == "forward (P=3 tangents)" and result.passes == 3 and result.general == {}


class NoForwardDerivative(torch.autograd.Function):
    """A custom op with a backward but no jvp: forward-mode AD cannot go through it."""

    @staticmethod
    def forward(x):
        return x * 2.0

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad * 2.0


class OpaqueToken(ViTTokens):
    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)
        token = NoForwardDerivative.apply(self.cls_token).expand(x.shape[0], -1, -1)
        return self.head(torch.cat([token, t], 1).mean(1))


@pytest.mark.parametrize("max_weights, strategy, path, names", [
    (4, "rows", r"the general path \(forward-mode AD", "cls_token, dist_token, pos_embed"),
    (4, "forward", r"the 'forward' plan \(forward-mode AD", "cls_token, dist_token, pos_embed, patch.weight"),
    (128, "rows", r"the general path \(reverse-mode AD per sample", "cls_token, dist_token, pos_embed, encoder.*"),
    (128, "auto", r"the 'per_sample' plan \(reverse-mode AD per sample", "cls_token, dist_token, pos_embed, patch.*"),
])
def test_general_path_that_cannot_differentiate_names_the_weights(max_weights, strategy, path, names):
    model = OpaqueToken().double()
    with pytest.raises(ValueError, match=rf"{path} through torch.func.functional_call\) cannot differentiate "
                                         rf"OpaqueToken for the sampled weights {names}: .*vmap.* Give the failing op"):
        vf.score(model, batch(), config=config("paper", max_weights=max_weights, strategy=strategy))


class FixedResolutionAttention(SwinLike):
    """Its bias table is for 9 tokens (6 x 6 images): on 8 x 8 images its own forward fails."""


def test_a_model_failing_on_the_input_size_is_named_with_the_shape():
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"FixedResolutionAttention fails on a batch shaped like the scoring batch "
                                         r"\(4, 3, 8, 8\) \(its forward alone, before the engine does anything\)"):
        vf.score(FixedResolutionAttention().double(), x, config=config("exact"))
