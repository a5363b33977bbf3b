"""vkdnw_fast: training-free NAS scores (VKDNW and peers) with a fast Fisher engine."""
from .config import DEFAULT_PRESET, PRESETS, FisherConfig
from .engine import FisherResult, fisher_matrix, score
from .journal import journaled
from .ops import backend

__version__ = "0.1.0"
__all__ = ["FisherConfig", "PRESETS", "DEFAULT_PRESET", "FisherResult", "score", "fisher_matrix", "journaled", "backend", "__version__"]
