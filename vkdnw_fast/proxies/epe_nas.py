"""EPE-NAS (Lopes, Alirezazadeh & Alexandre, ICANN 2021, "EPE-NAS: Efficient Performance
Estimation Without Training for Neural Architecture Search"): how uncorrelated the input
gradients of samples of the same class are.

g_n = d(sum of all logits)/dx_n, flattened (Jacov's gradients, ``forward.input_gradients``: the
training-mode forward shared with the other proxies), grouped by the label of sample n. For each
class c present: R_c = corrcoef of its samples' g_n, s_c = sum over all entries (i, j) of
log(|R_c[i, j]| + 1e-5). With C classes (the number of logits):
* C <= 100: score = sum_c |s_c|;
* C > 100: each s_c is first divided by the number of samples of c, and
  score = sum_c sum_c' |s_c - s_c'| / (number of classes counted).
As the authors' code (github.com/VascoLopes/EPE-NAS, search.py) and NAS-Bench-Suite-Zero's copy of
it (automl/NASLib, naslib/predictors/utils/pruners/measures/epe_nas.py) compute it, including what
they do with a class of one sample: its corrcoef is the scalar 1, so s_c = log(1 + 1e-5) when
C <= 100, and when C > 100 their division by its length fails and the class is skipped (so a
batch with no class seen twice scores 0).

Labels: the context's labels (``batches.labelled_batch``): random and seeded, unless the caller
gives real data (``data=``/``--data``), whose labels are then used, as theirs are (a batch of real
images; NAS-Bench-Suite-Zero: one training batch of the dataset).

Non-finite values: -inf when some R_c is undefined (a constant gradient, e.g. a network whose
output ignores its input): theirs gives NaN there, which NASLib's predictor turns into -1e8, the
worst score; Jacov does the same. Non-finite logits or gradients are an error.
"""
from __future__ import annotations

import math

import numpy as np

from .batches import labelled_batch
from .context import ProxyContext
from .forward import input_gradients
from .jacov import correlations
from .registry import register_proxy

_K = 1e-5
# Above this many classes the per-class terms are normalised and compared pairwise.
_FEW_CLASSES = 100


def epe_from_gradients(gradients: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """The score of per-sample gradients (rows of ``gradients``) with their ``labels``."""
    many = num_classes > _FEW_CLASSES
    terms = []
    for c in np.unique(labels):
        rows = gradients[labels == c]
        if len(rows) == 1:
            if np.all(rows[0] == rows[0][0]):
                return -math.inf  # 0/0: the scalar corrcoef is NaN
            if not many:
                terms.append(math.log(1 + _K))
            continue
        corr = correlations(rows)
        if corr is None:
            return -math.inf
        s = float(np.sum(np.log(np.abs(corr) + _K)))
        terms.append(s / len(rows) if many else s)
    terms = np.array(terms)
    if not many:
        return float(np.sum(np.abs(terms)))
    if not len(terms):
        return 0.0
    return float(np.sum(np.abs(terms[:, None] - terms[None, :])) / len(terms))


@register_proxy("epe_nas", may_be_neg_inf=True, uses_labels=True, uses_training_forward=True)
def epe_nas(ctx: ProxyContext) -> float:
    labels = labelled_batch(ctx)[1].cpu().numpy()
    return epe_from_gradients(input_gradients(ctx).numpy(), labels, ctx.num_classes)
