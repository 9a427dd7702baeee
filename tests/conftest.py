"""Shared fixtures. Tests that need ../shared/datasets skip where it is absent (a user's clone),
unless DSE_REQUIRE_SHARED=1 (set by .ci/run), which turns the skip into a failure.

The tests leave the user's home alone: HOME (Ray's ~/.ray, matplotlib's settings) and the dse cache
(trained networks, converted datasets) point into one temporary directory, deleted at the end. Set
DSE_CACHE_DIR to keep a cache between runs (the CIFAR-10 conversion then happens once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH: list[str] = []


def pytest_configure(config) -> None:
    import tempfile

    scratch = tempfile.mkdtemp(prefix="dse-tests-")
    _SCRATCH.append(scratch)
    os.environ.setdefault("DSE_CACHE_DIR", str(Path(scratch) / "cache"))
    os.environ["HOME"] = str(Path(scratch) / "home")
    Path(os.environ["HOME"]).mkdir()


def pytest_unconfigure(config) -> None:
    import shutil

    for scratch in _SCRATCH:
        shutil.rmtree(scratch, ignore_errors=True)


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


@pytest.fixture(scope="session")
def cifar10_data_dir(shared_datasets) -> Path:
    """The real CIFAR-10 in its standard pickle layout under $DSE_CACHE_DIR/data, converted from the
    shared JPEG tar once (later sessions reuse it); the conversion lands atomically."""
    import shutil
    import subprocess
    import sys
    import tempfile

    from dse.data.registry import default_data_dir

    root = default_data_dir()
    folder = root / "cifar-10-batches-py"
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
    if not all((folder / f).is_file() for f in files):
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            subprocess.run([sys.executable, str(shared_datasets / "make_cifar10_batches.py"), tmp,
                            "--tar", str(shared_datasets / "cifar10-jpg.tar.gz")], check=True, capture_output=True)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(Path(tmp) / "cifar-10-batches-py", folder)
    return root


@pytest.fixture(scope="session")
def tiny_imagenet_dir(shared_datasets, tmp_path_factory) -> Path:
    """The real 20-class Tiny-ImageNet subset, unpacked (standard layout) into a temporary directory."""
    import tarfile

    root = tmp_path_factory.mktemp("tiny")
    with tarfile.open(shared_datasets / "tiny-imagenet-mini.tar.gz") as tar:
        tar.extractall(root, filter="data")
    return root


# Property tests (tests/test_properties.py): derandomized by default, so every run - CI's included - tries
# the same examples and a failure reproduces; HYPOTHESIS_PROFILE=explore draws new ones.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=150, database=None,
                          print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance shared by one test module (loopback only, small object store)."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1",
             object_store_memory=100 << 20)
    yield ray
    ray.shutdown()
