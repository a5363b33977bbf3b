"""Configuration of the Fisher engine: one frozen dataclass, two named presets.

``paper`` reproduces the authors' code (and so their published numbers), faults included;
``exact`` is the method the paper describes, done right (docs/method.md §3 and §8). Every field can be
set on its own with ``FisherConfig.preset(name, **overrides)`` or ``dataclasses.replace``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")

_CHOICES = {
    "weights": ("parameter_tensors", "layers"),
    "element": ("first", "relative", "random"),
    "batchnorm": ("running", "batch"),
    "factor": ("paper", "cholesky", "sqrt"),
    "aleph": ("parameter_tensors", "layers"),
    "init": (None, "kaiming_normal_fan_in"),
    "strategy": ("auto", "rows", "features", "forward"),
    "spectrum_dtype": ("float64", "float32"),
    "memory_format": MEMORY_FORMATS,
    "tangents": ("auto", "linearised", "jvp"),
}
STRATEGIES = _CHOICES["strategy"]
TANGENTS = _CHOICES["tangents"]


@dataclass(frozen=True)
class FisherConfig:
    """How VKDNW is computed. Field meanings (docs/method.md §3):

    weights: which scalar weights are sampled. ``parameter_tensors``: one element of each of the
        first ``max_weights`` tensors of ``named_parameters()`` (BN gamma/beta included; the
        authors' code). ``layers``: one weight of each of the first ``max_weights`` conv/linear
        layers (the paper's text).
    element: which element of a sampled tensor: ``first`` (index 0), ``relative`` (index
        ``round(element_position * (numel - 1))``) or ``random`` (seeded by ``element_seed``).
    batchnorm: ``running`` uses the BN buffers as they are (fresh: mean 0, var 1, so BN is nearly
        the identity); ``batch`` freezes the statistics of the scoring batch (biased variance)
        into the buffers first, so eval output equals train-mode output without cross-sample
        gradients.
    smoothing, fp16_smoothing_constants: p = (1 - s) softmax(z) + s / C. With the fp16 flag the
        two constants are the authors' float16 values (so sum(p) is slightly above 1), which only
        the ``paper`` factor accepts.
    factor: the square root of the multinomial covariance applied to the Jacobian. ``paper``: the
        authors' L~ applied as L~ J (gives J^T L~^T L~ J, not J^T Sigma J); ``cholesky``: L~^T J
        with the stable tail-sum construction (C - 1 rows); ``sqrt``: B = diag(sqrt p) - sqrt(p) p^T
        (C rows). The last two give F exactly.
    aleph: the size term of VKDNW_single: ``parameter_tensors`` counts parameter tensors (the
        authors' code), ``layers`` counts conv/linear layers.
    init: ``kaiming_normal_fan_in`` re-initialises a copy of the model (conv/linear Kaiming normal
        fan-in ReLU, zero bias, BN gamma 1 beta 0, fresh BN statistics); None keeps its weights.
    quantiles: the spectrum quantiles whose normalised entropy is VKDNW (deciles in NB201).
    strategy: the pass plan (docs/method.md §4): ``auto`` picks the cheapest of ``rows`` (one backward per
        factor row), ``features`` (one backward per feature of a final Linear) and ``forward``
        (one tangent per sampled weight).
    spectrum_dtype: precision of the singular value decomposition of the stacked A.
    pass_chunk: the most cotangent rows per backward call (vmapped into one), or tangents per
        forward-mode call; None picks 1 row (a loop is faster there) or 4 tangents on CPU, and 64
        on GPU. A call that runs out of memory is retried with half as many.
    sample_chunk: the most samples per forward and its passes: the batch is scored in chunks of this many
        (``batch`` statistics frozen over the whole batch first), so that the forward's graph holds that many
        samples' activations, the memory that grows with the batch; the samples being independent, A is the
        same to rounding, at some cost in time for small chunks. None: the whole batch at once.
    memory_format: ``auto`` runs 4-d convolutional models channels-last on CPU (about 2x faster
        forward and backward there) and contiguous on GPU.
    tangents: how forward mode (the ``forward`` plan, the general path) computes its tangents. ``jvp``:
        ``torch.func.jvp`` over blocks of ``pass_chunk`` tangents, each block running the primal again;
        ``linearised``: the network's tangent map traced once, its primal folded into constants, each
        weight's tangent run from its own layer on (``vkdnw_fast.linearise``); ``auto``: linearised on CPU
        where that counts less than jvp's blocks (the trace's Python per layer call repaid by the batch's work,
        docs/method.md §4), else jvp, as on GPU (where one primal serves a block of 64 tangents).
    """

    # The field defaults are the default preset, ``exact`` (the README says why).
    weights: str = "layers"
    max_weights: int = 128
    element: str = "first"
    element_position: float = 0.0
    element_seed: int = 0
    batchnorm: str = "batch"
    smoothing: float = 0.0
    fp16_smoothing_constants: bool = False
    factor: str = "cholesky"
    aleph: str = "layers"
    init: str | None = "kaiming_normal_fan_in"
    quantiles: tuple[float, ...] = DECILES
    strategy: str = "auto"
    spectrum_dtype: str = "float64"
    pass_chunk: int | None = None
    sample_chunk: int | None = None
    memory_format: str = "auto"
    tangents: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in _CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"FisherConfig.{name}={value!r} is not one of {allowed}")
        if not isinstance(self.max_weights, int) or self.max_weights < 1:
            raise ValueError(f"FisherConfig.max_weights must be a positive int, got {self.max_weights!r}")
        if not 0.0 <= self.element_position <= 1.0:
            raise ValueError(f"FisherConfig.element_position must lie in [0, 1], got {self.element_position!r}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"FisherConfig.smoothing must lie in [0, 1), got {self.smoothing!r}")
        if self.fp16_smoothing_constants and self.factor != "paper":
            raise ValueError(
                "FisherConfig.fp16_smoothing_constants gives probabilities that sum to more than 1; "
                f"only factor='paper' accepts them, not factor={self.factor!r}")
        object.__setattr__(self, "quantiles", tuple(float(q) for q in self.quantiles))
        if not self.quantiles or any(not 0.0 <= q <= 1.0 for q in self.quantiles):
            raise ValueError(f"FisherConfig.quantiles must be a non-empty list of values in [0, 1], got {self.quantiles!r}")
        for name in ("pass_chunk", "sample_chunk"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"FisherConfig.{name} must be None or a positive int, got {value!r}")

    @classmethod
    def preset(cls, name: str | None = None, **overrides: Any) -> "FisherConfig":
        """The named preset (``paper`` or ``exact``; None: ``DEFAULT_PRESET``), with any fields
        overridden."""
        name = DEFAULT_PRESET if name is None else name
        if name not in PRESETS:
            raise ValueError(f"unknown FisherConfig preset {name!r}; presets are {sorted(PRESETS)}")
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown FisherConfig field(s) {sorted(unknown)}; fields are "
                             f"{[f.name for f in dataclasses.fields(cls)]}")
        return dataclasses.replace(PRESETS[name], **overrides)

    @property
    def preset_name(self) -> str | None:
        """The preset this configuration equals, or None for a custom one."""
        for name, preset in PRESETS.items():
            if self == preset:
                return name
        return None


PRESETS: dict[str, FisherConfig] = {
    "paper": FisherConfig(
        weights="parameter_tensors",
        batchnorm="running",
        smoothing=0.05,
        fp16_smoothing_constants=True,
        factor="paper",
        aleph="parameter_tensors",
    ),
    "exact": FisherConfig(),
}


# The library's default: on the NB201 reproduction (README) ``exact`` ranks better on ImageNet16-120,
# about level on CIFAR-10 (aggregate ahead, VKDNW_single a little behind), and unlike ``paper`` it
# stays finite at 1,000 classes.
DEFAULT_PRESET = "exact"


def resolve_config(config: FisherConfig | str | None) -> FisherConfig:
    """Accept a FisherConfig, a preset name or None (the default preset)."""
    if config is None:
        return PRESETS[DEFAULT_PRESET]
    if isinstance(config, str):
        return FisherConfig.preset(config)
    if not isinstance(config, FisherConfig):
        raise TypeError(f"config must be a FisherConfig or a preset name, got {type(config).__name__}")
    return config


__all__ = ["FisherConfig", "PRESETS", "DEFAULT_PRESET", "DECILES", "MEMORY_FORMATS", "resolve_config"]
