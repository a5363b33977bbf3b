"""The MobileNetV2-like "IDW" search space of ZenNAS / AZ-NAS, as VKDNW searched it (docs/method.md §7).

Architecture strings
--------------------
We keep the ZenNAS block-string format, so a structure printed by the authors' search (their
``best_structure.txt``) can be read unchanged::

    SuperConvK3BNRELU(3,8,2,1)SuperResIDWE6K3(8,32,2,8,1)SuperResIDWE6K3(32,48,2,32,1)
    SuperResIDWE6K3(48,96,2,48,1)SuperResIDWE6K3(96,128,2,96,1)SuperConvK1BNRELU(128,2048,1,1)

(one line; whitespace between and inside blocks is accepted and dropped by the canonical form).

* ``SuperConvK3BNRELU(in,out,stride,sub_layers)``: the stem, first and only there; ``in`` = 3.
* ``SuperResIDWE{E}K{K}(in,out,stride,bottleneck,sub_layers)``, E in {1,2,4,6}, K in {3,5,7}.
* ``SuperConvK1BNRELU(in,out,stride,sub_layers)``: the head, last and only there.

Stem and head have exactly one sub-layer (the authors' mutation always writes 1); stride is 1 or 2;
channels are positive; each block's ``in`` equals the previous block's ``out``.

What the authors' code does (VKDNW repo, ``ImageNet_MBV2/``, from ZenNAS), and what we follow
------------------------------------------------------------------------------------------------
Blocks (``PlainNet/SuperResIDWEXKX.py``, ``basic_blocks.py``, ``super_blocks.py``):

* ``SuperConvK{1,3}BNRELU``: conv KxK (no bias, padding (K-1)//2) - BN - ReLU. Followed.
* ``SuperResIDWE{E}K{K}(in, out, s, b, n)``: each of the n sub-layers is *two* inverted-residual
  units, each ``conv1x1 - BN - ReLU - depthwise KxK - BN - ReLU - conv1x1 - BN``, plus a shortcut,
  then ReLU after the sum (so every unit ends in a ReLU, unlike MobileNetV2's linear bottleneck):

  - unit A: ``c -> m_A = round8(b*E) -> b``, the depthwise conv carries the stride (s for the
    first sub-layer, 1 after); c = ``in`` for the first sub-layer, ``out`` after;
  - unit B: ``b -> m_B = round8(out*E) -> out``, stride 1.

  ``round8(x) = max(8, round(x / 8) * 8)`` (``global_utils.smart_round``, Python's
  round-half-even). Shortcut: unit A of the first sub-layer is a ``ResBlockProj`` whose shortcut is
  *always* a projection; every other unit is a ``ResBlock``, projecting only when its stride > 1 or
  its input and output channels differ, identity otherwise. The projection is
  ``nn.Conv2d(c_in, c_out, 1, stride)`` - with PyTorch's default bias, which the authors keep -
  then BN. All followed, including the bias, and the parameter registration order (unit convs and
  BNs in forward order, then the projection; stem, units, head, then the classifier), so that
  ``list(model.parameters())`` has the authors' length and order (the ``paper`` aleph and weight
  sampling of docs/method.md §3 depend on both). ``MasterNet`` sets every BN's eps to 1e-3: followed.
* Network (``Masternet.py``): the blocks, global average pooling, ``Linear(head_out, classes)``
  with bias. Followed. The MBV2 VKDNW/AZ-NAS scorers take their layer features after every ReLU
  at the top level of a block (``extract_layer_features_and_logit``): the stem's, each unit's, the
  head's. ``feature_blocks()`` returns exactly those modules: [stem, unit, unit, ..., head], each
  unit containing its shortcut, so each one's input is the previous one's output.

Size figures:

* ``num_layers``: ``MasterNet.get_num_layers`` is the sum of ``sub_layers`` over all blocks, stem
  and head included (so an IDW sub-layer, six convolutions or more, counts 1). ``--max_layers 14``
  rejects a candidate with more. Followed: the initial net has 1 + 4 + 1 = 6.
* FLOPs: the authors' ``get_FLOPs`` (compared with the budget, and AZ-NAS's "complexity") is
  not a MAC count: it adds one per BN output element, costs a projection shortcut at the
  resolution *after* its stride divided by the stride again (a quarter of the true cost when
  s = 2) plus one per output element for its BN, and takes resolutions as ``r // stride``. Our
  ``flops`` is the exact conv + linear multiply-accumulates of the built network at batch 1
  (resolutions ``ceil(r / stride)``, as the convolutions produce). The faults partly cancel (BN
  terms add, the shrunken projections subtract): at 224 the authors' count is 162,396,776 for the
  initial net against 159,334,080 MACs (+1.9%), and -5% to +3% of the MACs along a feasible
  random walk of 2000 mutations, so a net near the 450M edge can be feasible under one count and
  not the other. ``authors_flops`` reproduces their count exactly;
  ``MBV2Space(flops_count="authors")`` uses it for the budget, to get their feasible set.

Mutation (``evolution_search_vkdnw.py:get_new_random_structure_str`` with
``SearchSpace/search_space_IDW_fixfc.py:gen_search_space``):

* ``num_replaces`` block indices are drawn uniformly over *all* blocks (stem and head included),
  one after the other; a repeated index is skipped, so 1 or 2 distinct blocks are replaced. The
  search uses ``num_replaces=1`` while the population has at most 10 members (all mutants of the
  initial net) and 2 afterwards. Followed (``num_replaces`` argument, default 2).
* The head (kernel 1, "fixfc") has only itself as candidate: drawing it changes nothing.
* The stem keeps its type and stride; only its output channels change.
* An IDW block keeps its stride; its type is any of the 12, its out channels and bottleneck
  channels are each drawn from ``{round8(c * f)}`` for f in 2.5, 2, 1.5, 1.25, 1 and
  ``c / f`` for f in 1.25, 1.5, 2, 2.5 (duplicates merged, so small widths have fewer choices),
  its sub-layers from ``{n-2, ..., n+2}`` with values below 1 dropped. The new block is drawn
  uniformly among all distinct (type, out, sub-layers, bottleneck) strings, which is the same as
  drawing the four independently and uniformly among their distinct values: so we do.
* Then every block's ``in`` is set to the previous block's ``out``, and every IDW block with
  ``sub_layers >= 6`` is split (``split(split_layer_threshold=6)``) into
  ``(in, out, s, b, 3)`` followed by ``(out, out, 1, b, n - 3)``. The authors split the whole net
  twice (once in the mutation, once after); we split until no block has 6 or more sub-layers,
  which is the same for every net their search can produce (after a split no block has more
  than 5, so a mutation makes at most 7, split once into 3 + 4).
* Candidates with more than ``max_layers`` layers or over the FLOPs budget are discarded without
  counting as an iteration (the search driver's business; ``MBV2Space.is_feasible`` decides).

Initial net: the authors' script (``scripts/search_AZ-NAS_flops450M-bs64.sh``) writes the string
above to ``init_plainnet.txt`` and passes ``--plainnet_struct_txt``; ``--init_net`` is left None,
so ``MasterNet`` (through ``PlainNet``'s own parsing of ``sys.argv``) loads that file. Bottleneck
= the block's input channels, one sub-layer each. ``initial_arch()`` returns it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import SearchSpace
from .registry import register_space

STEM = "SuperConvK3BNRELU"
HEAD = "SuperConvK1BNRELU"
EXPANSIONS = (1, 2, 4, 6)
KERNELS = (3, 5, 7)
# Sorted by name, as the authors sort their candidate strings.
IDW_TYPES: dict[str, tuple[int, int]] = dict(sorted(
    (f"SuperResIDWE{e}K{k}", (e, k)) for e in EXPANSIONS for k in KERNELS))
_SCALE_UP = (2.5, 2.0, 1.5, 1.25, 1.0)  # channels * f, and channels / f for f != 1
SUB_LAYER_DELTAS = (-2, -1, 0, 1, 2)
SPLIT_THRESHOLD = 6
# The search replaces 1 block while the population has at most this many members, 2 afterwards.
SINGLE_REPLACE_POPULATION = 10
BN_EPS = 1e-3
INPUT_CHANNELS = 3

_INITIAL = (f"{STEM}(3,8,2,1)SuperResIDWE6K3(8,32,2,8,1)SuperResIDWE6K3(32,48,2,32,1)"
            f"SuperResIDWE6K3(48,96,2,48,1)SuperResIDWE6K3(96,128,2,96,1){HEAD}(128,2048,1,1)")
_BLOCK = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\(([^()]*)\)\s*")
_INT = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Block:
    """One block of an architecture string; ``bottleneck`` is None for the stem and head."""

    kind: str
    in_channels: int
    out_channels: int
    stride: int
    sub_layers: int
    bottleneck: int | None = None

    @property
    def is_idw(self) -> bool:
        return self.kind in IDW_TYPES

    @property
    def expansion(self) -> int:
        return IDW_TYPES[self.kind][0]

    @property
    def kernel_size(self) -> int:
        return IDW_TYPES[self.kind][1] if self.is_idw else (3 if self.kind == STEM else 1)

    def __str__(self) -> str:
        if self.is_idw:
            return (f"{self.kind}({self.in_channels},{self.out_channels},{self.stride},"
                    f"{self.bottleneck},{self.sub_layers})")
        return f"{self.kind}({self.in_channels},{self.out_channels},{self.stride},{self.sub_layers})"


def initial_arch() -> str:
    """The authors' initial net (docs/method.md §7)."""
    return _INITIAL


def round8(x: float) -> int:
    """The authors' ``smart_round(x, base=8)``: nearest multiple of 8 (half to even), at least 8."""
    return max(8, round(x / 8) * 8)


def channel_choices(channels: int) -> list[int]:
    """The widths a mutation may give a block now ``channels`` wide, ascending."""
    scaled = [channels * f for f in _SCALE_UP] + [channels / f for f in _SCALE_UP[:-1]]
    return sorted({round8(c) for c in scaled})


def sub_layer_choices(sub_layers: int) -> list[int]:
    return sorted({sub_layers + d for d in SUB_LAYER_DELTAS if sub_layers + d >= 1})


# ----------------------------------------------------------------------------- parse / format

def _parse_block(index: int, text: str, kind: str, args: str) -> Block:
    where = f"block {index} {text!r}"
    if kind in IDW_TYPES:
        names = ("in_channels", "out_channels", "stride", "bottleneck", "sub_layers")
    elif kind in (STEM, HEAD):
        names = ("in_channels", "out_channels", "stride", "sub_layers")
    else:
        raise ValueError(f"{where}: unknown block type {kind!r}; expected {STEM} (stem), {HEAD} "
                         f"(head) or SuperResIDWE{{1,2,4,6}}K{{3,5,7}}")
    fields = args.split(",")
    if len(fields) != len(names):
        raise ValueError(f"{where}: {kind} takes {len(names)} integers ({', '.join(names)}), "
                         f"got {len(fields)}")
    values = {}
    for name, field in zip(names, fields):
        if not _INT.fullmatch(field.strip()):
            raise ValueError(f"{where}: {name} {field.strip()!r} is not an integer")
        values[name] = int(field)
    for name in ("in_channels", "out_channels", "bottleneck"):
        if name in values and values[name] < 1:
            raise ValueError(f"{where}: {name} must be positive, got {values[name]}")
    if values["stride"] not in (1, 2):
        raise ValueError(f"{where}: stride must be 1 or 2, got {values['stride']}")
    if values["sub_layers"] < 1:
        raise ValueError(f"{where}: sub_layers must be at least 1, got {values['sub_layers']}")
    if kind in (STEM, HEAD) and values["sub_layers"] != 1:
        raise ValueError(f"{where}: the {'stem' if kind == STEM else 'head'} has exactly 1 "
                         f"sub-layer in this space, got {values['sub_layers']}")
    return Block(kind, **values)


def parse(arch: str) -> list[Block]:
    """The blocks of ``arch``; ValueError naming the offending block and what is wrong."""
    if not isinstance(arch, str):
        raise ValueError(f"an architecture is a string, got {type(arch).__name__}")
    blocks: list[Block] = []
    pos = 0
    while pos < len(arch):
        m = _BLOCK.match(arch, pos)
        if m is None:
            if not arch[pos:].strip():
                break
            raise ValueError(f"cannot read block {len(blocks)} at character {pos}: "
                             f"{arch[pos:pos + 40]!r}; expected Name(int,int,...)")
        blocks.append(_parse_block(len(blocks), m.group(0).strip(), m.group(1), m.group(2)))
        pos = m.end()
    if len(blocks) < 2:
        raise ValueError(f"an architecture needs at least a stem ({STEM}) and a head ({HEAD}), "
                         f"got {len(blocks)} block(s) in {arch!r}")
    for i, b in enumerate(blocks):
        if b.kind == STEM and i != 0:
            raise ValueError(f"block {i} {str(b)!r}: {STEM} may only be the first block (the stem)")
        if b.kind == HEAD and i != len(blocks) - 1:
            raise ValueError(f"block {i} {str(b)!r}: {HEAD} may only be the last block (the head)")
    if blocks[0].kind != STEM:
        raise ValueError(f"block 0 {str(blocks[0])!r}: the first block must be the stem {STEM}")
    if blocks[-1].kind != HEAD:
        raise ValueError(f"block {len(blocks) - 1} {str(blocks[-1])!r}: the last block must be "
                         f"the head {HEAD}")
    if blocks[0].in_channels != INPUT_CHANNELS:
        raise ValueError(f"block 0 {str(blocks[0])!r}: the stem's in_channels must be "
                         f"{INPUT_CHANNELS} (the image channels), got {blocks[0].in_channels}")
    for i in range(1, len(blocks)):
        if blocks[i].in_channels != blocks[i - 1].out_channels:
            raise ValueError(f"block {i} {str(blocks[i])!r}: in_channels {blocks[i].in_channels} "
                             f"!= out_channels {blocks[i - 1].out_channels} of block {i - 1} "
                             f"{str(blocks[i - 1])!r}")
    return blocks


def format(blocks: list[Block]) -> str:  # noqa: A001 (the brief's name; the inverse of parse)
    """The canonical string of ``blocks`` (no whitespace)."""
    return "".join(str(b) for b in blocks)


# ----------------------------------------------------------------------------- structure

@dataclass(frozen=True)
class _Unit:
    """A ReLU-terminated unit of the network: ``mid`` is None for a conv-BN-ReLU, else the
    expanded width of an inverted-residual unit, whose shortcut is a projection if ``project``."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    mid: int | None = None
    project: bool = False


def _units(blocks: list[Block]) -> list[_Unit]:
    units = []
    for b in blocks:
        if not b.is_idw:
            units.append(_Unit(b.in_channels, b.out_channels, b.kernel_size, b.stride))
            continue
        k, e, btl = b.kernel_size, b.expansion, b.bottleneck
        for i in range(b.sub_layers):
            c_in, stride = (b.in_channels, b.stride) if i == 0 else (b.out_channels, 1)
            # ResBlockProj (always projects) for the first unit; ResBlock for the others.
            units.append(_Unit(c_in, btl, k, stride, round8(btl * e), project=i == 0 or c_in != btl))
            units.append(_Unit(btl, b.out_channels, k, 1, round8(b.out_channels * e),
                               project=btl != b.out_channels))
    return units


def _out_res(resolution: int, stride: int) -> int:
    # conv with padding (k-1)//2 and odd k (or k=1, padding 0): ceil(r / stride)
    return (resolution - 1) // stride + 1


def _conv_macs_params(c_in: int, c_out: int, k: int, groups: int, out_res: int) -> tuple[int, int]:
    weights = c_out * (c_in // groups) * k * k
    return weights * out_res * out_res, weights


def _count(arch: str, resolution: int, num_classes: int) -> tuple[int, int]:
    if resolution < 1 or num_classes < 1:
        raise ValueError(f"resolution and num_classes must be positive, got {resolution}, {num_classes}")
    blocks = parse(arch)
    macs = params = 0
    r = resolution
    for u in _units(blocks):
        r_out = _out_res(r, u.stride)
        if u.mid is None:
            convs = [(u.in_channels, u.out_channels, u.kernel_size, 1, r_out)]
            bn_channels = u.out_channels
        else:  # the expansion runs before the depthwise stride
            convs = [(u.in_channels, u.mid, 1, 1, r), (u.mid, u.mid, u.kernel_size, u.mid, r_out),
                     (u.mid, u.out_channels, 1, 1, r_out)]
            bn_channels = 2 * u.mid + u.out_channels
            if u.project:
                convs.append((u.in_channels, u.out_channels, 1, 1, r_out))
                bn_channels += u.out_channels
                params += u.out_channels  # the projection's conv bias
        for c_in, c_out, k, groups, res in convs:
            m, p = _conv_macs_params(c_in, c_out, k, groups, res)
            macs, params = macs + m, params + p
        params += 2 * bn_channels
        r = r_out
    head = blocks[-1].out_channels
    return macs + head * num_classes, params + head * num_classes + num_classes


def flops(arch: str, resolution: int = 224, num_classes: int = 1000) -> int:
    """Exact conv + linear multiply-accumulates of the built network at batch 1."""
    return _count(arch, resolution, num_classes)[0]


def authors_flops(arch: str, resolution: int = 224, num_classes: int = 1000) -> float:
    """The authors' ``MasterNet.get_FLOPs``, whose faults (module docstring) are kept on purpose:
    what their search compared with the budget and AZ-NAS ranks as "complexity"."""
    if resolution < 1 or num_classes < 1:
        raise ValueError(f"resolution and num_classes must be positive, got {resolution}, {num_classes}")
    blocks = parse(arch)
    total = 0.0
    r = resolution
    for u in _units(blocks):
        s, k, r_out = u.stride, u.kernel_size, r // u.stride
        if u.mid is None:
            total += u.in_channels * u.out_channels * k * k * r * r // (s * s)
            total += u.out_channels * r_out * r_out  # BN
        else:
            total += u.in_channels * u.mid * r * r + u.mid * r * r  # expand conv, BN
            total += u.mid * k * k * r * r // (s * s) + u.mid * r_out * r_out  # depthwise, BN
            total += (u.mid + 1) * u.out_channels * r_out * r_out  # project conv, BN
            if u.project:  # at the already strided resolution, divided by the stride again
                total += (u.in_channels + 1) * u.out_channels * (r_out / s) ** 2
        r = r_out
    return total + blocks[-1].out_channels * num_classes


def params(arch: str, num_classes: int = 1000) -> int:
    """Number of trainable parameters of the built network."""
    return _count(arch, 1, num_classes)[1]


def num_layers(arch: str) -> int:
    """The authors' layer count for ``--max_layers``: sum of sub_layers, stem and head included."""
    return sum(b.sub_layers for b in parse(arch))


# ----------------------------------------------------------------------------- model

def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class ConvBNReLU(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int):
        super().__init__(nn.Conv2d(c_in, c_out, kernel_size, stride, (kernel_size - 1) // 2, bias=False),
                         _bn(c_out), nn.ReLU())


class InvertedResidual(nn.Module):
    """relu(BN(conv1x1(relu(BN(dwKxK(relu(BN(conv1x1(x)))))))) + shortcut(x))."""

    def __init__(self, c_in: int, mid: int, c_out: int, kernel_size: int, stride: int, project: bool):
        super().__init__()
        if not project and (stride != 1 or c_in != c_out):
            raise ValueError(f"an identity shortcut needs stride 1 and equal widths, got "
                             f"stride {stride}, {c_in} -> {c_out}")
        self.expand = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = _bn(mid)
        self.depthwise = nn.Conv2d(mid, mid, kernel_size, stride, (kernel_size - 1) // 2,
                                   groups=mid, bias=False)
        self.bn2 = _bn(mid)
        self.project = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = _bn(c_out)
        # Registered after the branch, as the authors' ResBlock(Proj) does (parameter order).
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride), _bn(c_out)) if project else None
        # ReLU modules rather than F.relu, so activation hooks (NASWOT) see every one.
        self.act1, self.act2, self.act_out = nn.ReLU(), nn.ReLU(), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.bn1(self.expand(x)))
        y = self.act2(self.bn2(self.depthwise(y)))
        y = self.bn3(self.project(y))
        return self.act_out(y + (x if self.shortcut is None else self.shortcut(x)))


class MBV2Net(nn.Module):
    """Stem, inverted-residual units, head (all in ``features``), global average pool, Linear."""

    def __init__(self, arch: str, num_classes: int = 1000):
        super().__init__()
        blocks = parse(arch)
        self.arch = format(blocks)
        self.features = nn.Sequential(*(
            ConvBNReLU(u.in_channels, u.out_channels, u.kernel_size, u.stride) if u.mid is None
            else InvertedResidual(u.in_channels, u.mid, u.out_channels, u.kernel_size, u.stride, u.project)
            for u in _units(blocks)))
        self.classifier = nn.Linear(blocks[-1].out_channels, num_classes)

    def feature_blocks(self) -> list[nn.Module]:
        """[stem, every inverted-residual unit, head] in forward order: each one's input is the
        previous one's output, and each output is one of the authors' MBV2 layer features."""
        return list(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


def build_model(arch: str, num_classes: int = 1000) -> MBV2Net:
    return MBV2Net(arch, num_classes)


# ----------------------------------------------------------------------------- mutation

def _pick(values: list, rng: np.random.Generator):
    return values[int(rng.integers(len(values)))]


def _mutate_block(b: Block, rng: np.random.Generator) -> Block:
    if b.kind == HEAD:
        return b
    if b.kind == STEM:
        return replace(b, out_channels=_pick(channel_choices(b.out_channels), rng))
    return replace(b, kind=_pick(list(IDW_TYPES), rng),
                   out_channels=_pick(channel_choices(b.out_channels), rng),
                   bottleneck=_pick(channel_choices(b.bottleneck), rng),
                   sub_layers=_pick(sub_layer_choices(b.sub_layers), rng))


def _split(blocks: list[Block]) -> list[Block]:
    out: list[Block] = []
    pending = list(blocks)
    while pending:
        b = pending.pop(0)
        if b.is_idw and b.sub_layers >= SPLIT_THRESHOLD:
            first = SPLIT_THRESHOLD // 2
            pending[:0] = [replace(b, sub_layers=first),
                           replace(b, in_channels=b.out_channels, stride=1, sub_layers=b.sub_layers - first)]
        else:
            out.append(b)
    return out


def mutate(arch: str, rng: np.random.Generator, num_replaces: int = 2) -> str:
    """Replace ``num_replaces`` uniformly drawn blocks (repeats skipped) as the authors do; then
    re-chain the channels and split blocks of 6 or more sub-layers. See the module docstring."""
    if num_replaces < 1:
        raise ValueError(f"num_replaces must be at least 1, got {num_replaces}")
    blocks = parse(arch)
    replaced: set[int] = set()
    for _ in range(num_replaces):
        i = int(rng.integers(len(blocks)))
        if i not in replaced:
            replaced.add(i)
            blocks[i] = _mutate_block(blocks[i], rng)
    for i in range(1, len(blocks)):
        blocks[i] = replace(blocks[i], in_channels=blocks[i - 1].out_channels)
    return format(_split(blocks))


# ----------------------------------------------------------------------------- the space

@register_space("mbv2")
class MBV2Space(SearchSpace):
    """The IDW space at a fixed task. Feasible: FLOPs <= ``flops_budget`` at ``resolution`` and
    the authors' layer count <= ``max_layers``. ``flops_count`` says which FLOPs: ``macs`` (exact
    multiply-accumulates, ``flops``) or ``authors`` (their ``get_FLOPs``, ``authors_flops``, to
    reproduce their feasible set; within a few percent of the MACs).

    ``sample`` walks ``sample_steps`` mutations from the initial net, each step drawing mutants
    of the current net until one is feasible (at most ``max_tries``), so a sample is feasible.
    """

    sample_steps = 10
    max_tries = 1000

    def __init__(self, resolution: int = 224, num_classes: int = 1000, flops_budget: float = 450e6,
                 max_layers: int = 14, flops_count: str = "macs"):
        if resolution < 1 or num_classes < 1 or max_layers < 1 or flops_budget <= 0:
            raise ValueError(f"invalid MBV2Space(resolution={resolution}, num_classes={num_classes}, "
                             f"flops_budget={flops_budget}, max_layers={max_layers})")
        if flops_count not in ("macs", "authors"):
            raise ValueError(f"flops_count must be 'macs' or 'authors', got {flops_count!r}")
        self.resolution = resolution
        self.num_classes = num_classes
        self.flops_budget = flops_budget
        self.max_layers = max_layers
        self.flops_count = flops_count
        self.input_shape = (INPUT_CHANNELS, resolution, resolution)

    def validate(self, arch: str) -> str:
        return format(parse(arch))

    def mutate(self, arch: str, rng: np.random.Generator, num_replaces: int = 2) -> str:
        return mutate(arch, rng, num_replaces)

    def initial(self, rng: np.random.Generator) -> str:
        """The authors' initial net (draws nothing from ``rng``)."""
        return initial_arch()

    def evolve(self, parent: str, rng: np.random.Generator, population_size: int) -> str:
        """The authors' step: 1 block replaced while the population has at most
        ``SINGLE_REPLACE_POPULATION`` members (all mutants of the initial net), 2 afterwards."""
        return mutate(parent, rng, num_replaces=1 if population_size <= SINGLE_REPLACE_POPULATION else 2)

    def sample(self, rng: np.random.Generator) -> str:
        arch = initial_arch()
        for step in range(self.sample_steps):
            for _ in range(self.max_tries):
                candidate = mutate(arch, rng)
                ok, reason = self.is_feasible(candidate)
                if ok:
                    arch = candidate
                    break
            else:
                raise RuntimeError(f"sample: no feasible mutant of {arch!r} in {self.max_tries} "
                                   f"tries at step {step} (last: {reason})")
        return arch

    def build_model(self, arch: str) -> MBV2Net:
        return MBV2Net(arch, self.num_classes)

    def cost(self, arch: str) -> dict[str, float]:
        """``flops`` (exact MACs), ``authors_flops``, ``params`` and ``layers``."""
        macs, n_params = _count(arch, self.resolution, self.num_classes)
        return {"flops": float(macs), "authors_flops": authors_flops(arch, self.resolution, self.num_classes),
                "params": float(n_params), "layers": float(num_layers(arch))}

    def is_feasible(self, arch: str) -> tuple[bool, str]:
        cost = self.cost(arch)
        key = "flops" if self.flops_count == "macs" else "authors_flops"
        problems = []
        if cost[key] > self.flops_budget:
            problems.append(f"{key} {cost[key]:.0f} > budget {self.flops_budget:.0f}")
        if cost["layers"] > self.max_layers:
            problems.append(f"layers {cost['layers']:.0f} > max_layers {self.max_layers}")
        return not problems, "; ".join(problems)


__all__ = ["Block", "MBV2Net", "MBV2Space", "IDW_TYPES", "STEM", "HEAD", "authors_flops",
           "build_model", "channel_choices", "flops", "format", "initial_arch", "mutate", "num_layers", "params",
           "parse", "round8", "sub_layer_choices"]
