"""Extension points and boundaries: registries without half-added entries, the cache key over the whole
training source, and dse using hwmodel's public names only."""

from __future__ import annotations

import ast
import copy
import dataclasses
import shutil
from pathlib import Path

import optuna
import pytest
import torch

import dse
import hwmodel
from dse.data.registry import DATASET_NAMES, DATASETS
from dse.network.fold import fold_units
from dse.network.layers import PIXEL_FRACTION_BITS, LogLayer
from dse.network.quant import CATActivation, SpikeCode
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


class _Strided(torch.nn.Module):
    """A throwaway family (not VGG, not ResNet): stride-2 convs, no pools, global average pool, classifier.
    It implements the ``Network`` protocol with the library's layers and nothing of VGG's or ResNet's code."""

    CAT_ONLY = True
    NAIVE_CONVERSION = False

    def __init__(self, config, num_classes, in_channels, input_size, *, width=1.0, activation="cat",
                 weight_bits=5, code=SpikeCode(), first_layer="pixels", **_options):
        super().__init__()
        self.activation, self.code, self.first_layer, self.weight_bits = activation, code, first_layer, weight_bits
        self.input_shape = (in_channels, input_size, input_size)
        layers, c = [], in_channels
        for out in config:
            out = max(1, int(out * width))
            layers.append(torch.nn.ModuleDict({
                "conv": LogLayer(torch.nn.Conv2d(c, out, 3, stride=2, padding=1, bias=False), weight_bits),
                "bn": torch.nn.BatchNorm2d(out), "act": CATActivation(code, 0)}))
            c, input_size = out, (input_size + 1) // 2
        self.blocks, self.pool_kernel = torch.nn.ModuleList(layers), input_size
        self.classifier = LogLayer(torch.nn.Linear(c, num_classes), weight_bits)

    def units(self):
        return list(self.blocks)

    @property
    def folded(self) -> bool:
        return all(isinstance(u["bn"], torch.nn.Identity) for u in self.blocks)

    def forward(self, x):
        grid = -PIXEL_FRACTION_BITS
        for u in self.blocks:
            x = u["act"](u["bn"](u["conv"](x, grid)))
            grid = u["act"].theta_exponent() - self.code.fraction_bits
        x = torch.nn.functional.avg_pool2d(x, self.pool_kernel)
        return self.classifier(torch.flatten(x, 1), grid - 2 * (self.pool_kernel - 1).bit_length())

    def fold_batchnorm(self, calibration=None, into="weights"):
        return fold_units(self, calibration, into)

    def set_pretraining(self, enabled: bool) -> None:
        pass

    def fuse_activations(self, enabled: bool = True) -> bool:
        return False

    def snn_graph(self, g) -> None:
        for u in self.blocks:
            g.weight(u["conv"].op)
            g.fire(u["act"])
        g.pool("avg", self.pool_kernel)
        g.flatten()
        g.weight(self.classifier.op)


@pytest.fixture
def strided_family():
    """The throwaway family registered under "strided" for one test, and taken out after it."""
    from dse.network import registry

    registry.register(_Strided, {"strided": [8, 16]})
    yield registry
    del registry.NETWORKS["strided"], registry.FAMILY["strided"]


def test_a_new_family_is_its_module_and_one_register_call(strided_family) -> None:
    """Registered, a family no code of dse names is validated by TrainSpec as its protocol says, folded, exported
    and simulated exactly: fold, export and the spec ask the family, never for its class."""
    from dse.network.fold import fold_batchnorm
    from dse.snn.closed_form import simulate_closed_form
    from dse.snn.export import export_snn
    from dse.train.spec import TrainSpec
    from networks import trained_briefly

    assert TrainSpec(model="strided").model == "strided"
    with pytest.raises(UserError, match="trains with CAT and log weights only"):
        TrainSpec(model="strided", activation="relu")
    torch.manual_seed(0)
    model = strided_family.build_model("strided", 10, 3, 8, time_window=8)
    model, pixels = trained_briefly(model, lambda m, x: fold_batchnorm(m, calibration=x.float() / 256, into="thresholds"))
    ann = copy.deepcopy(model).double()(pixels.double() / 256)
    net = export_snn(model)
    assert [op["op"] for op in net.ops] == ["conv", "fire", "conv", "fire", "avgpool", "flatten", "linear"]
    assert torch.equal(simulate_closed_form(net, pixels)[0], ann)
