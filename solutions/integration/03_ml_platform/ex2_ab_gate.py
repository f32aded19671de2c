"""Exercise integration/03.2 · The A/B gate: a two-proportion z-test, and promote only a significant win.

In integration/03 the champion and the challenger each score half of the customers (a sha256
split); each arm makes an offer to its top customers and counts who converts. A better offline
AUC is not a business win until this experiment says so: the challenger replaces the champion
only if it converts better AND the difference is statistically significant.

Your task: given the conversions and the targeted customers of each arm (A = champion,
B = challenger) and the significance level `alpha`, return `(p_value, promote)` where
- `p_value` is the two-sided p-value of the two-proportion z-test with the POOLED standard error
  (under the null hypothesis both arms share one conversion rate), the test whose z² equals
  Pearson's chi-square statistic on the 2x2 table without continuity correction,
- `promote` is True only when p_value < alpha and B's conversion rate is higher than A's.
(`scipy.stats.norm` is available.)

Check it: expert check integration/03.2
"""

import math

from scipy import stats


def ab_decision(conversions_a: int, n_a: int, conversions_b: int, n_b: int, alpha: float) -> tuple[float, bool]:
    """The experiment's p-value and whether the challenger (B) may replace the champion (A)."""
    rate_a, rate_b = conversions_a / n_a, conversions_b / n_b
    pooled = (conversions_a + conversions_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (rate_b - rate_a) / se if se > 0 else 0.0
    p_value = float(2 * stats.norm.sf(abs(z)))
    return p_value, p_value < alpha and rate_b > rate_a
