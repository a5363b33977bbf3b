"""Search spaces: architectures named by strings, their networks, sizes, sampling, mutation and
feasibility, behind one interface (``base.SearchSpace``) and a registry by name. A space knows
nothing of proxies or scores: scoring an architecture is ``scoring.score_architecture``'s job, and
ground truth (trained accuracies) lives in ``vkdnw_fast.benchmarks``."""
from . import mbv2, nats_sss, nb101, nb201, transnas  # noqa: F401  (registers the built-in spaces)
from .base import SearchSpace
from .registry import available, from_spec, get, register_space, space_class

__all__ = ["SearchSpace", "available", "from_spec", "get", "register_space", "space_class"]
