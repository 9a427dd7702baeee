"""Shared fixtures. Tests that need ../shared/datasets skip where it is absent (a user's clone),
unless DSE_REQUIRE_SHARED=1 (set by .ci/run), which turns the skip into a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _shared_datasets() -> Path:
    return Path(os.environ.get("DSE_SHARED_DATASETS", ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    path = _shared_datasets()
    if not (path / "cifar10-jpg.tar.gz").is_file():
        message = f"real datasets not found at {path}"
        if os.environ.get("DSE_REQUIRE_SHARED") == "1":
            pytest.fail(message + " (DSE_REQUIRE_SHARED=1)")
        pytest.skip(message)
    return path
