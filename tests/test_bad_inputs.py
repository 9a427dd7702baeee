"""The bad-input corpus (tests/bad_inputs/cases.yaml) through the real command lines.

Every case must end with exit status 2 and exactly one stderr line, ``error: ...``, naming the field or
file at fault (the case's ``expect``), with no traceback, and must leave every file under its run
directory as it was. Most cases call ``main([...])`` in-process (fast); those marked ``process: true`` run
``python -m dse.cli`` / ``hwmodel.cli`` as real subprocesses, which also proves that nothing else (a
warning, a log line) reaches stderr. ``python -m tests.report_bad_inputs`` writes the measured outcomes
to results/reliability/bad_inputs.txt.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
ROOT = CORPUS.parents[1]


@dataclass(frozen=True)
class Case:
    id: str
    run: str
    expect: str
    setup: str | None = None
    process: bool = False
    shared: bool = False


def load_cases() -> list[Case]:
    return [Case(**entry) for entry in yaml.safe_load((CORPUS / "cases.yaml").read_text())]


CASES = load_cases()


# --- builders: inputs a text file cannot hold -----------------------------------------------------------------
class RunsCode:
    """Unpickling this calls ``os.system``: what a malicious checkpoint or dataset file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def _cifar10(root: Path, n: int = 20, width: int = 3072) -> Path:
    """A small directory in the official CIFAR-10 python layout (pickled dicts of uint8 rows)."""
    import numpy as np

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, width), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _checkpoint(tmp: Path, state) -> None:
    import torch

    torch.save(state, tmp / "checkpoint.pt")


def _dse_state(**changes) -> dict:
    import torch

    from dse.train.checkpoint import CHECKPOINT_FORMAT
    from dse.train.spec import TrainSpec

    state = {"format": CHECKPOINT_FORMAT, "spec": TrainSpec(dataset="digits", model="tiny_vgg").to_dict(),
             "folded": True, "state_dict": {"blocks.0.conv.op.weight": torch.ones(4, 1, 3, 3)}}
    return {**state, **changes}


def _study_with_two_trials(tmp: Path, shared: Path | None) -> None:
    import optuna

    folder = tmp / "results" / "bad"
    folder.mkdir(parents=True)
    shutil.copy(CORPUS / "spaces" / "ok.yaml", folder / "space.yaml")
    from dse.search.storage import DEFAULT, in_directory, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(in_directory(DEFAULT, folder))  # the study database as the driver makes it
    study = optuna.create_study(study_name="bad", storage=storage, directions=["minimize", "minimize"])
    for x in (1.0, 2.0):
        study.tell(study.ask(), [x, 3.0 - x])
    if hasattr(storage, "engine"):
        storage.engine.dispose()  # close the database as a finished driver would


def _real_cifar10_truncated(tmp: Path, shared: Path | None) -> None:
    """The real CIFAR-10 batches (symlinked, not copied) with a truncated test batch."""
    real = shared / "cifar-10-batches-py"
    folder = tmp / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for f in real.iterdir():
        if f.name == "test_batch":
            (folder / f.name).write_bytes(f.read_bytes()[: 1 << 20])
        else:
            (folder / f.name).symlink_to(f)


def _cifar10_batch(tmp: Path, changes: dict) -> None:
    """The small CIFAR-10 directory with ``data_batch_1`` rewritten: labels or pixels out of the format."""
    folder = _cifar10(tmp / "data")
    batch = pickle.loads((folder / "data_batch_1").read_bytes())
    (folder / "data_batch_1").write_bytes(pickle.dumps({**batch, **changes}, protocol=2))


def _image_folder(root: Path, test_image: str = "ok.png") -> Path:
    """``root/train/a``, ``root/train/b``, ``root/test/a`` with two real 8x8 PNGs each."""
    from PIL import Image

    for split, cls in (("train", "a"), ("train", "b"), ("test", "a")):
        (root / split / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (8, 8), (40 * i, 80, 120)).save(root / split / cls / f"{i}.png")
    return root


def _image_bomb(tmp: Path, shared: Path | None) -> None:
    """A 10000x10000 PNG of 12 KB: 100 million pixels (300 MB once decoded to RGB)."""
    from PIL import Image

    Image.new("1", (10000, 10000)).save(_image_folder(tmp / "data") / "train" / "a" / "bomb.png")


def _empty_study_db(tmp: Path, shared: Path | None) -> None:
    folder = tmp / "results" / "bad"
    folder.mkdir(parents=True)
    shutil.copy(CORPUS / "spaces" / "ok.yaml", folder / "space.yaml")
    (folder / "study.db").write_bytes(b"")


def _tiny_imagenet_without_wnids(tmp: Path, shared: Path | None) -> None:
    (tmp / "data" / "tiny-imagenet-200" / "train" / "n01443537" / "images").mkdir(parents=True)


BUILDERS = {
    "cifar10_batch_missing": lambda tmp, shared: (_cifar10(tmp / "data") / "data_batch_3").unlink(),
    "cifar10_truncated_pickle": lambda tmp, shared: _truncate(_cifar10(tmp / "data") / "test_batch"),
    "cifar10_wrong_shape": lambda tmp, shared: _cifar10(tmp / "data", width=100),
    "cifar10_malicious_pickle": lambda tmp, shared: (_cifar10(tmp / "data") / "data_batch_1").write_bytes(
        pickle.dumps(RunsCode(f"touch {tmp}/pwned-by-pickle"), protocol=2)),
    "real_cifar10_truncated": _real_cifar10_truncated,
    "tiny_imagenet_without_wnids": _tiny_imagenet_without_wnids,
    "checkpoint_random_bytes": lambda tmp, shared: (tmp / "checkpoint.pt").write_bytes(
        __import__("numpy").random.default_rng(0).bytes(4096)),
    "checkpoint_truncated": lambda tmp, shared: (_checkpoint(tmp, _dse_state()), _truncate(tmp / "checkpoint.pt")),
    "checkpoint_foreign": lambda tmp, shared: _checkpoint(
        tmp, {"conv1.weight": __import__("torch").zeros(8, 3, 3, 3), "fc.bias": __import__("torch").zeros(10)}),
    "checkpoint_malicious": lambda tmp, shared: _checkpoint(
        tmp, {"format": "dse-checkpoint/1", "spec": RunsCode(f"touch {tmp}/pwned-by-checkpoint")}),
    "checkpoint_without_spec": lambda tmp, shared: _checkpoint(tmp, {k: v for k, v in _dse_state().items()
                                                                     if k != "spec"}),
    "checkpoint_wrong_weights": lambda tmp, shared: _checkpoint(tmp, _dse_state()),
    "study_with_two_trials": _study_with_two_trials,
    "fifo": lambda tmp, shared: os.mkfifo(tmp / "space.fifo"),
    "image_bomb": _image_bomb,
    "image_zero_bytes": lambda tmp, shared: (_image_folder(tmp / "data") / "test" / "a" / "empty.png").write_bytes(b""),
    "cifar10_negative_label": lambda tmp, shared: _cifar10_batch(tmp, {b"labels": [-1] + [0] * 19}),
    "cifar10_labels_2d": lambda tmp, shared: _cifar10_batch(
        tmp, {b"labels": __import__("numpy").zeros((20, 2), dtype=__import__("numpy").int64)}),
    "cifar10_pixels_1000": lambda tmp, shared: _cifar10_batch(
        tmp, {b"data": __import__("numpy").full((20, 3072), 1000, dtype=__import__("numpy").int64)}),
    "empty_study_db": _empty_study_db,
}


# --- running a case -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    exit: int | str
    stdout: str
    stderr: str


def prepare(case: Case, tmp: Path, shared: Path | None = None) -> dict[str, str]:
    """Copy the corpus into ``tmp``, run the case's builder; the placeholders of its command."""
    shutil.copytree(CORPUS, tmp / "in")
    if case.setup:
        BUILDERS[case.setup](tmp, shared)
    return {"in": str(tmp / "in"), "tmp": str(tmp), "results": str(tmp / "results"), "data": str(tmp / "data"),
            "out": str(tmp / "out")}


def argv(case: Case, places: dict[str, str]) -> list[str]:
    return [token.format(**places) for token in case.run.split()]


def environment(tmp: Path) -> dict[str, str]:
    """Caches and default data under the run directory, so any stray write shows in its snapshot."""
    return {"DSE_CACHE_DIR": str(tmp / "cache"), "DSE_DATA_DIR": str(tmp / "cache" / "data")}


def execute(case: Case, args: list[str], tmp: Path) -> Outcome:
    program, rest = args[0], args[1:]
    if case.process:
        env = {**os.environ, **environment(tmp), "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", f"{program}.cli", *rest], cwd=tmp, env=env, capture_output=True,
                              text=True, timeout=600)
        return Outcome(proc.returncode, proc.stdout, proc.stderr)
    from dse.cli import main as dse_main
    from hwmodel.cli import main as hwmodel_main

    main = {"dse": dse_main, "hwmodel": hwmodel_main}[program]
    out, err = io.StringIO(), io.StringIO()
    saved_env = {k: os.environ.get(k) for k in environment(tmp)}
    cwd = os.getcwd()
    try:
        os.environ.update(environment(tmp))
        os.chdir(tmp)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(rest)
            except SystemExit as exc:  # argparse
                code = exc.code
            except BaseException as exc:  # noqa: BLE001 - a crash is an outcome to report, with its traceback
                import traceback

                err.write("".join(traceback.format_exception(exc)))
                code = f"crashed ({type(exc).__name__})"
    finally:
        os.chdir(cwd)
        for k, v in saved_env.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(root: Path) -> dict[str, object]:
    """Every file and directory under ``root``: bytes for files, the target for symlinks."""
    state: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        state[rel] = ("link", os.readlink(path)) if path.is_symlink() else "dir" if path.is_dir() else \
            path.read_bytes() if path.is_file() else "special"  # a FIFO: reading it would block
    return state


def problems(case: Case, outcome: Outcome, places: dict[str, str], before: dict, after: dict) -> list[str]:
    """What is wrong with ``outcome``; empty when the case behaves."""
    found = []
    if outcome.exit != 2:
        found.append(f"exit status {outcome.exit}, expected 2")
    lines = outcome.stderr.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith("error: "):
        found.append(f"stderr is not one 'error: ' line: {outcome.stderr.strip()[:300]!r}")
    expect = case.expect.format(**places)
    if expect not in outcome.stderr:
        found.append(f"stderr lacks {expect!r}")
    if "Traceback" in outcome.stdout + outcome.stderr:
        found.append("a traceback was printed")
    if before != after:
        changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        found.append(f"files changed: {changed[:5]}")
    return found


def run_case(case: Case, tmp: Path, shared: Path | None = None) -> tuple[Outcome, dict[str, str], list[str]]:
    places = prepare(case, tmp, shared)
    before = snapshot(tmp)
    outcome = execute(case, argv(case, places), tmp)
    return outcome, places, problems(case, outcome, places, before, snapshot(tmp))


# --- the tests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, request) -> None:
    shared = None
    if case.shared:
        shared = request.getfixturevalue("cifar10_data_dir")
    outcome, _, found = run_case(case, tmp_path, shared)
    assert not found, f"{case.run}\n{found}\nstderr: {outcome.stderr}"


def test_corpus_is_large_and_every_input_file_is_used() -> None:
    assert len(CASES) >= 45 and len({c.id for c in CASES}) == len(CASES)
    files = [p.relative_to(CORPUS) for p in CORPUS.rglob("*") if p.is_file() and p.name != "cases.yaml"]
    runs = " ".join(c.run for c in CASES)
    # a file is used when a command names it or a directory holding it
    unused = [f for f in files if not any(f"{{in}}/{part} " in runs + " " or f"{{in}}/{part}/" in runs
                                          for part in (f, *f.parents[:-1]))]
    assert set(unused) == {Path("outside_arch.yaml"), Path("outside_workload.yaml")}  # the escape cases' targets
    assert sum(c.process for c in CASES) <= 12  # each subprocess pays for importing torch
