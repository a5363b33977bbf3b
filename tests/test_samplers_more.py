"""The norm, embedding, 3-d and transposed convolution samplers, and Linear / BatchNorm1d on
sequences, against the independent float64 oracle, for both presets and other sampled elements."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import vkdnw_fast as vf
from vkdnw_fast.samplers import (ChannelsFirstLayerNormSampler, ChannelsFirstRMSNormSampler, register_sampler,
                                 sampler_for)

from fisher_oracle import entropy_of, oracle_fisher, randomised_float64

# The oracle vmaps attention, which has no batching rule (a loop, and a warning).
pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop:UserWarning")


def tokens_of(x):
    """(N, 3, 6, 6) images -> (N, 36, 3) pixel tokens."""
    return x.flatten(2).transpose(1, 2)


class LayerNormTokens(nn.Module):
    """LayerNorm over one and over two trailing dims, with and without bias; Linear on 3-d and 4-d inputs."""

    def __init__(self, classes=5):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.norm = nn.LayerNorm(8)
        self.mix = nn.Linear(8, 8)
        self.norm2 = nn.LayerNorm((6, 8), bias=False)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        t = self.norm(self.embed(tokens_of(x)))                       # (N, 36, 8)
        t = self.norm2(F.gelu(self.mix(t.reshape(-1, 6, 6, 8))))    # (N, 6, 6, 8), normalised over (6, 8)
        return self.head(t.mean((1, 2)))


class RMSNormTokens(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.norm = nn.RMSNorm(8)                  # eps=None: the dtype's machine epsilon
        self.mix = nn.Linear(8, 8, bias=False)
        self.norm2 = nn.RMSNorm((36, 8), eps=1e-3)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        t = torch.relu(self.mix(self.norm(self.embed(tokens_of(x)))))
        return self.head(self.norm2(t).mean(1))


class GroupNormNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(4, 8)
        self.conv2 = nn.Conv2d(8, 8, 3, stride=2, bias=False)
        self.gn_one = nn.GroupNorm(1, 8)           # one group: LayerNorm over (C, H, W)
        self.gn_flat = nn.GroupNorm(2, 8)          # on (N, C)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        x = torch.relu(self.gn(self.conv(x)))
        x = torch.relu(self.gn_one(self.conv2(x)))
        return self.fc(self.gn_flat(x.mean((2, 3))))


class SequenceNet(nn.Module):
    """Conv1d + BatchNorm1d on (N, C, L), then Linear on (N, L, C) tokens."""

    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv1d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6)
        self.token = nn.Linear(6, 6)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x.flatten(2))))           # (N, 6, 36)
        return self.fc(torch.relu(self.token(x.transpose(1, 2))).mean(1))


def token_ids(x, vocab):
    """Integer tokens from the image (piecewise constant: the model is not differentiated in x)."""
    return ((x.flatten(1)[:, :12] * 2).round().clamp(-(vocab // 2), vocab // 2) + vocab // 2).long()


class EmbeddingNet(nn.Module):
    def __init__(self, classes=5, vocab=7):
        super().__init__()
        self.vocab = vocab
        self.embed = nn.Embedding(vocab, 8)
        self.padded = nn.Embedding(vocab, 8, padding_idx=0)   # row 0 gets no gradient
        self.mix = nn.Linear(8, 8)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        ids = token_ids(x, self.vocab)
        t = self.embed(ids) + self.padded(ids.flip(1))
        return self.fc(torch.tanh(self.mix(t)).mean(1))


class Conv3dNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv = nn.Conv3d(1, 4, (2, 3, 3), stride=(1, 2, 1), padding=(1, 1, 0), dilation=(1, 1, 2))
        self.grouped = nn.Conv3d(4, 6, 3, padding="same", groups=2, bias=False)
        self.fc = nn.Linear(6, classes)

    def forward(self, x):
        x = torch.relu(self.conv(x.unsqueeze(1)))       # (N, 1, 3, 6, 6) volumes
        return self.fc(torch.relu(self.grouped(x)).mean((2, 3, 4)))


class TransposedNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.up1 = nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1)
        self.up2 = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, groups=1, dilation=2)
        self.up2g = nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), padding=(0, 2), groups=2, bias=False)
        self.up3 = nn.ConvTranspose3d(1, 2, 2, stride=(1, 2, 2), padding=(0, 1, 0))
        self.fc = nn.Linear(4 + 6 + 2, classes)

    def forward(self, x):
        a = torch.relu(self.up1(x.flatten(2)[:, :, :8])).mean(2)
        b = torch.relu(self.up2g(torch.relu(self.up2(x)))).mean((2, 3))
        c = torch.relu(self.up3(x.unsqueeze(1))).mean((2, 3, 4))
        return self.fc(torch.cat([a, b, c], 1))


class ViTLike(nn.Module):
    """Patch embedding, pre-norm blocks with Linear q/k/v and MLP on tokens, final norm; no class
    token or positional embedding (those need the general path)."""

    def __init__(self, classes=5, dim=8, heads=2, depth=2):
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv2d(3, dim, 2, stride=2)
        self.blocks = nn.ModuleList()
        for _ in range(depth):
            self.blocks.append(nn.ModuleDict({
                "norm1": nn.LayerNorm(dim), "qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim),
                "norm2": nn.LayerNorm(dim), "fc1": nn.Linear(dim, 2 * dim), "fc2": nn.Linear(2 * dim, dim)}))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = self.patch(x).flatten(2).transpose(1, 2)                   # (N, T, D)
        n, length, dim = t.shape
        for block in self.blocks:
            q, k, v = block["qkv"](block["norm1"](t)).reshape(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            attention = torch.softmax(q @ k.transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
            t = t + block["proj"]((attention @ v).transpose(1, 2).reshape(n, length, dim))
            t = t + block["fc2"](F.gelu(block["fc1"](block["norm2"](t))))
        return self.head(self.norm(t).mean(1))


class ConvNeXtLike(nn.Module):
    """Stem, a ConvNeXt block (depthwise 7x7 -> channels-last LayerNorm -> Linear -> GELU -> Linear,
    residual), a final LayerNorm and head."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.head_norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.stem(x)
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))             # (N, H, W, C)
        x = x + self.pwconv2(F.gelu(self.pwconv1(y))).permute(0, 3, 1, 2)
        return self.head(self.head_norm(x.mean((2, 3))))


class LayerNorm2d(nn.LayerNorm):
    """ConvNeXt's channels-first LayerNorm: (N, C, H, W) normalised over C."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class RMSNorm2d(nn.RMSNorm):
    def forward(self, x):
        return F.rms_norm(x.movedim(1, -1), self.normalized_shape, self.weight, self.eps).movedim(-1, 1)


register_sampler(LayerNorm2d)(ChannelsFirstLayerNormSampler)
register_sampler(RMSNorm2d)(ChannelsFirstRMSNormSampler)


class ChannelsFirstNorms(nn.Module):
    """A stem with a channels-first LayerNorm, a depthwise conv and a channels-first RMSNorm (both
    registered above, as a user registers them for their own subclasses)."""

    def __init__(self, classes=5, dim=8):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.stem_norm = LayerNorm2d(dim)
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm = RMSNorm2d(dim, eps=1e-4)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.stem_norm(self.stem(x))
        return self.head(torch.relu(self.norm(self.dwconv(x)) + x).mean((2, 3)))


class AttentionVariants(nn.Module):
    """nn.MultiheadAttention in each way F.multi_head_attention_forward applies its projections: batch-first
    self-attention on the raw tokens, before anything requires grad (where its fused inference path would
    be taken), with its weights averaged; sequence-first cross-attention whose key is its value (the packed
    weight split in two); query, key and value all different (three chunks), with a zero attention row and
    the attention weights computed (the explicit softmax path)."""

    def __init__(self, classes=5, dim=6):
        super().__init__()
        self.first = nn.MultiheadAttention(4, 2, batch_first=True)
        self.embed = nn.Linear(4, dim)
        self.cross = nn.MultiheadAttention(dim, 2)
        self.separate = nn.MultiheadAttention(dim, 3, batch_first=True, add_zero_attn=True)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        t = x.reshape(x.shape[0], 27, 4)                                  # (N, 27, 4) tokens
        t = t + self.first(t, t, t, need_weights=False)[0]
        h = self.embed(t)
        s = h.transpose(0, 1)                                             # (27, N, D)
        memory = torch.tanh(s[::2])
        c = self.cross(s, memory, memory, need_weights=False)[0].transpose(0, 1)
        out, _ = self.separate(h, c, torch.relu(c))                       # need_weights: True
        return self.head(out.mean(1))


MODELS = {
    "multihead_attention": AttentionVariants,
    "layernorm": LayerNormTokens, "rmsnorm": RMSNormTokens, "groupnorm": GroupNormNet,
    "sequence_bn1d_linear": SequenceNet, "embedding": EmbeddingNet, "conv3d": Conv3dNet,
    "conv_transpose": TransposedNet, "vit_like": ViTLike, "convnext_like": ConvNeXtLike,
    "channels_first_norms": ChannelsFirstNorms,
}


def built(name, seed=0):
    return randomised_float64(MODELS[name](), seed)


def batch(seed=1, n=5):
    return torch.randn(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def layer_names(model):
    """docs/method.md §3's layers, independently: every convolution (transposed too) and Linear."""
    kinds = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
    return [name for name, m in model.named_modules() if isinstance(m, kinds)]


def sampled_coords(model, preset, element):
    """(parameter name, flat index) of the sampled scalars: the first 128 parameter tensors ('paper')
    or layer weights ('exact'), element 0 or the last one."""
    if preset == "paper":
        tensors = list(model.named_parameters())[:128]
    else:
        params = dict(model.named_parameters())
        tensors = [(f"{name}.weight", params[f"{name}.weight"]) for name in layer_names(model)][:128]
    return [(name, 0 if element == "first" else p.numel() - 1) for name, p in tensors]


def config(preset, element, **fields):
    position = {"first": 0.0, "last": 1.0}[element]
    return vf.FisherConfig.preset(preset, init=None, element="relative", element_position=position, **fields)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


def assert_matches_oracle(name, preset, element, **overrides):
    model, x = built(name), batch()
    coords = sampled_coords(model, preset, element)
    truth = oracle_fisher(built(name), x, coords, preset)
    cfg = config(preset, element, **overrides)
    result = vf.score(model, x, config=cfg)
    assert result.weights == [f"{n}[{i}]" for n, i in coords]
    assert result.skipped == {}
    assert relative_error(vf.fisher_matrix(model, x, config=cfg), truth) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), rel=1e-9, abs=1e-12)
    truth_eigenvalues = torch.linalg.eigvalsh(truth).flip(0).clamp_min(0)
    assert torch.allclose(result.eigenvalues, truth_eigenvalues, rtol=1e-9, atol=1e-12 * float(truth_eigenvalues[0]))
    return result


@pytest.mark.parametrize("element", ["first", "last"])
@pytest.mark.parametrize("preset", ["paper", "exact"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_new_samplers_match_oracle(name, preset, element):
    # Backward passes, so that the samplers' taps compute every column (forward mode uses none).
    result = assert_matches_oracle(name, preset, element, strategy="rows")
    assert result.strategy == f"rows (K={4 if preset == 'exact' else 5} factor rows)" and result.general == {}


@pytest.mark.parametrize("strategy", ["rows", "features"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_chunked_backward_passes(name, strategy):
    """Several cotangents in one vmapped backward reach the taps batched: same matrix. Contiguous,
    as on GPU where chunks are the default (torch has no vmap rule for GroupNorm's channels-last backward)."""
    assert_matches_oracle(name, "paper", "last", strategy=strategy, pass_chunk=3, memory_format="contiguous")


@pytest.mark.parametrize("setting, message", [
    ({"max_norm": 1.0}, "Embedding 'embed' has max_norm=1.0"),
    ({"scale_grad_by_freq": True}, "Embedding 'embed' has scale_grad_by_freq=True"),
])
def test_embeddings_whose_gradient_couples_the_batch_are_refused(setting, message):
    model = built("embedding")
    for name, value in setting.items():
        setattr(model.embed, name, value)
    with pytest.raises(ValueError, match=message):
        vf.score(model, batch(), config=config("paper", "first"))


def test_a_norm_subclass_overriding_forward_is_refused():
    """A channels-first LayerNorm must not get the channels-last formula unless registered for it."""
    sampler = sampler_for(nn.LayerNorm(4))
    sampler.check(nn.LayerNorm(4), "plain")
    with pytest.raises(ValueError, match="LayerNorm2d 'stage.norm' overrides LayerNorm.forward"):
        sampler.check(LayerNorm2d(4), "stage.norm")
    with pytest.raises(ValueError, match=r"LayerNorm2d 'stem' has normalized_shape=\(4, 4\)"):
        sampler_for(LayerNorm2d(4)).check(LayerNorm2d((4, 4)), "stem")



def test_conv3d_with_non_zero_padding_is_refused():
    model = built("conv3d")
    model.conv.padding_mode = "reflect"
    with pytest.raises(ValueError, match="Conv3d 'conv' uses padding_mode='reflect'"):
        vf.score(model, batch(), config=config("exact", "first"))
