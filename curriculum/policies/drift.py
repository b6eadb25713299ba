"""Drift of general ability as a measurement: paired per-prompt differences, their mean, n and interval.

Each prompt's difference is the mean per-token log-likelihood of the base model's own answer under the
adapted model minus under the base model; negative = the adapted model finds the base's answers less likely.
The interval is Student's t over prompts (scipy), so a gate on drift carries its noise like every other gate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

LEVEL = 0.95  # the recorded (two-sided) interval


@dataclass(frozen=True)
class Drift:
    n: int
    mean: float
    sd: float  # sample standard deviation of the per-prompt differences (0 when n < 2)

    @classmethod
    def of(cls, adapted: Sequence[float], base: Sequence[float]) -> Drift:
        """From each prompt's mean per-token log-likelihood under the adapted and the base model, paired."""
        diffs = [a - b for a, b in zip(adapted, base, strict=True)]
        n = len(diffs)
        mean = math.fsum(diffs) / n if n else 0.0
        sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (n - 1)) if n >= 2 else 0.0
        return cls(n, mean, sd)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        """Two-sided t interval of the mean difference; unbounded with fewer than two prompts."""
        if self.n < 2:
            return -math.inf, math.inf
        if self.sd == 0:
            return self.mean, self.mean
        low, high = stats.t.interval(level, self.n - 1, loc=self.mean, scale=self.sd / math.sqrt(self.n))
        return float(low), float(high)

    def upper(self, confidence: float) -> float:
        """One-sided upper bound at `confidence` (a two-sided interval at 2c − 1)."""
        return self.interval(2 * confidence - 1)[1]

    def beyond(self, max_drift: float, confidence: float) -> bool:
        """Clearly more lost than max_drift allows: even the upper bound is below −max_drift."""
        return self.upper(confidence) < -max_drift

    def describe(self, level: float = LEVEL) -> str:
        low, high = self.interval(level)
        return f"{self.mean:+.3f} [{low:+.3f}, {high:+.3f}] on {self.n} prompts"

    def row(self) -> dict[str, Any]:
        """The stage's drift columns (the warehouse's `stages.drift*`): what replay reads back."""
        low, high = self.interval()
        finite = lambda v: v if math.isfinite(v) else None  # noqa: E731
        return {"drift": self.mean, "drift_n": self.n, "drift_sd": self.sd, "drift_low": finite(low),
                "drift_high": finite(high)}

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> Drift | None:
        """A stage's drift from its columns (live: the flow's dict; on resume: the stages row), or None."""
        if not row or row.get("drift") is None or not row.get("drift_n"):
            return None
        return cls(int(row["drift_n"]), float(row["drift"]), float(row.get("drift_sd") or 0.0))
