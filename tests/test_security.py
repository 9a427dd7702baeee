"""Security: nothing a user is handed (a search space, a processor or workload file, a checkpoint, a
dataset directory) can run code, and paths inside config files stay where the user pointed the tool.

Source scans prove the rules hold everywhere in dse/ and hwmodel/; each is paired with a real malicious
input that would create a marker file if it ran anything, and is refused with one line instead.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import pytest
import torch
import yaml

import hwmodel
from dse.cli import main as dse_main
from dse.search.space import Constraint, load_space, parse_space
from dse.search.storage import study_storage
from dse.util.errors import UserError
from hwmodel.cli import main as hwmodel_main

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "dse").rglob("*.py"), *(ROOT / "hwmodel").rglob("*.py")])
SPACE = """\
study: sec
workloads:
  - hwmodel: vgg16-cifar10
space:
  pe_rows: [4, 8]
objectives: [energy, area]
"""


def calls(path: Path):
    """Every call in a source file, with the dotted name of what is called (``torch.load``, ``eval``)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def one_error_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err
    return err


class RunsCode:
    """Unpickling this calls ``os.system``: what a malicious checkpoint or dataset file would do."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_sources_were_found() -> None:
    assert len(SOURCES) > 20 and ROOT / "dse" / "search" / "space.py" in SOURCES


# --- (a) YAML is only ever loaded safely ----------------------------------------------------------------------
def test_yaml_is_only_loaded_with_safe_load() -> None:
    unsafe = [f"{p.relative_to(ROOT)}:{n.lineno}: {name}" for p in SOURCES for name, n in calls(p)
              if name.startswith("yaml.") and name not in ("yaml.safe_load", "yaml.safe_dump",
                                                           "yaml.constructor.ConstructorError")]
    assert unsafe == []
    from hwmodel.files import _Loader  # the one loader class: the bounded load_yaml's, a SafeLoader

    assert issubclass(_Loader, yaml.SafeLoader) and not issubclass(_Loader, yaml.FullLoader)
    for path in SOURCES:  # no loader classes handed around either (Loader=yaml.Loader, FullLoader, ...)
        text = path.read_text()
        assert not any(word in text for word in ("Loader=", "unsafe_load", "full_load", "UnsafeLoader")), path


TAGS = ['!!python/object/apply:os.system ["touch {marker}"]',
        '!!python/object/new:subprocess.Popen [["touch", "{marker}"]]',
        "!!python/name:os.system"]


@pytest.mark.parametrize("tag", TAGS, ids=["object-apply", "object-new", "name"])
def test_python_tags_are_refused_everywhere_and_run_nothing(tmp_path, capsys, tag) -> None:
    marker = tmp_path / "marker"
    value = tag.format(marker=marker)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE.replace("study: sec", f"study: {value}"))
    arch = tmp_path / "arch.yaml"
    arch.write_text(f"pe_rows: {value}\n")
    config = tmp_path / "train.yaml"
    config.write_text(f"dataset: {value}\n")
    workload = tmp_path / "workload.yaml"
    workload.write_text(f"schema: snn-workload/1\nname: {value}\nlayers: []\n")
    copy = tmp_path / "results" / "sec"
    copy.mkdir(parents=True)
    (copy / "space.yaml").write_text(SPACE + f"arch: {value}\n")
    for main, args, words in [
            (dse_main, ["search", str(space), "--results-dir", str(tmp_path / "results")], "space.yaml:1:8: YAML tag refused"),
            (dse_main, ["status", str(copy)], "sec/space.yaml:7:7: YAML tag refused"),
            (dse_main, ["train", "--config", str(config), "--out", str(tmp_path / "out")], "train.yaml: YAML tag refused"),
            (hwmodel_main, ["estimate", "--arch", str(arch)], "arch.yaml: YAML tag refused"),
            (hwmodel_main, ["estimate", "--workload", str(workload)], "workload.yaml: YAML tag refused")]:
        assert words in one_error_line(capsys, main(args)), args
    assert not marker.exists() and not (tmp_path / "out").exists()


# --- (b) checkpoints load with weights_only=True, pickles never run code ------------------------------------
def test_torch_load_always_has_weights_only_true() -> None:
    loads = [(p, n) for p in SOURCES for name, n in calls(p) if name == "torch.load"]
    assert loads  # the scan sees the loaders (dse/train/checkpoint.py, dse/snn/network.py)
    for path, node in loads:
        flags = {k.arg: k.value for k in node.keywords}
        assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
            f"{path.relative_to(ROOT)}:{node.lineno}"


def test_no_unrestricted_unpickling() -> None:
    """``pickle.load`` of a stranger's file runs its code: only dse/data/cifar.py's allow-list unpickler reads
    pickles (CIFAR batches), and numpy never unpickles."""
    found = [f"{p.relative_to(ROOT)}:{n.lineno}: {name}" for p in SOURCES for name, n in calls(p)
             if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "dill.load", "joblib.load",
                         "cloudpickle.load", "torch.jit.load")
             or any(k.arg == "allow_pickle" for k in n.keywords)]
    assert found == []


@pytest.mark.parametrize("fmt", ["torch-zip", "plain-pickle"])
def test_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys, fmt) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "checkpoint.pt"
    payload = {"format": "dse-checkpoint/1", "spec": RunsCode(f"touch {marker}")}
    if fmt == "torch-zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    err = one_error_line(capsys, dse_main(["evaluate", str(path)]))
    assert f"{path}: refused: the file asks to load Python objects" in err and "GLOBAL posix.system" in err
    from dse.snn.network import SNNNetwork  # the SNN file reader: same rule

    with pytest.raises(UserError, match="not a loadable SNN file"):
        SNNNetwork.load(path)
    assert not marker.exists()


def test_malicious_dataset_pickle_is_refused_and_runs_nothing(tmp_path) -> None:
    """A CIFAR batch is a pickle by format; one that imports anything but numpy's array pieces is refused."""
    import numpy as np

    from dse.data.registry import load_dataset

    marker = tmp_path / "marker"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    good = {b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 1]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(good, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a", b"b"]}, protocol=2))
    assert load_dataset("cifar10", tmp_path, download=False).train.images.shape == (10, 3, 32, 32)
    (folder / "data_batch_4").write_bytes(pickle.dumps({b"data": RunsCode(f"touch {marker}")}, protocol=2))
    with pytest.raises(UserError, match=r"data_batch_4 is not a readable CIFAR batch \(refused to load posix.system"):
        load_dataset("cifar10", tmp_path, download=False)
    assert not marker.exists()


# --- (c) nothing in a search-space file is evaluated ---------------------------------------------------------
def test_no_eval_or_exec_in_the_sources() -> None:
    found = [f"{p.relative_to(ROOT)}:{n.lineno}: {name}" for p in SOURCES for name, n in calls(p)
             if name in ("eval", "exec", "compile", "__import__", "os.system", "os.popen", "importlib.import_module")
             and not (name == "importlib.import_module" and p.name == "cli.py")]  # dse/cli.py: fixed module names
    assert found == []
    shells = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in SOURCES for name, n in calls(p)
              if name.startswith("subprocess.") and any(k.arg == "shell" for k in n.keywords)]
    assert shells == []


def test_constraints_are_parsed_not_evaluated(tmp_path) -> None:
    marker = tmp_path / "marker"
    base = yaml.safe_load(SPACE)
    space = parse_space({**base, "constraints": ["area <= 2.5e1", " energy>=-3 "]})
    assert space.constraints == (Constraint("area", "<=", 25.0), Constraint("energy", ">=", -3.0))
    for text in [f"area <= __import__('os').system('touch {marker}')", "area <= 1; import os", "area <= 1 or True",
                 "area <= (lambda: 1)()", "area.__class__ <= 1", "area <= 1e999"]:
        with pytest.raises(UserError, match=r"constraints\[0\]: "):
            parse_space({**base, "constraints": [text]})
    assert not marker.exists()


# --- (d) paths from config files stay where the user pointed ------------------------------------------------
@pytest.mark.parametrize("study", ["../x", "/abs", "a/b", "..", ".", "a\\b", "~", "x/../..", "", " s"])
def test_study_names_cannot_leave_the_results_directory(study) -> None:
    with pytest.raises(UserError, match=r"^study: expected a name .*\(no paths\)"):
        parse_space({**yaml.safe_load(SPACE), "study": study})


def _confined_setup(tmp_path: Path) -> Path:
    """spaces/ (the user's directory) with files inside it, and a valid arch and workload outside it."""
    spaces = tmp_path / "spaces"
    (spaces / "archs").mkdir(parents=True)
    (spaces / "archs" / "small.yaml").write_text("pe_rows: 4\nbase: ../base.yaml\n")
    (spaces / "base.yaml").write_text("pe_cols: 8\n")
    (spaces / "wl.yaml").write_text("schema: snn-workload/1\nname: wl\nlayers:\n"
                                    "  - {name: f1, type: linear, in_shape: [16], out_features: 4}\n")
    (tmp_path / "outside.yaml").write_text("pe_rows: 2\n")
    (tmp_path / "outside_wl.yaml").write_text((spaces / "wl.yaml").read_text())
    (spaces / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    return spaces


def test_files_named_in_a_space_resolve_next_to_it_and_are_inlined(tmp_path, monkeypatch) -> None:
    spaces = _confined_setup(tmp_path)
    monkeypatch.chdir(tmp_path)  # not the space's directory: resolution must not depend on it
    (spaces / "space.yaml").write_text(SPACE.replace("  - hwmodel: vgg16-cifar10", "  - hwmodel: wl.yaml\n"
                                                     "  - hwmodel: vgg16-cifar10") + "arch: archs/small.yaml\n")
    space = load_space(spaces / "space.yaml")
    assert space.arch == {**hwmodel.load_arch("paper").to_dict(), "name": "small", "pe_rows": 4, "pe_cols": 8}
    assert space.workloads[0].name == "wl.yaml" and space.workloads[0].hwmodel_workload["name"] == "wl"
    # the driver's copy in the study directory holds the files' content: it loads anywhere, alone
    copy = tmp_path / "results" / "sec" / "space.yaml"
    copy.parent.mkdir(parents=True)
    copy.write_text(yaml.safe_dump(space.source, sort_keys=False))
    assert load_space(copy) == space
    assert "small.yaml" not in copy.read_text() and "wl.yaml" in copy.read_text()  # the name, not the file


@pytest.mark.parametrize("key, value, words", [
    ("arch", "../outside.yaml", "arch: '../outside.yaml' leads out of"),
    ("arch", "link.yaml", "arch: 'link.yaml' leads out of"),  # a symlink is followed, then judged
    ("arch", "{tmp}/outside.yaml", "is an absolute path"),
    ("arch", "archs/../../outside.yaml", "leads out of"),
    ("hwmodel", "../outside_wl.yaml", "workloads[0].hwmodel: '../outside_wl.yaml' leads out of"),
    ("hwmodel", "{tmp}/outside_wl.yaml", "workloads[0].hwmodel: '{tmp}/outside_wl.yaml' is an absolute path"),
    ("storage", "../study.journal", "storage: expected a database URL or a plain file name"),
    ("storage", "sub/study.journal", "storage: expected a database URL or a plain file name"),
    ("storage", "{tmp}/study.journal", "storage: expected a database URL or a plain file name"),
    ("storage", "sqlite:///../study.db", "storage: expected a database URL or a plain file name"),
    ("storage", "sqlite:////{tmp}/study.db", "storage: expected a database URL or a plain file name"),
])
def test_paths_in_a_space_cannot_leave_its_directory(tmp_path, key, value, words) -> None:
    spaces = _confined_setup(tmp_path)
    value, words = value.format(tmp=tmp_path), words.format(tmp=tmp_path)
    text = SPACE.replace("hwmodel: vgg16-cifar10", f"hwmodel: {value}") if key == "hwmodel" else \
        SPACE + f"{key}: {value}\n"
    (spaces / "space.yaml").write_text(text)
    with pytest.raises(UserError) as info:
        load_space(spaces / "space.yaml")
    assert words in str(info.value) and str(info.value).startswith(str(spaces / "space.yaml"))


def test_processor_base_cannot_leave_the_directory_the_user_named(tmp_path) -> None:
    """``hwmodel estimate --arch archs/small.yaml`` names archs/; a space in spaces/ naming it names spaces/."""
    spaces = _confined_setup(tmp_path)
    small = spaces / "archs" / "small.yaml"
    assert hwmodel.load_arch(small, root=spaces).pe_cols == 8
    with pytest.raises(hwmodel.ConfigError, match=r"small.yaml.base: '../base.yaml' leads out of .*/spaces/archs;"):
        hwmodel.load_arch(small)
    small.write_text("base: ../../outside.yaml\n")
    with pytest.raises(hwmodel.ConfigError, match=r"small.yaml.base: '../../outside.yaml' leads out of .*/spaces;"):
        hwmodel.load_arch(small, root=spaces)


def test_a_space_storage_file_lives_in_the_study_directory(tmp_path, capsys) -> None:
    """``storage: NAME`` puts the journal in RESULTS/<study>/; status/show find it there from any directory."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    study_dir = tmp_path / "results" / "sec"
    assert study_storage("study.journal", study_dir) == str(study_dir.resolve() / "study.journal")
    assert study_storage("sqlite:///s.db", study_dir) == f"sqlite:///{study_dir.resolve() / 's.db'}"
    assert study_storage("postgresql://db.example/dse", study_dir) == "postgresql://db.example/dse"
    study_dir.mkdir(parents=True)
    (study_dir / "space.yaml").write_text(SPACE + "storage: study.journal\n")
    assert dse_main(["status", str(study_dir)]) == 2
    assert "study.journal does not exist (no study there)" in capsys.readouterr().err
    assert sorted(p.name for p in study_dir.iterdir()) == ["space.yaml"]  # nothing created by looking
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(study_dir / "study.journal")))
    study = optuna.create_study(study_name="sec", storage=storage, directions=["minimize", "minimize"])
    study.tell(study.ask(), [1.0, 2.0])
    assert dse_main(["status", str(study_dir)]) == 0
    assert "study sec: 1 trials: 1 complete" in capsys.readouterr().out
