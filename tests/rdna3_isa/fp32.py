"""fp32 results of a fused sum, rounded once: x + y for float64 terms that hold their values exactly
(an fp32 product of two fp32 or 16-bit values, an fp32 addend), as an FMA or an exact-product
accumulation rounds it.

float64 alone rounds twice: first the sum to 53 bits, then that to fp32's 24, and where the first
rounding lands on an fp32 tie the second can round the wrong way. Rounding the float64 sum to odd
(an inexact sum keeps an odd last bit) carries the sticky bit through: 53 bits are at least fp32's
24 + 2, so the fp32 rounding of that is the correct one (Boldo and Melquiond, "When double rounding
is odd", 2005).
"""

from __future__ import annotations

import numpy as np


def fused_sum(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """fp32(x + y) with one rounding, nearest even; x and y are float64 arrays (broadcast)."""
    with np.errstate(all="ignore"):
        x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
        total = x + y
        # TwoSum: the error of the float64 sum, exactly (Knuth; any order of magnitudes).
        y_part = total - x
        error = (x - (total - y_part)) + (y - y_part)
        even = (total.view(np.uint64) & np.uint64(1)) == 0
        inexact = (error != 0) & np.isfinite(total)
        towards_error = np.nextafter(total, np.where(error > 0, np.inf, -np.inf))
        return np.where(inexact & even, towards_error, total).astype(np.float32)
