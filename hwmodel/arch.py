"""Processor configuration: a frozen, validated dataclass loaded from a preset name or a YAML file."""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from hwmodel import fields
from hwmodel.errors import ConfigError, brief, did_you_mean
from hwmodel.files import inside, is_file, load_yaml, read_text

_TYPES = {"int": int, "float": float, "choice": str}


def _pe_count(self) -> int:
    return self.pe_rows * self.pe_cols


def _to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)


# Generated from the one field table (fields.py): a frozen dataclass with ``name`` first.
Arch = dataclasses.make_dataclass(
    "Arch", [("name", str)] + [(f.name, _TYPES[f.kind]) for f in fields.FIELDS.values()], frozen=True,
    namespace={"pe_count": property(_pe_count), "to_dict": _to_dict,
               "__doc__": "A TTFS SNN processor; every field is declared in hwmodel/fields.py (units there).",
               "__module__": __name__})
FIELDS = fields.NAMES


def check_field(name: str, value: Any, where: str = "arch") -> Any:
    """Type/range check of one field: malformed values raise ConfigError; zero sizes stay (infeasible)."""
    return fields.check(name, value, where)


def _from_mapping(data: Any, where: str, base: Arch | None, directory: Path, root: Path,
                  chain: tuple[Path, ...] = ()) -> Arch:
    if data is None:
        raise ConfigError(f"{where}: the file is empty; expected a mapping of arch fields")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of arch fields, got {type(data).__name__}")
    data = dict(data)
    name = str(data.pop("name", Path(where).stem))
    base_name = data.pop("base", None)
    if base_name is not None:
        if not isinstance(base_name, str):
            raise ConfigError(f"{where}.base: expected a preset name or a file name, got {brief(base_name)}")
        if base_name in presets():
            base = load_arch(base_name)
        else:
            path = inside(directory, base_name, f"{where}.base", root)
            if path in chain:  # a.yaml -> base b.yaml -> base a.yaml would never end
                raise ConfigError(f"{where}.base: {brief(base_name)} leads back to {path.name} (a cycle of base files)")
            base = _load_file(path, root, chain)
    values = base.to_dict() if base is not None else {}
    values.pop("name", None)
    for key, value in data.items():
        values[key] = check_field(str(key), value, where)
    missing = [f for f in FIELDS if f not in values]
    if missing:
        raise ConfigError(f"{where}: missing field(s) {', '.join(missing)} (or set 'base: paper')")
    return Arch(name=name, **values)


def presets() -> list[str]:
    return list(_preset_names())


@functools.cache   # package data: read once per process
def _preset_names() -> tuple[str, ...]:
    folder = resources.files("hwmodel").joinpath("presets")
    return tuple(sorted(p.name[:-5] for p in folder.iterdir()
                        if p.name.endswith(".yaml") and p.name != "calibration.yaml"))


@functools.cache   # an Arch is frozen: every caller may share the parsed preset (a search prices it per trial)
def _preset(name: str) -> Arch:
    where = f"preset {name}"
    raw = resources.files("hwmodel").joinpath(f"presets/{name}.yaml").read_text()
    return _from_mapping(read_yaml(raw, where), where, None, Path(), Path()) if name == "paper" else \
        _from_mapping({"name": name, **read_yaml(raw, where)}, where, load_arch("paper"), Path(), Path())


def read_yaml(text: str, where: str) -> Any:
    """Plain YAML data only (``hwmodel.files.load_yaml``): a ``!!python/...`` tag is refused, never run."""
    try:
        return load_yaml(text, where)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
            raise ConfigError(f"{where}: YAML tag refused{at}: {problem} (only plain data is read, never Python "
                              "objects)") from None
        raise ConfigError(f"{where}: YAML syntax error{at}: {problem}") from None


def load_arch(spec: str | Path | dict, root: str | Path | None = None) -> Arch:
    """A preset name (``paper``), a YAML file, or a mapping of fields. Files and mappings inherit unset fields
    from ``base`` (default paper): a preset, or a file relative to the file naming it (a mapping's: to
    ``root``). Base files must stay inside ``root``: by default the given file's directory (hwmodel.files)."""
    if isinstance(spec, dict):
        return _from_mapping(spec, "arch", load_arch("paper"), Path(root or "."), Path(root or "."))
    text = str(spec)
    if text in _preset_names():
        return _preset(text)
    if not is_file(Path(text)):
        raise ConfigError(f"arch: {brief(text)} is neither a preset ({', '.join(presets())}) nor a file"
                          f"{did_you_mean(text, presets())}")
    return _load_file(Path(text), Path(root) if root is not None else Path(text).parent, ())


def _load_file(path: Path, root: Path, chain: tuple[Path, ...]) -> Arch:
    if not is_file(path):
        raise ConfigError(f"{path}: no such processor file")
    data = read_yaml(read_text(path), str(path))
    return _from_mapping(data, str(path), load_arch("paper"), path.parent, root, chain + (path.resolve(),))


def with_fields(arch: Arch, **changes: Any) -> Arch:
    """A validated copy of ``arch`` with ``changes`` applied."""
    checked = {key: check_field(key, value) for key, value in changes.items() if key != "name"}
    if "name" in changes:
        checked["name"] = str(changes["name"])
    return dataclasses.replace(arch, **checked)
