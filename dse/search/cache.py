"""Train once, price many: trained networks on disk, keyed by everything that shapes them.

The key hashes the full TrainSpec, the content fingerprint of the dataset as decoded
(``dse.data.dataset.content_hash``), the dse version and the source of every module outside ``dse.search``
(``code_version``: data, network, snn, train, util), so neither other data under the same name nor a code
change ever serves a stale network. Entries are
trained in ``.partial-<key>`` (resumable after a lost worker) and renamed into place: when two workers
finish the same key at once, the first rename wins and the other discards its copy. The cache is
shared across studies.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import dse
from dse.data.registry import load_dataset
from dse.train.pipeline import TrainResult, train_and_evaluate
from dse.train.spec import TrainSpec



def default_cache_dir() -> Path:
    return Path(os.environ.get("DSE_CACHE_DIR", Path.home() / ".cache" / "dse")) / "trained"


@functools.cache
def code_version() -> str:
    return source_digest(Path(dse.__file__).parent)


def source_digest(root: Path) -> str:
    """Every source file of the package at ``root`` outside the search layer (``search/``), paths included:
    whatever loads the data, builds, trains, exports or simulates a network (a new model file included, in any
    sub-package) changes the key; no list of module names to keep."""
    digest = hashlib.sha256(dse.__version__.encode())
    for path in sorted(p for p in root.rglob("*.py") if p.relative_to(root).parts[0] != "search"):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(spec: TrainSpec, data_fingerprint: str, warm: str | None = None) -> str:
    """``warm``: the key of the network this one started from (``dse.search.warm_start``): another network."""
    doc = {"spec": spec.to_dict(), "data": data_fingerprint, "code": code_version()}
    payload = json.dumps({**doc, **({"warm": warm} if warm else {})}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def data_fingerprint(spec: TrainSpec, data_dir=None) -> str:
    return load_dataset(spec.dataset, data_dir, coarse_labels=spec.coarse_labels).fingerprint


def _result(entry: Path) -> TrainResult:
    metrics = json.loads((entry / "metrics.json").read_text())
    return TrainResult(metrics["ann_accuracy"], metrics["snn_accuracy"], metrics.get("agreement"), entry / "checkpoint.pt",
                       entry / "snn.pt", entry / "spikes.json", metrics)


def lookup(spec: TrainSpec, cache_dir: Path, data_fingerprint: str, warm: str | None = None) -> TrainResult | None:
    entry = cache_dir / cache_key(spec, data_fingerprint, warm)
    return _result(entry) if (entry / "metrics.json").is_file() else None


def train_cached(spec: TrainSpec, cache_dir: Path, data_dir=None, device: str = "auto",
                 threads: int | None = None, on_epoch=None, warm: str | None = None,
                 fingerprint: str | None = None) -> tuple[TrainResult, bool]:
    """(result, was_cached). Trains into ``.partial-<key>`` and publishes it atomically. ``warm``: the key of a
    cached network whose weights this training starts from (its checkpoint in the cache); ``fingerprint``: the
    data's, when the caller has it (a dataset is not loaded twice to hash it).

    A training killed with its worker or node leaves ``.partial-<key>`` behind with its last epoch's state,
    and the retry resumes there instead of starting over; a second worker on the same key meanwhile
    (the partial directory is locked) trains privately. ``on_epoch`` (``dse.train.loop.run``) may stop the training
    by raising: its state stays in ``.partial-<key>``, never published, for a later request to resume.
    """
    import fcntl

    fingerprint = fingerprint or data_fingerprint(spec, data_dir)
    hit = lookup(spec, cache_dir, fingerprint, warm)
    if hit is not None:
        return hit, True
    key = cache_key(spec, fingerprint, warm)
    cache_dir.mkdir(parents=True, exist_ok=True)
    work = cache_dir / f".partial-{key}"
    work.mkdir(exist_ok=True)
    lock = open(work / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another live worker trains this key: do not share its state
        lock.close()
        lock, work = None, Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    try:
        init = cache_dir / warm / "checkpoint.pt" if warm else None
        train_and_evaluate(spec, work, data_dir, device, threads, progress=False, on_epoch=on_epoch, init=init)
        if warm:  # said in the metrics too: a trial's record shows what its network started from
            metrics = json.loads((work / "metrics.json").read_text())
            (work / "metrics.json").write_text(json.dumps({**metrics, "warm_from": warm}, indent=1))
        (work / "spec.json").write_text(json.dumps({"spec": spec.to_dict(), "data": fingerprint, "code": code_version(),
                                                    **({"warm": warm} if warm else {})}, indent=1))
        entry = cache_dir / key
        (work / ".lock").unlink(missing_ok=True)
        try:
            os.rename(work, entry)  # atomic; fails if another worker published the same key first
        except OSError:
            if not (entry / "metrics.json").is_file():
                raise
        shutil.rmtree(work, ignore_errors=True)
    finally:
        if lock is not None:
            lock.close()
        if lock is None or not (work / "train_state.pt").is_file():  # keep only progress a retry can resume
            shutil.rmtree(work, ignore_errors=True)
    return _result(entry), False
