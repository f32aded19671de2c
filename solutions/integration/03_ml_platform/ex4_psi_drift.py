"""Exercise integration/03.4 · Feature drift: the population stability index that triggers retraining.

A model trained on last month's traffic degrades when the traffic changes. integration/03 watches
every input feature with the population stability index (PSI) against the training data, and
retrains when a feature's PSI reaches 0.25 (below 0.1 reads as stable, 0.1-0.25 as a moderate
shift, above 0.25 as a major one). The monitor must stay quiet on noise, fire on a real shift, and
never return inf or NaN: an alarm that cannot be compared is an alarm that pages nobody.

Your task: return the PSI of `current` against `reference` (two 1-D numeric arrays), where
- the bins come from the REFERENCE's quantiles: the inner edges are
  np.quantile(reference, [1/bins, 2/bins, ..., (bins-1)/bins]) (numpy's default, linear),
  with edges that coincide merged into one (count features with many zeros: np.unique), so
  len(edges) + 1 bins,
- a value equal to an edge belongs to the bin above it (np.searchsorted(edges, x, side="right")),
- each sample's share per bin is its count / its size; a share below 1e-4 (an empty bin) is
  raised to 1e-4, so the index stays finite,
- PSI = Σ over bins of (current_share - reference_share) · ln(current_share / reference_share).

Check it: expert check integration/03.4
"""

import numpy as np

SHARE_FLOOR = 1e-4


def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population stability index of `current` against `reference`."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    reference_share = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    current_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=len(edges) + 1)
    reference_share = np.clip(reference_share / len(reference), SHARE_FLOOR, None)
    current_share = np.clip(current_share / len(current), SHARE_FLOOR, None)
    return float(np.sum((current_share - reference_share) * np.log(current_share / reference_share)))
