"""Progress bars with an ETA for every long phase (tqdm, on stderr). Shown on a terminal only: a Ray
worker's, a test's or a pipe's stderr stays clean."""

from __future__ import annotations

import math


def bar(iterable, total: int, desc: str, unit: str = "batch"):
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, disable=None, dynamic_ncols=True)


def batch_count(images: int, batch_size: int) -> int:
    return math.ceil(images / batch_size)
