"""bench_engine.py's measurement (engine / floor, torch.func baseline / engine) on models whose
sampled weights need the norm and attention samplers: a small ViT-like, the same ViT in torchvision's
form, and a small ConvNeXt-like network.

The ViT-like and ConvNeXt-like networks are what every parameter tensor can be sampled on without a
general path: no class token, positional embedding or layer scale; LayerNorm on channels-last tokens
(nn.LayerNorm after a permute, not a channels-first subclass); attention from Linear q/k/v. The
torchvision-style ViT has nn.MultiheadAttention (its sampler taps in_proj and out_proj inside
F.multi_head_attention_forward), a class token and a positional embedding (the general path's two
tangents under ``paper``; ``exact`` samples layers only and has none).

    python bench/bench_samplers.py --threads 1 --out bench/results/engine_samplers_cpu.json
"""
from __future__ import annotations

import sys

import torch
from torch import nn
from torch.nn import functional as F

import bench_engine


class Block(nn.Module):
    """Pre-norm transformer block: LayerNorm, Linear q/k/v, softmax attention, Linear MLP."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, t):
        n, length, dim = t.shape
        q, k, v = self.qkv(self.norm1(t)).reshape(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-1, -2) / (dim // self.heads) ** 0.5, dim=-1)
        t = t + self.proj((attention @ v).transpose(1, 2).reshape(n, length, dim))
        return t + self.fc2(F.gelu(self.fc1(self.norm2(t))))


class ViTLike(nn.Module):
    """4x4 patches (64 tokens at 32x32), width 64, 4 heads, depth 4, mean-pooled tokens."""

    def __init__(self, num_classes=10, dim=64, heads=4, depth=4):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.blocks = nn.Sequential(*(Block(dim, heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.patch(x).flatten(2).transpose(1, 2))).mean(1))


class EncoderBlock(nn.Module):
    """torchvision's ViT encoder block: LayerNorm, nn.MultiheadAttention (batch-first), LayerNorm, MLP."""

    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, t):
        y = self.ln_1(t)
        t = t + self.self_attention(y, y, y, need_weights=False)[0]
        return t + self.mlp(self.ln_2(t))


class TorchvisionViT(nn.Module):
    """ViTLike's sizes in torchvision's form: patch convolution, class token, positional embedding,
    nn.MultiheadAttention blocks, final LayerNorm, head on the class token."""

    def __init__(self, num_classes=10, dim=64, heads=4, depth=4, tokens=64):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, dim, 4, stride=4)
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embedding = nn.Parameter(torch.empty(1, tokens + 1, dim).normal_(std=0.02))
        self.layers = nn.Sequential(*(EncoderBlock(dim, heads) for _ in range(depth)))
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        t = self.conv_proj(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.class_token.expand(x.shape[0], -1, -1), t], 1) + self.pos_embedding
        return self.head(self.ln(self.layers(t))[:, 0])


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(self.dwconv(x).permute(0, 2, 3, 1)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtLike(nn.Module):
    """4x4 stem to 8x8x48, two blocks, LayerNorm + 2x2 stride-2 downsampling to 96, two blocks."""

    def __init__(self, num_classes=10, dims=(48, 96)):
        super().__init__()
        self.stem = nn.Conv2d(3, dims[0], 4, stride=4)
        self.stage1 = nn.Sequential(ConvNeXtBlock(dims[0]), ConvNeXtBlock(dims[0]))
        self.down_norm = nn.LayerNorm(dims[0])
        self.down = nn.Conv2d(dims[0], dims[1], 2, stride=2)
        self.stage2 = nn.Sequential(ConvNeXtBlock(dims[1]), ConvNeXtBlock(dims[1]))
        self.head_norm = nn.LayerNorm(dims[1])
        self.head = nn.Linear(dims[1], num_classes)

    def forward(self, x):
        x = self.stage1(self.stem(x))
        x = self.stage2(self.down(self.down_norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)))
        return self.head(self.head_norm(x.mean((2, 3))))


def networks(num_classes):
    return {"vit-like": lambda: ViTLike(num_classes), "vit-torchvision": lambda: TorchvisionViT(num_classes),
            "convnext-like": lambda: ConvNeXtLike(num_classes)}


if __name__ == "__main__":
    bench_engine.networks = networks  # the same measurement and record, these networks
    bench_engine.__file__ = __file__  # (the record names this script as its command)
    bench_engine.main(sys.argv[1:])
