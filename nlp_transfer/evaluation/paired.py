"""Paired differences over seeds: does one strategy lead another by more than the seeds move them?

With few labelled examples the sample drawn moves a score by several points, often more than the
difference between two strategies. ``compare --per-class`` trains every strategy on the same sample for
a given seed, so the fair question is about the per-seed differences: their mean, and a 95 % Student-t
interval around it (``scipy.stats``). An interval that excludes zero separates the two; one that spans
zero says the seeds run so far cannot tell them apart.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedLead:
    """How far a first strategy leads a second, seed by seed (positive: the first is better)."""

    mean: float  # mean of the per-seed differences
    low: float | None  # the interval's ends at CONFIDENCE; None with one common seed (no spread to judge)
    high: float | None
    seeds: int  # seeds on which both succeeded

    @property
    def same_every_seed(self) -> bool:
        """Whether every seed gave the same difference: the t-interval then has no width, and says nothing."""
        return self.low is not None and self.high is not None and math.isclose(self.low, self.high, abs_tol=1e-9)

    @property
    def separated(self) -> bool:
        """Whether the interval excludes zero (never with one seed). The same difference on every seed separates
        them only as a two-sided sign test would (``2 * 0.5**seeds`` under ``1 - CONFIDENCE``: 6 seeds or more)."""
        if self.low is None or self.high is None:
            return False
        if self.same_every_seed:
            return self.mean != 0 and 2 * 0.5**self.seeds < 1 - CONFIDENCE
        return self.low > 0 or self.high < 0


def paired_lead(
    first: Mapping[Hashable, float], second: Mapping[Hashable, float], lower_is_better: bool = False
) -> PairedLead | None:
    """The lead of ``first`` over ``second``, each a score per seed; None when they share no seed.

    ``lower_is_better`` (a loss) flips the sign, so a positive lead always means ``first`` is better.
    """
    common = [seed for seed in first if seed in second]
    if not common:
        return None
    sign = -1.0 if lower_is_better else 1.0
    differences = [sign * (first[seed] - second[seed]) for seed in common]
    low, high = mean_interval(differences)
    return PairedLead(statistics.mean(differences), low, high, len(differences))


def mean_interval(differences: Sequence[float]) -> tuple[float | None, float | None]:
    """The Student-t interval at :data:`CONFIDENCE` of the mean of ``differences``; (None, None) for fewer than two."""
    if len(differences) < 2:
        return None, None
    from scipy.stats import t

    mean = statistics.mean(differences)
    half = t.ppf(0.5 + CONFIDENCE / 2, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean - half, mean + half
