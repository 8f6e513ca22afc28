"""Piecewise-linear schedules in (fractional) epochs."""

from __future__ import annotations

import bisect
from collections.abc import Sequence


class PiecewiseLinear:
    """``f(t)`` linear between the knots ``(knots[i], values[i])``, constant outside them."""

    def __init__(self, knots: Sequence[float], values: Sequence[float]):
        if len(knots) != len(values) or not knots:
            raise ValueError("knots and values need the same, non-zero length")
        if list(knots) != sorted(knots):
            raise ValueError(f"knots must not decrease: {list(knots)}")
        self.knots, self.values = [float(k) for k in knots], [float(v) for v in values]

    def __call__(self, t: float) -> float:
        knots, values = self.knots, self.values
        if t <= knots[0]:
            return values[0]
        if t >= knots[-1]:
            return values[-1]
        i = bisect.bisect_right(knots, t)
        t0, t1, v0, v1 = knots[i - 1], knots[i], values[i - 1], values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)

    def __repr__(self) -> str:
        return f"PiecewiseLinear({self.knots} -> {self.values})"
