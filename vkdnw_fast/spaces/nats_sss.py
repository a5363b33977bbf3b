"""The NATS-Bench size search space (SSS; Dong et al. 2021): 32,768 channel configurations.

An architecture is five channel counts joined by ``:``, e.g. ``8:16:32:48:64``, each one of
8, 16, ..., 64. The network is NATS-Bench's ``DynamicShapeTinyNet`` (xautodl
``models/shape_infers/InferTinyCellNet.py``, built by ``get_cell_based_tiny_net`` for the config
``infer.shape.tiny`` that ``nats_bench``'s ``get_net_config`` returns): NAS-Bench-201's skeleton
with one cell per stage, the topology space's best cell fixed (``GENOTYPE``), and the five
positions' channels given to stem+cell, ResNet block, cell, ResNet block, cell. A cell whose input
has other channels than its output maps them on the edges leaving its input (xautodl
``InferCell`` and ``cell_operations.OPS``): a 3×3 conv from C_in to C_out, and for the skip edge a
``FactorizedReduce`` of stride 1 (1×1 conv + BN, no ReLU) instead of the identity.

Indices follow NATS-Bench: position i's choice (0..7) is digit i of the index in base 8, the first
position the most significant (``8:8:8:16:32`` is 11, ``8:8:40:32:40`` is 284).

Every network has the same topology, so VKDNW's size term ℵ is nearly constant: 23 conv/linear
layers (66 parameter tensors), plus 1 (3) for each cell whose width differs from its input's
(positions 1→2 and 3→4): three values, unrelated to the network's size. Here VKDNW_single ranks
by the Fisher spectrum's entropy within those three groups, which is what makes this space the
test of "information orthogonal to size".
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from vkdnw_fast.spaces import nb201
from vkdnw_fast.spaces.base import SearchSpace, change_one
from vkdnw_fast.spaces.registry import register_space

CHANNELS = (8, 16, 24, 32, 40, 48, 56, 64)
POSITIONS = 5
SIZE = len(CHANNELS) ** POSITIONS
# The cell of every SSS network (nats_bench ``get_net_config(...)['genotype']``).
GENOTYPE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
REDUCTIONS = (False, True, False, True, False)  # position i is a stride-2 ResNet block


def parse(arch: str) -> tuple[int, ...]:
    """The five channel counts of ``arch``; ValueError saying what is malformed."""
    if not isinstance(arch, str):
        raise TypeError(f"an architecture is a string such as '8:16:32:48:64', got {type(arch).__name__}")
    fields = arch.split(":")
    if len(fields) != POSITIONS:
        raise ValueError(f"{arch!r}: expected {POSITIONS} channel counts joined by ':', found {len(fields)}")
    channels = []
    for position, field in enumerate(fields):
        if not field.isdigit() or int(field) not in CHANNELS:
            raise ValueError(f"{arch!r}: position {position} is {field!r}; channels are one of {CHANNELS}")
        channels.append(int(field))
    return tuple(channels)


def format_arch(channels) -> str:
    return ":".join(str(c) for c in channels)


def canonical(arch: str) -> str:
    return format_arch(parse(arch))


def index_of(arch: str) -> int:
    """The NATS-Bench SSS index (0..32767) of ``arch``."""
    return functools.reduce(lambda index, c: index * len(CHANNELS) + CHANNELS.index(c), parse(arch), 0)


def arch_of(index: int) -> str:
    """The architecture with NATS-Bench SSS index ``index``."""
    if not 0 <= index < SIZE:
        raise ValueError(f"SSS indices are 0..{SIZE - 1}, got {index}")
    digits = []
    for _ in range(POSITIONS):
        index, digit = divmod(index, len(CHANNELS))
        digits.append(CHANNELS[digit])
    return format_arch(reversed(digits))


@functools.lru_cache(maxsize=1)
def _all_archs() -> tuple[str, ...]:
    return tuple(arch_of(index) for index in range(SIZE))


def archs() -> list[str]:
    """All 32,768 architectures in NATS-Bench index order."""
    return list(_all_archs())


# ---------------------------------------------------------------- size figures


def _skeleton(channels: tuple[int, ...], side: int):
    """(kind, c_in, c_out, side of the output) of the five positions: ``cell`` or ``block``."""
    c_prev = channels[0]
    for c_out, reduction in zip(channels, REDUCTIONS):
        if reduction:
            side //= 2
        yield ("block" if reduction else "cell"), c_prev, c_out, side
        c_prev = c_out


def _convolutions(arch: str, dataset: str) -> list[tuple[int, int, int, int, bool]]:
    """(c_in, c_out, kernel, output side, followed by BN) of every convolution."""
    channels = parse(arch)
    (in_channels, side, _), _ = nb201.dataset_info(dataset)
    convs = [(in_channels, channels[0], 3, side, True)]
    ops = nb201.parse(GENOTYPE)
    for kind, c_in, c_out, out_side in _skeleton(channels, side):
        if kind == "block":  # conv_a (stride 2), conv_b, and the shortcut's 1x1 conv without BN
            convs += [(c_in, c_out, 3, out_side, True), (c_out, c_out, 3, out_side, True),
                      (c_in, c_out, 1, out_side, False)]
            continue
        for (source, _), op in zip(nb201.EDGES, ops):
            c_source = c_in if source == 0 else c_out
            if op in nb201.CONV_KERNELS:
                convs.append((c_source, c_out, nb201.CONV_KERNELS[op], out_side, True))
            elif c_source != c_out:  # skip_connect between different widths: FactorizedReduce
                convs.append((c_source, c_out, 1, out_side, True))
    return convs


def flops(arch: str, dataset: str) -> float:
    """Conv + linear multiply-accumulates of one image at the dataset's resolution (BN, ReLU,
    pooling, additions and biases not counted). NATS-Bench's ``get_cost_info(...)['flops']`` is
    this plus the classifier's bias additions (``num_classes``), over 1e6."""
    _, num_classes = nb201.dataset_info(dataset)
    conv = sum(a * b * k * k * side * side for a, b, k, side, _ in _convolutions(arch, dataset))
    return float(conv + parse(arch)[-1] * num_classes)


def params(arch: str, dataset: str) -> int:
    """Parameters (BN γ and β included, running statistics not); NATS-Bench's ``params`` × 1e6."""
    _, num_classes = nb201.dataset_info(dataset)
    last = parse(arch)[-1]
    conv = sum(a * b * k * k + 2 * b * bn for a, b, k, _, bn in _convolutions(arch, dataset))
    return conv + 2 * last + (last + 1) * num_classes


def num_layers(arch: str) -> int:
    """Convolutions and the classifier (ℵ's ``layers``): 23, plus one for each cell whose input
    width differs from its output width (positions 1→2 and 3→4)."""
    return len(_convolutions(arch, "cifar10")) + 1


# ---------------------------------------------------------------- the network


class FactorizedReduce(nn.Module):
    """xautodl's ``FactorizedReduce`` at stride 1: 1×1 conv → BN (its ReLU is not applied at
    stride 1, but registered, as there)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class SSSCell(nn.Module):
    """xautodl's ``InferCell`` for ``GENOTYPE`` from ``c_in`` to ``c_out`` channels: node j sums
    one op per earlier node; layers in the genotype's edge order."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        layers = []
        for (source, _), op in zip(nb201.EDGES, nb201.parse(GENOTYPE)):
            c_source = c_in if source == 0 else c_out
            if op in nb201.CONV_KERNELS:
                layers.append(nb201.ReLUConvBN(c_source, c_out, nb201.CONV_KERNELS[op], stride=1))
            else:
                layers.append(nn.Identity() if c_source == c_out else FactorizedReduce(c_source, c_out))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, nb201.OUTPUT_NODE + 1):
            terms = (self.layers[i](nodes[source]) for i, (source, node) in enumerate(nb201.EDGES) if node == target)
            nodes.append(functools.reduce(operator.add, terms))
        return nodes[-1]


class SSSNetwork(nn.Module):
    """NATS-Bench ``DynamicShapeTinyNet``: stem conv3×3+BN, cell, ResNet block (stride 2), cell,
    ResNet block, cell, BN+ReLU, global average pool, linear classifier; parameter names and
    registration order as there. ``forward`` returns logits."""

    def __init__(self, arch: str, num_classes: int = 10):
        super().__init__()
        channels = parse(arch)
        self.arch = format_arch(channels)
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, padding=1, bias=False), nn.BatchNorm2d(channels[0]))
        self.cells = nn.ModuleList(
            nb201.ResNetBasicBlock(c_in, c_out) if kind == "block" else SSSCell(c_in, c_out)
            for kind, c_in, c_out, _ in _skeleton(channels, side=32)
        )
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels[-1], num_classes)

    def feature_blocks(self) -> list[nn.Module]:
        """The stem, then the three cells and two ResNet blocks in forward order."""
        return [self.stem, *self.cells]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        return self.classifier(torch.flatten(self.global_pooling(self.lastact(feature)), 1))


# ---------------------------------------------------------------- the search space


@register_space("nats_sss")
class NATSSSSpace(SearchSpace):
    """NATS-Bench's size space for one dataset (cifar10, cifar100 or ImageNet16-120)."""

    name = "nats_sss"

    def __init__(self, dataset: str = "cifar10"):
        self.dataset = nb201.canonical_dataset(dataset)
        self.input_shape, self.num_classes = nb201.dataset_info(self.dataset)

    def validate(self, arch: str) -> str:
        return canonical(arch)

    def sample(self, rng: np.random.Generator) -> str:
        """Uniform over the 32,768 configurations (NATS-Bench's ``random_size_func``)."""
        return arch_of(int(rng.integers(SIZE)))

    def initial(self, rng: np.random.Generator) -> str:
        return self.sample(rng)

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """Set one position, drawn uniformly, to one of the other seven channel counts, uniformly.
        (NATS-Bench's ``mutate_size_func`` draws among all eight, so its child equals the parent
        one time in eight.)"""
        return format_arch(change_one(parse(arch), CHANNELS, rng))

    def build_model(self, arch: str) -> SSSNetwork:
        return SSSNetwork(arch, self.num_classes)

    def cost(self, arch: str) -> dict[str, float]:
        return {
            "flops": flops(arch, self.dataset),
            "params": float(params(arch, self.dataset)),
            "layers": float(num_layers(arch)),
        }

    def enumerate(self) -> Iterator[str]:
        return iter(_all_archs())
