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


def psi(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population stability index of `current` against `reference`."""
    # TODO: equal-width bins over both samples' range put most of a skewed feature into one bin and
    # move with the current data; an empty bin makes the logarithm infinite. Bin at the reference's
    # quantiles (merging equal edges), and floor each share at 1e-4.
    edges = np.linspace(min(reference.min(), current.min()), max(reference.max(), current.max()), bins + 1)
    reference_share = np.histogram(reference, edges)[0] / len(reference)
    current_share = np.histogram(current, edges)[0] / len(current)
    return float(np.sum((current_share - reference_share) * np.log(current_share / reference_share)))
