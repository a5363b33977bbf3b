"""Published rankings to set beside a run's. NAS-Bench-201: the VKDNW paper's Table I (the 9,445 unique
cells) and Table VI (all 15,625), Týbl & Neumann, CVPR 2025 — KT / SPR / nDCG@1000 against the 200-epoch
accuracy, the mean over 5 runs, every proxy recomputed by those authors under one protocol (the
protocol this project reproduces, docs/method.md §5), which is why they are the reference here rather
than each proxy's own paper (whose protocols, subsets and metrics differ). GradSign's row (SPR on
CIFAR-10 only) and the model-driven rows are left out.

A ranking of a run maps to a row by its proxy (preset suffix dropped): the eq. 15 aggregates by their
set of proxies (the default ``aggregate`` is VKDNW_agg; TE-NAS is the rank combination of its two
measures, AZ-NAS of its three and FLOPs).

NAS-Bench-101 and TransNAS-Bench-101: NAS-Bench-Suite-Zero's Spearman ρ of its 13 proxies with the
validation metric (Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks), each the mean over 10
samples of 1,000 architectures (seeds 9000-9009), a proxy that was NaN counted as 0 (so their 0.00
often means "undefined"), computed with NASLib's own networks on real images and labels. Read from the
heat-map that NASLib's ``zerocost`` branch saves in ``plotting/PlotCorrelations.ipynb`` (commit
c3085d52, "Spearman rank correlations between ZC proxy values and validation accuracies"), two decimals.

NAS-Bench-201, each proxy's own paper (``own_paper``): KT and SPR where the paper gives them (NaN where
it gives one of the two), as printed, under that paper's protocol (``_OWN_PAPER`` says which); real
images and labels throughout, unlike this project's Gaussian inputs and random labels. Elsewhere:
NASWOT's KT on NAS-Bench-101.
Found nothing for NAS-Bench-201 in the papers read here: Zen-NAS (its correlations are on ResNet-50
variants), EPE-NAS, MeCo_opt, plain SWAP; TE-NAS's KT −0.42 (NTK condition number) and 0.50 (linear
regions) do not name their dataset, and so are left out.
"""
from __future__ import annotations

import math

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")

# Per row: (KT, SPR, nDCG) on cifar10, cifar100, ImageNet16-120, as printed.
_TABLE_I = {
    "FLOPs": (0.623, 0.799, 0.745, 0.586, 0.763, 0.576, 0.545, 0.718, 0.403),
    "GradNorm": (0.328, 0.438, 0.509, 0.341, 0.451, 0.278, 0.310, 0.418, 0.265),
    "GraSP": (0.352, 0.505, 0.518, 0.349, 0.498, 0.284, 0.359, 0.502, 0.281),
    "SNIP": (0.431, 0.591, 0.513, 0.440, 0.597, 0.286, 0.389, 0.521, 0.286),
    "SynFlow": (0.561, 0.758, 0.709, 0.553, 0.750, 0.594, 0.531, 0.719, 0.511),
    "Jacov": (0.616, 0.800, 0.540, 0.639, 0.820, 0.402, 0.602, 0.779, 0.356),
    "NASWOT": (0.571, 0.762, 0.607, 0.607, 0.799, 0.475, 0.605, 0.794, 0.490),
    "ZenNAS": (0.102, 0.103, 0.120, 0.079, 0.072, 0.115, 0.091, 0.109, 0.073),
    "ZiCo": (0.607, 0.802, 0.751, 0.614, 0.809, 0.607, 0.587, 0.779, 0.523),
    "TE-NAS": (0.536, 0.722, 0.602, 0.537, 0.723, 0.327, 0.523, 0.709, 0.330),
    "AZ-NAS": (0.712, 0.892, 0.749, 0.696, 0.880, 0.549, 0.673, 0.859, 0.534),
    "trainable layers": (0.626, 0.767, 0.671, 0.646, 0.787, 0.525, 0.623, 0.764, 0.497),
    "VKDNW_single": (0.618, 0.815, 0.751, 0.634, 0.829, 0.617, 0.622, 0.814, 0.608),
    "VKDNW_agg": (0.750, 0.919, 0.785, 0.753, 0.919, 0.636, 0.743, 0.906, 0.664),
}
_TABLE_VI = {
    "FLOPs": (0.578, 0.753, 0.729, 0.551, 0.727, 0.565, 0.517, 0.691, 0.386),
    "GradNorm": (0.356, 0.483, 0.407, 0.359, 0.489, 0.202, 0.322, 0.441, 0.192),
    "GraSP": (0.315, 0.454, 0.439, 0.322, 0.461, 0.224, 0.333, 0.470, 0.207),
    "SNIP": (0.454, 0.615, 0.433, 0.462, 0.620, 0.221, 0.403, 0.539, 0.212),
    "SynFlow": (0.571, 0.769, 0.691, 0.565, 0.761, 0.584, 0.555, 0.747, 0.504),
    "Jacov": (0.545, 0.712, 0.362, 0.554, 0.720, 0.249, 0.537, 0.701, 0.240),
    "NASWOT": (0.556, 0.742, 0.572, 0.579, 0.768, 0.449, 0.583, 0.768, 0.459),
    "ZenNAS": (0.244, 0.321, 0.110, 0.232, 0.300, 0.110, 0.250, 0.344, 0.065),
    "ZiCo": (0.590, 0.785, 0.732, 0.600, 0.794, 0.597, 0.594, 0.787, 0.516),
    "TE-NAS": (0.489, 0.676, 0.481, 0.481, 0.664, 0.214, 0.459, 0.641, 0.143),
    "AZ-NAS": (0.739, 0.912, 0.702, 0.722, 0.899, 0.473, 0.694, 0.876, 0.482),
    "trainable layers": (0.580, 0.723, 0.631, 0.594, 0.737, 0.491, 0.574, 0.716, 0.483),
    "VKDNW_single": (0.606, 0.800, 0.724, 0.613, 0.807, 0.592, 0.605, 0.795, 0.583),
    "VKDNW_agg": (0.740, 0.911, 0.743, 0.736, 0.906, 0.578, 0.723, 0.893, 0.614),
}
TABLES = {"unique": ("VKDNW Table I", _TABLE_I), "all": ("VKDNW Table VI", _TABLE_VI)}
# What each source's numbers are, as a table names them beside its own, and the decimals it printed.
MEASURES = {"VKDNW Table I": ("KT / SPR / nDCG@1000, whole set", 3),
            "VKDNW Table VI": ("KT / SPR / nDCG@1000, whole set", 3),
            "NAS-Bench-Suite-Zero": ("SPR, 10 samples of 1,000", 2),
            "own paper": ("KT / SPR, its own protocol", None)}  # None: as printed, two or three decimals

# The heat-map's columns, in its order, and one row per proxy, as printed.
_SUITE_ZERO_COLUMNS = (
    ("tnb_micro", "autoencoder"), ("tnb_macro", "class_object"), ("tnb_macro", "room_layout"),
    ("tnb_macro", "jigsaw"), ("nb101", "cifar10"), ("tnb_macro", "autoencoder"), ("tnb_macro", "class_scene"),
    ("nb301", "cifar10"), ("tnb_macro", "segmentsemantic"), ("tnb_micro", "room_layout"), ("tnb_macro", "normal"),
    ("tnb_micro", "jigsaw"), ("tnb_micro", "normal"), ("tnb_micro", "class_object"),
    ("tnb_micro", "segmentsemantic"), ("nb201", "ImageNet16-120"), ("tnb_micro", "class_scene"),
    ("nb201", "cifar10"), ("nb201", "cifar100"))
_SUITE_ZERO_ROWS = {
    "plain": (0.07, -0.19, -0.18, -0.30, -0.32, -0.10, -0.19, -0.32, 0.00, 0.36, -0.04, 0.35, 0.03, 0.34, -0.02, -0.22, 0.24, -0.26, -0.21),
    "grasp": (-0.12, -0.64, -0.10, -0.26, 0.27, -0.02, -0.43, 0.34, -0.02, -0.29, -0.05, -0.12, 0.01, -0.22, 0.00, 0.55, -0.27, 0.51, 0.54),
    "fisher": (-0.58, -0.30, -0.21, -0.26, -0.28, -0.19, -0.13, -0.28, 0.03, 0.30, 0.15, 0.30, 0.16, 0.44, 0.12, 0.48, 0.66, 0.50, 0.54),
    "epe_nas": (0.00, -0.02, -0.00, 0.00, 0.00, 0.00, 0.01, 0.00, 0.00, 0.40, 0.00, 0.16, 0.00, 0.39, 0.00, 0.33, 0.51, 0.70, 0.60),
    "grad_norm": (-0.32, -0.56, -0.26, -0.27, -0.25, 0.31, -0.33, -0.04, 0.21, 0.25, 0.35, 0.36, 0.36, 0.39, 0.60, 0.57, 0.65, 0.58, 0.63),
    "snip": (-0.27, -0.38, -0.19, -0.19, -0.19, 0.20, -0.14, -0.05, 0.27, 0.32, 0.45, 0.41, 0.49, 0.45, 0.68, 0.57, 0.70, 0.58, 0.63),
    "synflow": (0.00, 0.12, -0.01, 0.34, 0.31, 0.00, 0.27, 0.18, 0.00, 0.30, 0.00, 0.47, 0.00, 0.48, 0.00, 0.75, 0.72, 0.73, 0.76),
    "l2_norm": (0.04, 0.08, -0.03, 0.15, 0.50, -0.20, 0.28, 0.45, 0.18, 0.18, 0.30, 0.35, 0.50, 0.32, 0.48, 0.69, 0.53, 0.68, 0.72),
    "params": (-0.01, 0.16, -0.00, 0.15, 0.37, -0.18, 0.32, 0.46, 0.06, 0.30, 0.30, 0.44, 0.62, 0.45, 0.68, 0.69, 0.64, 0.72, 0.73),
    "zen": (0.14, 0.10, -0.04, 0.24, 0.59, -0.01, 0.27, 0.43, 0.27, 0.38, 0.38, 0.51, 0.71, 0.54, 0.67, 0.39, 0.72, 0.35, 0.35),
    "jacov": (0.18, 0.07, 0.08, 0.19, -0.29, 0.45, 0.19, -0.04, 0.57, 0.40, 0.50, 0.56, 0.75, 0.51, 0.80, 0.71, 0.75, 0.75, 0.71),
    "flops": (-0.02, 0.79, 0.48, 0.64, 0.36, 0.76, 0.85, 0.42, 0.60, 0.30, 0.76, 0.45, 0.64, 0.46, 0.69, 0.67, 0.65, 0.69, 0.71),
    "naswot": (0.03, 0.83, 0.63, 0.76, 0.31, 0.67, 0.89, 0.47, 0.80, 0.25, 0.78, 0.42, 0.57, 0.39, 0.53, 0.77, 0.60, 0.77, 0.80),
}
# NASWOT's batch does not change which proxy it is.
_SUITE_ZERO_ROWS["naswot_128"] = _SUITE_ZERO_ROWS["naswot"]


def suite_zero(proxy: str, space: str, dataset: str) -> float | None:
    """NAS-Bench-Suite-Zero's Spearman ρ of ``proxy`` (this project's name, preset suffix dropped) on
    ``space``/``dataset`` (see the module docstring), or None where it has none."""
    row = _SUITE_ZERO_ROWS.get(proxy.split("@")[0])
    column = (space, dataset)
    return None if row is None or column not in _SUITE_ZERO_COLUMNS else row[_SUITE_ZERO_COLUMNS.index(column)]


_NOT_GIVEN = math.nan
# Each proxy's own paper on NAS-Bench-201: (KT, SPR) on cifar10, cifar100, ImageNet16-120, as its source
# prints them (and tables print them so, ``shown_figures``).
# ZiCo (Li et al., ICLR 2023), Table 1: every NATS-Bench-TSS cell against test accuracy.
# NASWOT (Mellor et al., ICML 2021), Figure 3 (a)-(c): about 1,000 sampled cells, batch 128, against
#   validation accuracy (the batch of the paper is naswot_128's; naswot, batch 64, is the same proxy).
# Abdelfattah et al. (ICLR 2021), Table 1, as the authors' notebooks/nasbench201_correlations.ipynb prints
#   it: |SPR| over all 15,625 cells against test accuracy, one random batch (seed 42).
# MeCo (Jiang et al., NeurIPS 2023), abstract: SPR 0.89 on NATS-Bench-TSS CIFAR-10 (its table was not
#   readable here). SWAP (Peng et al., ICLR 2024), abstract: regularised SWAP's SPR 0.90 with CIFAR-100
#   validation accuracy.
_OWN_PAPER = {
    "zico": ((0.61, 0.80), (0.61, 0.81), (0.60, 0.79)),
    "naswot": ((0.574, _NOT_GIVEN), (0.611, _NOT_GIVEN), (0.549, _NOT_GIVEN)),
    "grad_norm": ((_NOT_GIVEN, 0.594), (_NOT_GIVEN, 0.637), (_NOT_GIVEN, 0.578)),
    "snip": ((_NOT_GIVEN, 0.596), (_NOT_GIVEN, 0.637), (_NOT_GIVEN, 0.578)),
    "grasp": ((_NOT_GIVEN, 0.514), (_NOT_GIVEN, 0.547), (_NOT_GIVEN, 0.549)),
    "fisher": ((_NOT_GIVEN, 0.36), (_NOT_GIVEN, 0.385), (_NOT_GIVEN, 0.327)),
    "synflow": ((_NOT_GIVEN, 0.737), (_NOT_GIVEN, 0.763), (_NOT_GIVEN, 0.751)),
    "jacov": ((_NOT_GIVEN, 0.731), (_NOT_GIVEN, 0.704), (_NOT_GIVEN, 0.701)),
    "meco": ((_NOT_GIVEN, 0.89), None, None),
    "swap_reg": (None, (_NOT_GIVEN, 0.90), None),
}
# Other benchmarks, by (space, dataset). NASWOT, Figure 3: KT 0.285 on NAS-Bench-101 (CIFAR-10).
_OWN_PAPER_ELSEWHERE = {("nb101", "cifar10"): {"naswot": (0.285, _NOT_GIVEN)}}
# Proxies whose paper is another's: naswot_128 is NASWOT at its paper's batch.
_SAME_PAPER = {"naswot_128": "naswot"}


def own_paper(proxy: str, space: str, dataset: str) -> tuple[float, float] | None:
    """(KT, SPR) that ``proxy``'s own paper gives on ``space``'s ``dataset`` (NaN: not given), or
    None where it gives neither (see the module docstring)."""
    name = proxy.split("@")[0]
    name = _SAME_PAPER.get(name, name)
    if space != "nb201":
        return _OWN_PAPER_ELSEWHERE.get((space, dataset), {}).get(name)
    row = _OWN_PAPER.get(name)
    return None if row is None or dataset not in DATASETS else row[DATASETS.index(dataset)]


# This project's proxy (or the set of proxies of an eq. 15 aggregate) behind each row.
_PROXY_ROWS = {
    "flops": "FLOPs", "grad_norm": "GradNorm", "grasp": "GraSP", "snip": "SNIP", "synflow": "SynFlow",
    "jacov": "Jacov", "naswot": "NASWOT", "naswot_128": "NASWOT", "zen": "ZenNAS", "zico": "ZiCo", "aleph": "trainable layers",
    "vkdnw_single": "VKDNW_single",
}
_AGGREGATE_ROWS = {
    frozenset({"te_nas_ntk", "te_nas_lr"}): "TE-NAS",
    frozenset({"expressivity", "progressivity", "trainability", "flops"}): "AZ-NAS",
    frozenset({"vkdnw_single", "jacov", "expressivity", "trainability", "flops"}): "VKDNW_agg",
}


def paper_row(ranking: str) -> str | None:
    """The published row a ranking of a run stands for (``None``: none), e.g. ``"jacov"`` -> "Jacov",
    ``"aggregate(flops,expressivity,progressivity,trainability)@paper"`` -> "AZ-NAS"."""
    base = ranking.split("@")[0] if not ranking.startswith("aggregate(") else ranking[:ranking.rindex(")") + 1]
    if base == "aggregate":
        return "VKDNW_agg"
    if base.startswith("aggregate("):
        return _AGGREGATE_ROWS.get(frozenset(base[len("aggregate("):-1].split(",")))
    return _PROXY_ROWS.get(base)


def table_row(row: str, dataset: str, subset: str = "unique") -> tuple[float, float, float]:
    """(KT, SPR, nDCG) of a row of the paper's table for ``subset`` ("unique": Table I, "all": Table VI)."""
    i = 3 * DATASETS.index(dataset)
    return TABLES[subset][1][row][i:i + 3]


def published(ranking: str, dataset: str, subset: str) -> tuple[str, tuple[float, float, float]] | None:
    """(source, (KT, SPR, nDCG)) published for ``ranking`` on NAS-Bench-201 ``dataset`` and ``subset``
    ("unique" or "paper": Table I; "all": Table VI), or None where nothing comparable is published."""
    key = "all" if subset == "all" else "unique" if subset in ("unique", "paper") else None
    row = paper_row(ranking)
    if key is None or row is None or dataset not in DATASETS:
        return None
    return TABLES[key][0], table_row(row, dataset, key)


def beside(ranking: str, space: str, dataset: str, subset: str = "unique") -> dict[str, tuple[float, ...]]:
    """Every published figure of ``ranking`` on ``space``'s ``dataset``, {source: figures}, in the
    order of ``MEASURES`` (which says what each source's figures are): the VKDNW paper's table on
    NAS-Bench-201 (``published``), NAS-Bench-Suite-Zero's Spearman ρ for a single proxy, and the
    proxy's own paper (``own_paper``)."""
    found: dict[str, tuple[float, ...]] = {}
    vkdnw = published(ranking, dataset, subset) if space == "nb201" else None
    if vkdnw:
        found[vkdnw[0]] = vkdnw[1]
    spearman = None if ranking.startswith("aggregate") else suite_zero(ranking, space, dataset)
    if spearman is not None:
        found["NAS-Bench-Suite-Zero"] = (spearman,)
    own = own_paper(ranking, space, dataset)
    if own is not None:
        found["own paper"] = own
    return found


def shown_figures(source: str, figures: tuple[float, ...]) -> str:
    """A source's figures as a table prints them: its decimals (``MEASURES``; for the own papers, which
    print two or three, each figure's own: 0.574, 0.61), "–" where not given."""
    decimals = MEASURES[source][1]

    def shown(value: float) -> str:
        if math.isnan(value):
            return "–"
        if decimals is not None:
            return f"{value:.{decimals}f}"
        three = f"{value:.3f}"
        return three[:-1] if three.endswith("0") else three
    return " / ".join(shown(v) for v in figures)
