"""Atomic file writes: write a temporary sibling, then rename it over the target.

A write that fails part-way (disk full, permission, a kill) leaves the previous file intact and no
temporary file behind, so results already on disk stay valid whatever happens to the next write.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix, for writers that infer the format from
    it); rename it over ``path`` if the block succeeds, delete it if the block raises."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # gone after a successful rename; a partial file after a failure


def write_text(path: str | Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Also for torch objects (serialize to memory first): torch.save on a full disk raises an opaque
    RuntimeError, Python's own write a plain OSError (ENOSPC) that names the problem."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
