"""Lengths of the common prefix and suffix of two versions of a file, which bound the part that changed.

Incremental extraction rescans and reparses only the part between the two, so
the comparison must cost far less than a scan. Both functions compare blocks
with C-level slice equality and narrow the first differing block by bisection,
so they take microseconds on a 100 KB file.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["common_prefix_length", "common_suffix_length"]

_Sequence = TypeVar("_Sequence", str, bytes)

_BLOCK = 4096


def common_prefix_length(old: _Sequence, new: _Sequence) -> int:
    """Return how many leading characters (or bytes) ``old`` and ``new`` share."""
    limit = min(len(old), len(new))
    low = 0
    while low < limit:
        high = min(low + _BLOCK, limit)
        if old[low:high] != new[low:high]:
            # old[:low] == new[:low] and old[:high] != new[:high]: bisect between them.
            while high - low > 1:
                middle = (low + high) // 2
                if old[low:middle] == new[low:middle]:
                    low = middle
                else:
                    high = middle
            return low
        low = high
    return limit


def common_suffix_length(old: _Sequence, new: _Sequence, limit: int) -> int:
    """Return how many trailing characters (or bytes) ``old`` and ``new`` share, at most ``limit``.

    Pass ``min(len(old), len(new))`` minus the common prefix as ``limit`` so that
    the prefix and the suffix never overlap.
    """
    old_end, new_end = len(old), len(new)
    low = 0
    while low < limit:
        high = min(low + _BLOCK, limit)
        if old[old_end - high : old_end - low] != new[new_end - high : new_end - low]:
            while high - low > 1:
                middle = (low + high) // 2
                if old[old_end - middle : old_end - low] == new[new_end - middle : new_end - low]:
                    low = middle
                else:
                    high = middle
            return low
        low = high
    return limit
