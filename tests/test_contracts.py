"""Extension points and boundaries: registries without half-added entries, the cache key over the whole
training source, and dse using hwmodel's public names only."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from pathlib import Path

import optuna
import pytest

import dse
import hwmodel
from dse.data.registry import DATASET_NAMES, DATASETS
from dse.network.registry import NETWORK_NAMES, NETWORKS, build_model
from dse.search import objectives, samplers
from dse.search.cache import code_version, source_digest
from dse.search.space import AGGREGATES, OBJECTIVES, SAMPLERS
from dse.util.errors import UserError

SAMPLER_CLASSES = {"tpe": optuna.samplers.TPESampler, "nsga2": optuna.samplers.NSGAIISampler,
                   "random": optuna.samplers.RandomSampler, "qmc": optuna.samplers.QMCSampler,
                   "gp": optuna.samplers.GPSampler, "grid": samplers.GridSampler}


def test_every_sampler_name_builds_its_own_sampler() -> None:
    """A name accepted by the space builds the sampler of that name: a name added without its factory fails
    here (before the registry, it silently became a grid sampler)."""
    assert set(SAMPLERS) == {samplers.AUTO, *SAMPLER_CLASSES}
    grid = lambda: {"x": [1, 2, 3]}
    for name in SAMPLERS:
        sampler = samplers.build(name, grid, 10, 0)
        resolved = samplers.chosen(name, 10)
        assert type(sampler) is SAMPLER_CLASSES[resolved]
        assert (resolved == "grid") == isinstance(sampler, optuna.samplers.GridSampler)
    assert type(samplers.build("auto", grid, samplers.AUTO_NSGA2_FROM, 0)) is optuna.samplers.NSGAIISampler
    with pytest.raises(ValueError, match="unknown sampler 'cmaes'"):
        samplers.build("cmaes", grid, 10, 0)


def test_every_objective_is_declared_whole_and_read_from_a_real_report() -> None:
    assert OBJECTIVES is objectives.OBJECTIVES  # the space reads the registry itself, not a copy
    report = hwmodel.estimate(hwmodel.load_arch("paper"), hwmodel.load_workload("vgg16-cifar10"))
    for o in objectives.OBJECTIVES.values():
        assert o.direction in ("maximize", "minimize") and o.unit and o.scale > 0
        if o.report_key is not None:
            assert o.read(report) == getattr(report, o.report_key) * o.scale
        for how in AGGREGATES:
            assert isinstance(o.aggregate([1.0, 3.0], how), float)
    energy, accuracy = objectives.OBJECTIVES["energy"], objectives.OBJECTIVES["accuracy"]
    assert energy.read(report) == report.energy_j * 1e6
    assert energy.aggregate([1.0, 3.0], "sum") == 4.0 and accuracy.aggregate([1.0, 3.0], "sum") == 2.0
    assert energy.aggregate([1.0, 3.0], "worst") == 3.0 and accuracy.aggregate([1.0, 3.0], "worst") == 1.0
    with pytest.raises(ValueError, match="direction"):
        objectives.Objective("speed", "faster", "x", 1.0, "latency_s", True)


def test_every_network_name_builds_a_network_of_its_family() -> None:
    assert NETWORK_NAMES == tuple(NETWORKS)
    for name in NETWORK_NAMES:
        model = build_model(name, 10, 3, 8, width=0.25)
        assert model.input_shape == (3, 8, 8) and model.activation == "cat" and not model.folded
    with pytest.raises(ValueError, match="unknown model 'resnet9'"):
        build_model("resnet9", 10, 3, 8)


def test_every_dataset_name_has_a_loader() -> None:
    assert DATASET_NAMES == tuple(DATASETS) and all(callable(f) for f in DATASETS.values())
    from dse.data.registry import load_dataset

    digits = load_dataset("digits")
    assert digits.num_classes == 10 and digits.fingerprint
    with pytest.raises(UserError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")


def test_cache_key_covers_every_training_source(tmp_path) -> None:
    """A new model file anywhere in the package (outside the search layer) changes the key; the search
    layer's own files do not (they decide which network, not how it is trained)."""
    root = tmp_path / "dse"
    shutil.copytree(Path(dse.__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert source_digest(root) == code_version()
    (root / "search" / "driver.py").write_text((root / "search" / "driver.py").read_text() + "\n# note\n")
    assert source_digest(root) == code_version()
    (root / "network" / "mobilenet.py").write_text("WIDTH = 1\n")
    changed = source_digest(root)
    assert changed != code_version()
    (root / "network" / "mobilenet.py").rename(root / "network" / "mobilenet2.py")  # the name is keyed, too
    assert source_digest(root) not in (changed, code_version())
    (root / "network" / "mobilenet2.py").unlink()
    for part in ("data", "network", "snn", "train", "util"):  # every sub-package that shapes a trained network
        module = sorted((root / part).glob("*.py"))[-1]
        text = module.read_text()
        module.write_text(text + "\n# note\n")
        assert source_digest(root) != code_version(), part
        module.write_text(text)
    assert source_digest(root) == code_version()


def _hwmodel_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, name) of every hwmodel name a module reaches: imports and ``hwmodel.<name>`` attributes."""
    out = []
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "hwmodel" or a.name.startswith("hwmodel."):
                    out.append((node.lineno, a.name if a.name != "hwmodel" else ""))
                    aliases.add(a.asname or "hwmodel")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "hwmodel":
            for a in node.names:
                out.append((node.lineno, a.name if node.module == "hwmodel" else f"{node.module}.{a.name}"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            out.append((node.lineno, node.attr))
    return [(line, name) for line, name in out if name]


def test_dse_uses_only_hwmodels_public_names() -> None:
    public = set(hwmodel.__all__)
    assert all(hasattr(hwmodel, name) for name in public)
    offending, seen = [], set()
    for path in sorted(Path(dse.__file__).parent.rglob("*.py")):
        for line, name in _hwmodel_uses(ast.parse(path.read_text(), str(path))):
            seen.add(name)
            if name not in public:
                offending.append(f"{path.name}:{line}: hwmodel.{name}")
    assert not offending, "dse reaches into hwmodel's internals: " + ", ".join(offending)
    assert {"estimate", "load_workload", "Arch"} <= seen  # the check reads real uses


def test_the_public_name_check_catches_an_internal_use() -> None:
    tree = ast.parse("import hwmodel\nfrom hwmodel.workload import parse_workload\nx = hwmodel.files.read_text\n")
    assert [name for _, name in _hwmodel_uses(tree)] == ["hwmodel.workload.parse_workload", "files"]
