"""TransNAS-Bench-101's two search spaces (Duan et al., CVPR 2021): ``tnb_micro`` (4,096 cells) and
``tnb_macro`` (3,256 stage layouts), with the benchmark's own encoder networks.

Architecture strings are the benchmark's own (its README and API):

* micro, ``64-41414-a_bc_def``: base width 64, the fixed skeleton ``41414``, and a cell of 4 nodes
  where node 1 = op_a(node 0), node 2 = op_b(node 0) + op_c(node 1), node 3 = op_d(node 0) +
  op_e(node 1) + op_f(node 2) (the output); ops ``0`` none, ``1`` skip, ``2`` ReLU-conv1×1-BN,
  ``3`` ReLU-conv3×3-BN. E.g. ``64-41414-1_02_333``.
* macro, ``64-XXXX-basic``: 4 to 6 stages, each two ResNet basic blocks; a stage digit is ``1``
  (plain), ``2`` (channels ×2), ``3`` (resolution /2) or ``4`` (both); one to four stages halve the
  resolution and one to three double the channels (3,256 layouts). E.g. ``64-1234-basic``.

What the networks follow (read, not copied, from the benchmark's code: ``yawen-d/TransNASBench``
commit ``fcd4e9c``, ``lib/models/net_infer/{net_macro,cell_micro}.py``, ``net_ops/cell_ops.py``,
``task_models/{encoder,decoder,feedforward}.py``, and its copy in ``automl/NASLib``'s
``naslib/search_spaces/transbench101/tnb101/`` whose ``model_builder.create_model`` NAS-Bench-Suite-Zero
scored): the encoder is ``MacroNet(arch, structure='backbone')``: a stem conv3×3(3→32, stride 2)+BN,
ReLU-conv3×3(32→64, stride 2)-BN, then per stage digit two blocks (the first with the stage's stride
and width change). A micro cell's edges leaving node 0 carry the block's stride and width change,
the others map C_out→C_out; skip on such an edge is a ``FactorizedReduce`` (ReLU, two stride-2 1×1
convs of C_out/2 channels, the second on the input shifted by one pixel, concatenated, BN), none is
zeros of the output's shape. A basic block is ReLU-conv3×3-BN, ReLU-conv3×3-BN plus the input, or a
1×1 conv+BN of it where the stride or width changes (no ReLU after the sum). Convolutions are
initialised Kaiming normal (fan-out), BN γ=1, β=0, as there. Parameter names and registration order
follow the benchmark's ``FeedForwardNet(encoder, decoder)``.

Heads, by task (the constructor's ``dataset``), the benchmark's ``task_models`` as NASLib's
``create_model`` (which NAS-Bench-Suite-Zero scored) assembles them:

* ``class_object`` (100 classes), ``class_scene`` (63), ``room_layout`` (9 regression outputs; label-based
  proxies treat them as logits): ``FFDecoder``, global average pool and a linear layer. The released
  training configs train the two classification heads on the "final5k" split with 75 and 47 classes
  (``load_ops``: 100→75, 63→47), so ``num_classes`` can be set.
* ``jigsaw``: ``SiameseNet``, the encoder run on each of 9 tiles of 64×64 (the config's ``tile_dim``) one
  call at a time (BatchNorm sees one tile's batch), the 9 feature maps concatenated along channels,
  ``SiameseDecoder`` (pool, linear to 1,000 permutation classes). The input is (9, 3, 64, 64) a sample.
* ``segmentsemantic`` (17 channels), ``normal`` and ``autoencoder`` (3 channels): dense outputs of the
  input's side. ``SegmentationDecoder``: conv3×3 to 1,024 channels, ``6 - u`` convs halving the
  channels, ``u - 1`` transposed convs (stride 2) halving them, one transposed conv keeping them, a
  conv3×3 to the output channels; ``GenerativeDecoder``: fourteen layers 1024, 1024, 512, 512, 256,
  128, 64, 64, 32, 32, 16, 32, 16, 3 channels, the last with tanh, layers 3, 5, 7, 9 transposed where
  ``u`` ≥ 6, 5, 4, 3 and layers 11, 13 always; ``u`` = log2(input side / encoder side), 5 in the micro
  space, 3 to 6 in the macro one. Every layer but the last is conv (with bias) → BN → LeakyReLU(0.2).
  The autoencoder's GAN discriminator only enters the training loss, so it is not part of the network.
  These networks have no class logits (``num_classes`` None): the label-free proxies score them, the
  ones needing logits refuse them.

The input is 3×256×256 (the configs' ``input_dim``; jigsaw's tiles a quarter of it); ``resolution``
is a constructor argument so that tests can use small inputs. The benchmark's op-index tuples as NAS-Bench-Suite-Zero stored
them map to these strings by their digits (``from_naslib``).
"""
from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from vkdnw_fast.spaces.base import SearchSpace, change_one, relu_conv_bn
from vkdnw_fast.spaces.registry import register_space

BASE_CHANNELS = 64
RESOLUTION = 256
TASKS = ("class_object", "class_scene", "jigsaw", "room_layout", "segmentsemantic", "normal", "autoencoder")
# Outputs of the linear decoder of the tasks whose network ends in one, and channels of the dense ones.
HEAD_OUTPUTS = {"class_object": 100, "class_scene": 63, "room_layout": 9, "jigsaw": 1000}
DENSE_CHANNELS = {"segmentsemantic": 17, "normal": 3, "autoencoder": 3}
JIGSAW_TILES = 9
JIGSAW_TILE_SHARE = 4  # tiles of 64×64 for 256×256 inputs

# Micro: op codes, and the (source, target) node of each cell edge in the string's digit order.
OPS = ("none", "skip_connect", "conv_1x1", "conv_3x3")
CONV_KERNELS = {2: 1, 3: 3}
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
MICRO_SKELETON = "41414"
MICRO_SIZE = len(OPS) ** len(EDGES)

# Macro: stage digits 1..4; a digit halves the resolution if > 2, doubles the channels if even.
MACRO_LENGTHS = (4, 5, 6)
MACRO_DOWNSAMPLES = (1, 4)  # inclusive bounds on the number of stages halving the resolution
MACRO_DOUBLINGS = (1, 3)  # ... and doubling the channels
MACRO_SIZE = 3256
BLOCKS_PER_STAGE = 2


def _halves(digit: int) -> bool:
    return digit > 2


def _doubles(digit: int) -> bool:
    return digit % 2 == 0


# ---------------------------------------------------------------- strings


def _split(arch: str, space: str) -> list[str]:
    if not isinstance(arch, str):
        raise TypeError(f"a {space} architecture is a string, got {type(arch).__name__}")
    fields = arch.split("-")
    if len(fields) != 3:
        raise ValueError(f"{arch!r}: a {space} architecture is '<width>-<skeleton>-<cell>', e.g. "
                         f"{'64-41414-1_02_333' if space == 'tnb_micro' else '64-1234-basic'}; found "
                         f"{len(fields)} field(s) separated by '-'")
    if fields[0] != str(BASE_CHANNELS):
        raise ValueError(f"{arch!r}: the base width is {BASE_CHANNELS} in TransNAS-Bench-101, got {fields[0]!r}")
    return fields


@functools.lru_cache(maxsize=None)
def parse_micro(arch: str) -> tuple[int, ...]:
    """The six op codes of a micro string in ``EDGES`` order; ValueError saying what is malformed."""
    _, skeleton, cell = _split(arch, "tnb_micro")
    if skeleton != MICRO_SKELETON:
        raise ValueError(f"{arch!r}: the micro space's skeleton is {MICRO_SKELETON!r}, got {skeleton!r}")
    nodes = cell.split("_")
    if [len(node) for node in nodes] != [1, 2, 3]:
        raise ValueError(f"{arch!r}: the cell is three groups of 1, 2 and 3 op digits joined by '_' "
                         f"(node 1, 2, 3), e.g. '1_02_333'; got {cell!r}")
    digits = "".join(nodes)
    bad = [d for d in digits if d not in "0123"]
    if bad:
        raise ValueError(f"{arch!r}: op digit(s) {bad} unknown; ops are "
                         + ", ".join(f"{i} {name}" for i, name in enumerate(OPS)))
    return tuple(int(d) for d in digits)


def format_micro(ops: Sequence[int]) -> str:
    ops = tuple(int(op) for op in ops)
    if len(ops) != len(EDGES) or any(op not in range(len(OPS)) for op in ops):
        raise ValueError(f"a micro cell is {len(EDGES)} op codes in 0..{len(OPS) - 1}, got {ops}")
    return f"{BASE_CHANNELS}-{MICRO_SKELETON}-{ops[0]}_{ops[1]}{ops[2]}_{ops[3]}{ops[4]}{ops[5]}"


def macro_problem(digits: Sequence[int]) -> str:
    """Why a stage layout is outside the macro space, or '' if it is inside."""
    if len(digits) not in MACRO_LENGTHS:
        return f"it has {len(digits)} stages; layouts have {MACRO_LENGTHS[0]} to {MACRO_LENGTHS[-1]}"
    if any(d not in (1, 2, 3, 4) for d in digits):
        return "stage digits are 1 (plain), 2 (channels x2), 3 (resolution /2) or 4 (both)"
    halving = sum(map(_halves, digits))
    doubling = sum(map(_doubles, digits))
    if not MACRO_DOWNSAMPLES[0] <= halving <= MACRO_DOWNSAMPLES[1]:
        return (f"{halving} stages halve the resolution (digits 3, 4); the space has "
                f"{MACRO_DOWNSAMPLES[0]} to {MACRO_DOWNSAMPLES[1]}")
    if not MACRO_DOUBLINGS[0] <= doubling <= MACRO_DOUBLINGS[1]:
        return (f"{doubling} stages double the channels (digits 2, 4); the space has "
                f"{MACRO_DOUBLINGS[0]} to {MACRO_DOUBLINGS[1]}")
    return ""


@functools.lru_cache(maxsize=None)
def parse_macro(arch: str) -> tuple[int, ...]:
    """The stage digits of a macro string; ValueError saying what is malformed."""
    _, skeleton, cell = _split(arch, "tnb_macro")
    if cell != "basic":
        raise ValueError(f"{arch!r}: macro architectures end in '-basic' (ResNet basic blocks), got {cell!r}")
    if not skeleton.isdigit():
        raise ValueError(f"{arch!r}: the skeleton {skeleton!r} is not a string of stage digits 1..4")
    digits = tuple(int(d) for d in skeleton)
    problem = macro_problem(digits)
    if problem:
        raise ValueError(f"{arch!r} is not in the macro space: {problem}")
    return digits


def format_macro(digits: Sequence[int]) -> str:
    digits = tuple(int(d) for d in digits)
    problem = macro_problem(digits)
    if problem:
        raise ValueError(f"stage layout {digits} is not in the macro space: {problem}")
    return f"{BASE_CHANNELS}-{''.join(map(str, digits))}-basic"


def from_naslib(space: str, op_indices: Sequence[int]) -> str:
    """The benchmark string of NASLib's op-index tuple, as NASLib queried the benchmark with it: the
    digits verbatim (micro: six ops; macro: the stage digits, zeros dropped)."""
    if space == "tnb_micro":
        return format_micro(op_indices)
    if space == "tnb_macro":
        return format_macro([d for d in op_indices if d != 0])
    raise ValueError(f"unknown TransNAS-Bench-101 space {space!r}; use 'tnb_micro' or 'tnb_macro'")


@functools.lru_cache(maxsize=None)
def micro_archs() -> tuple[str, ...]:
    """The 4,096 cells, op digits counting up in base 4 (last edge fastest)."""
    return tuple(format_micro(ops) for ops in itertools.product(range(len(OPS)), repeat=len(EDGES)))


@functools.lru_cache(maxsize=None)
def macro_archs() -> tuple[str, ...]:
    """The 3,256 stage layouts, by length, then as numbers."""
    return tuple(format_macro(digits) for length in MACRO_LENGTHS
                 for digits in itertools.product((1, 2, 3, 4), repeat=length) if not macro_problem(digits))


# ---------------------------------------------------------------- the networks' layers


def _side(side: int, stride: int) -> int:
    """Output side of the benchmark's convolutions (3×3 padding 1, or 1×1) at ``stride``."""
    return (side + stride - 1) // stride


def stage_digits(space: str, arch: str) -> list[int]:
    """The stage digits of an encoder: the micro skeleton's, or the macro layout's."""
    return [int(d) for d in MICRO_SKELETON] if space == "tnb_micro" else list(parse_macro(arch))


def _blocks(digits: Sequence[int]):
    """(stage, block, c_in, c_out, stride) of every block, from the 64-channel stem output."""
    channels = BASE_CHANNELS
    for stage, digit in enumerate(digits):
        c_out = 2 * channels if _doubles(digit) else channels
        stride = 2 if _halves(digit) else 1
        for block in range(BLOCKS_PER_STAGE):
            yield stage, block, channels, c_out, stride if block == 0 else 1
            channels = c_out


def _micro_convs(ops: Sequence[int], c_in: int, c_out: int, stride: int, side: int):
    """(c_in, c_out, kernel, output side, BN channels) of a micro cell's convolutions."""
    out = _side(side, stride)
    for (source, _), op in zip(EDGES, ops):
        a, s = (c_in, stride) if source == 0 else (c_out, 1)
        if op in CONV_KERNELS:
            yield a, c_out, CONV_KERNELS[op], out, c_out
        elif op == 1 and (s != 1 or a != c_out):  # FactorizedReduce: two halves, one BN
            yield a, c_out // 2, 1, out, 0
            yield a, c_out - c_out // 2, 1, out, c_out


def _basic_convs(c_in: int, c_out: int, stride: int, side: int):
    out = _side(side, stride)
    yield c_in, c_out, 3, out, c_out
    yield c_out, c_out, 3, out, c_out
    if stride != 1 or c_in != c_out:
        yield c_in, c_out, 1, out, c_out


def convolutions(space: str, arch: str, resolution: int = RESOLUTION) -> list[tuple[int, int, int, int, int]]:
    """(c_in, c_out, kernel, output side, channels of the BN after it, 0 if none) of every
    convolution of the encoder, in forward order."""
    micro = space == "tnb_micro"
    ops = parse_micro(arch) if micro else None
    digits = stage_digits(space, arch)
    side = _side(resolution, 2)
    convs = [(3, BASE_CHANNELS // 2, 3, side, BASE_CHANNELS // 2)]
    side = _side(side, 2)
    convs.append((BASE_CHANNELS // 2, BASE_CHANNELS, 3, side, BASE_CHANNELS))
    for _, _, c_in, c_out, stride in _blocks(digits):
        convs += _micro_convs(ops, c_in, c_out, stride, side) if micro else _basic_convs(c_in, c_out, stride, side)
        side = _side(side, stride)
    return convs


def encoder_width(space: str, arch: str) -> int:
    return BASE_CHANNELS * 2 ** sum(map(_doubles, stage_digits(space, arch)))


class ReLUConvBN(nn.Module):
    """ReLU → conv (no bias) → BN, registered as ``ops.0/1/2`` like the benchmark's."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.ops = relu_conv_bn(c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ops(x)


class Zero(nn.Module):
    """The ``none`` op: zeros of the output's shape (channels ``c_out``, side /stride). Derived from
    the input (x·0, as the benchmark does without a width change) so that every upstream parameter
    stays in the autograd graph with a zero gradient, where the benchmark's fresh zeros would leave
    it without one; the values are the same."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zeros = x[:, :, :: self.stride, :: self.stride].mul(0.0)
        if self.c_in == self.c_out:
            return zeros
        return zeros[:, :1].expand(-1, self.c_out, -1, -1)


class FactorizedReduce(nn.Module):
    """ReLU, two stride-``stride`` 1×1 convs (the second on the input shifted by one pixel) of
    C_out/2 channels each, concatenated, BN: the skip op where the width or resolution changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c, 1, stride=stride, bias=False)
                                   for c in (c_out // 2, c_out - c_out // 2))
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = self.pad(x)[:, :, 1:, 1:]
        return self.bn(torch.cat([self.convs[0](x), self.convs[1](shifted)], dim=1))


def _micro_op(op: int, c_in: int, c_out: int, stride: int) -> nn.Module:
    if op == 0:
        return Zero(c_in, c_out, stride)
    if op == 1:
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    return ReLUConvBN(c_in, c_out, CONV_KERNELS[op], stride)


class MicroCell(nn.Module):
    """Node j = Σ_i op_ij(node i); edges leaving node 0 carry the stride and width change."""

    def __init__(self, ops: Sequence[int], c_in: int, c_out: int, stride: int):
        super().__init__()
        self.edges = nn.ModuleList(
            _micro_op(op, c_in, c_out, stride) if source == 0 else _micro_op(op, c_out, c_out, 1)
            for (source, _), op in zip(EDGES, ops)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 4):
            terms = (self.edges[i](nodes[source]) for i, (source, node) in enumerate(EDGES) if node == target)
            nodes.append(functools.reduce(operator.add, terms))
        return nodes[-1]


class BasicBlock(nn.Module):
    """ReLU-conv3×3-BN twice, plus the input (or its 1×1 conv+BN where stride or width change)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class Encoder(nn.Module):
    """The benchmark's ``MacroNet(arch, structure='backbone')``: stem, then ``layer{i}`` = two blocks
    per stage digit. Returns the last feature map."""

    def __init__(self, space: str, arch: str):
        super().__init__()
        half = BASE_CHANNELS // 2
        self.stem = nn.Sequential(nn.Conv2d(3, half, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(half),
                                  ReLUConvBN(half, BASE_CHANNELS, 3, 2))
        micro = space == "tnb_micro"
        ops = parse_micro(arch) if micro else None
        digits = stage_digits(space, arch)
        stages: list[list[nn.Module]] = [[] for _ in digits]
        for stage, _, c_in, c_out, stride in _blocks(digits):
            stages[stage].append(MicroCell(ops, c_in, c_out, stride) if micro else BasicBlock(c_in, c_out, stride))
        self.num_stages = len(digits)
        for i, blocks in enumerate(stages):
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        for module in self.modules():  # the benchmark's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def blocks(self) -> list[nn.Module]:
        return [block for i in range(self.num_stages) for block in getattr(self, f"layer{i}")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i}")(x)
        return x


class LinearDecoder(nn.Module):
    """The benchmark's ``FFDecoder`` (and ``SiameseDecoder``): global average pool, flatten, linear."""

    def __init__(self, width: int, outputs: int):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))


class DecoderLayer(nn.Module):
    """The benchmark's ``ConvLayer``/``DeconvLayer``: conv3×3 (stride 1, or transposed with stride 2
    doubling the side), then BN and the activation where given."""

    def __init__(self, c_in: int, c_out: int, transposed: bool, activation: nn.Module | None, norm: bool):
        super().__init__()
        self.conv = (nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1) if transposed
                     else nn.Conv2d(c_in, c_out, 3, padding=1))
        self.activation = activation
        self.norm = nn.BatchNorm2d(c_out) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return x if self.activation is None else self.activation(x)


def dense_decoder_layers(task: str, width: int, upsamples: int) -> list[tuple[int, int, bool]]:
    """(c_in, c_out, transposed) of the dense decoder of ``task`` from ``width`` channels, upsampling
    2^``upsamples`` times; every layer but the last has BN and LeakyReLU."""
    if upsamples not in range(2, 7):
        raise ValueError(f"the {task} decoder upsamples 2 to 6 times, not {upsamples}")
    if task == "segmentsemantic":
        channels, layers = 1024, [(width, 1024, False)]
        for transposed, count in ((False, 6 - upsamples), (True, upsamples - 1)):
            for _ in range(count):
                layers.append((channels, channels // 2, transposed))
                channels //= 2
        return layers + [(channels, channels, True), (channels, DENSE_CHANNELS[task], False)]
    # GenerativeDecoder: layer i+1 goes widths[i] -> widths[i+1]; the 3rd, 5th, 7th, 9th are transposed
    # when upsamples >= 6, 5, 4, 3, the 11th and 13th always.
    widths = (width, 1024, 1024, 512, 512, 256, 128, 64, 64, 32, 32, 16, 32, 16, DENSE_CHANNELS[task])
    transposed = {3: upsamples >= 6, 5: upsamples >= 5, 7: upsamples >= 4, 9: upsamples >= 3, 11: True, 13: True}
    return [(widths[i], widths[i + 1], transposed.get(i + 1, False)) for i in range(len(widths) - 1)]


class DenseDecoder(nn.Module):
    """The benchmark's ``SegmentationDecoder`` or ``GenerativeDecoder`` (``model`` or ``conv1``..``conv14``)."""

    def __init__(self, task: str, width: int, upsamples: int):
        super().__init__()
        layers = dense_decoder_layers(task, width, upsamples)
        last = len(layers) - 1
        # The generative decoder's images end in tanh; the segmentation's logits in nothing.
        final = None if task == "segmentsemantic" else nn.Tanh()
        self.model = nn.Sequential(*(DecoderLayer(a, b, t, nn.LeakyReLU(0.2) if i < last else final, i < last)
                                     for i, (a, b, t) in enumerate(layers)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class TransNASNetwork(nn.Module):
    """The benchmark's network of one task: ``FeedForwardNet``, ``SiameseNet`` (jigsaw) or
    ``Segmentation``/``GAN``'s generator (dense tasks) around the encoder. ``forward`` returns
    (N, outputs) for the linear heads, (N, channels, side, side) for the dense decoders."""

    def __init__(self, space: str, arch: str, task: str, outputs: int | None):
        super().__init__()
        self.arch = arch
        self.task = task
        self.encoder = Encoder(space, arch)
        width = encoder_width(space, arch)
        if task in DENSE_CHANNELS:
            self.decoder = DenseDecoder(task, width, upsamples(space, arch))
        else:
            self.decoder = LinearDecoder(head_features(task, width), outputs)

    def feature_blocks(self) -> list[nn.Module]:
        """The stem, then every cell or block in forward order (AZ-NAS's feature maps)."""
        return [self.encoder.stem, *self.encoder.blocks()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.task == "jigsaw":
            if x.dim() != 5 or x.shape[1] != JIGSAW_TILES:
                raise ValueError(f"the jigsaw network takes (N, {JIGSAW_TILES}, 3, tile, tile) tiles, got "
                                 f"{tuple(x.shape)}")
            return self.decoder(torch.cat([self.encoder(x[:, i]) for i in range(JIGSAW_TILES)], dim=1))
        return self.decoder(self.encoder(x))


def head_features(task: str, width: int) -> int:
    """Inputs of a linear head on the encoder's ``width`` channels (jigsaw's: the 9 tiles' together)."""
    return width * (JIGSAW_TILES if task == "jigsaw" else 1)


def upsamples(space: str, arch: str) -> int:
    """How many times a dense decoder doubles the encoder's side back to the input's: the stem's two
    halvings and the stages'."""
    return 2 + sum(map(_halves, stage_digits(space, arch)))


def decoder_cost(task: str, width: int, side: int, ups: int, outputs: int | None) -> tuple[float, float, int]:
    """(multiply-accumulates, parameters, layers) of the task's decoder on a ``side``×``side``
    encoder output of ``width`` channels (for jigsaw, ``width`` of one tile)."""
    if task not in DENSE_CHANNELS:
        features = head_features(task, width)
        return float(features * outputs), float((features + 1) * outputs), 1
    macs = params = 0
    layers = dense_decoder_layers(task, width, ups)
    for i, (a, b, transposed) in enumerate(layers):
        # A transposed conv scatters every input element over b x 3 x 3 outputs; a conv gathers a x 3 x 3.
        macs += a * b * 9 * side * side
        side = 2 * side if transposed else side
        params += a * b * 9 + b + (2 * b if i < len(layers) - 1 else 0)
    return float(macs), float(params), len(layers)


# ---------------------------------------------------------------- the search spaces


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown TransNAS-Bench-101 task {task!r}; tasks are {TASKS}")
    return task


class _TransNASSpace(SearchSpace):
    """One TransNAS-Bench-101 space for one task (``dataset``), at ``resolution``×``resolution``
    (None: the benchmark's ``RESOLUTION``; jigsaw's tiles a quarter of it), with the task's head
    outputs or ``num_classes`` (None for the dense tasks, which have no logits)."""

    name: str

    def __init__(self, dataset: str = "class_scene", resolution: int | None = None, num_classes: int | None = None):
        self.dataset = _check_task(dataset)
        resolution = RESOLUTION if resolution is None else resolution
        if not isinstance(resolution, int) or resolution < 16:
            raise ValueError(f"resolution must be an integer of at least 16 (5 halvings in the micro "
                             f"encoder), got {resolution!r}")
        if num_classes is not None:
            if self.dataset in DENSE_CHANNELS:
                raise ValueError(f"task {self.dataset!r} has a dense decoder of {DENSE_CHANNELS[self.dataset]} "
                                 "output channels, not class logits: num_classes does not apply")
            if not isinstance(num_classes, int) or num_classes < 2:
                raise ValueError(f"num_classes must be an integer >= 2 or None (the task's), got {num_classes!r}")
        self.resolution = resolution
        if self.dataset == "jigsaw":
            tile = resolution // JIGSAW_TILE_SHARE
            self.input_shape = (JIGSAW_TILES, 3, tile, tile)
        else:
            self.input_shape = (3, resolution, resolution)
        self.num_classes = HEAD_OUTPUTS.get(self.dataset) if num_classes is None else num_classes

    def build_model(self, arch: str) -> TransNASNetwork:
        return TransNASNetwork(self.name, self.validate(arch), self.dataset, self.num_classes)

    def cost(self, arch: str) -> dict[str, float]:
        """Conv + linear multiply-accumulates at batch 1 (jigsaw's encoder once per tile), parameters
        (BN γ, β included, running statistics not), conv + linear layers."""
        convs = convolutions(self.name, arch, self.input_shape[-1])
        calls = JIGSAW_TILES if self.dataset == "jigsaw" else 1
        width, side = encoder_width(self.name, arch), convs[-1][3]
        macs, params, layers = decoder_cost(self.dataset, width, side, upsamples(self.name, arch), self.num_classes)
        return {
            "flops": calls * float(sum(a * b * k * k * s * s for a, b, k, s, _ in convs)) + macs,
            "params": float(sum(a * b * k * k + 2 * bn for a, b, k, _, bn in convs)) + params,
            "layers": float(len(convs) + layers),
        }

    def initial(self, rng: np.random.Generator) -> str:
        return self.sample(rng)

    def enumerate(self) -> Iterator[str]:
        return iter(self._archs())

    def sample(self, rng: np.random.Generator) -> str:
        """Uniform over the space."""
        archs = self._archs()
        return archs[int(rng.integers(len(archs)))]

    def _archs(self) -> tuple[str, ...]:
        raise NotImplementedError


@register_space("tnb_micro")
class TransNASMicroSpace(_TransNASSpace):
    """TransNAS-Bench-101's cell space: 4,096 cells in the ``64-41414-...`` skeleton."""

    name = "tnb_micro"

    def validate(self, arch: str) -> str:
        parse_micro(arch)
        return arch

    def _archs(self) -> tuple[str, ...]:
        return micro_archs()

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """Change the op of one edge, drawn uniformly, to one of the other three, uniformly (NASLib's
        TransNAS-Bench-101 mutation)."""
        return format_micro(change_one(parse_micro(arch), range(len(OPS)), rng))


@register_space("tnb_macro")
class TransNASMacroSpace(_TransNASSpace):
    """TransNAS-Bench-101's macro space: 3,256 layouts of 4-6 stages of ResNet basic blocks."""

    name = "tnb_macro"

    def validate(self, arch: str) -> str:
        parse_macro(arch)
        return arch

    def _archs(self) -> tuple[str, ...]:
        return macro_archs()

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """One edit of the stage digits, uniform over the layouts in the space that one edit reaches:
        change one digit, insert a digit anywhere, or delete one. (NASLib instead redraws a whole
        permutation after changing a count; this keeps the child next to its parent.)"""
        digits = parse_macro(arch)
        neighbours = set()
        for i in range(len(digits) + 1):
            for d in (1, 2, 3, 4):
                neighbours.add(digits[:i] + (d,) + digits[i:])
                if i < len(digits):
                    neighbours.add(digits[:i] + (d,) + digits[i + 1:])
            if i < len(digits):
                neighbours.add(digits[:i] + digits[i + 1:])
        neighbours.discard(digits)
        inside = sorted(n for n in neighbours if not macro_problem(n))
        return format_macro(inside[int(rng.integers(len(inside)))])
