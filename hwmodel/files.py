"""Reading config files, and the files a config file names: every failure is one ``ConfigError`` line.

The rule for a path written *inside* a config file (a processor file's ``base``, a search space's
``arch`` or ``hwmodel`` workload): it is relative to the directory holding that file, and must stay in
the directory of the file the user named (a search space, or the processor file given to ``hwmodel``),
including through files that name further files. An absolute path, or a ``..`` or symlink that leads
out, is refused, so a config file someone shares cannot make the tool read or write outside the
directory the user pointed it at. Paths given on the command line are the user's own, taken as given.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

from hwmodel.errors import ConfigError, brief

MAX_FILE_BYTES = 8 << 20  # a config or spike file is kilobytes; /dev/zero or a stray dataset is refused
MAX_YAML_NODES = 1_000_000  # values a document expands to, aliases followed: a "billion laughs" stops here


def is_file(path: Path) -> bool:
    """``Path.is_file`` that answers False for names the OS cannot even look up (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_text(path: Path, where: str | None = None) -> str:
    """A regular file's text, at most ``MAX_FILE_BYTES``: a FIFO would block and /dev/zero never end."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError(f"{where or path}: not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ConfigError(f"{where or path}: larger than {MAX_FILE_BYTES >> 20} MiB; not a config file")
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where or path}: not a text file (not UTF-8)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where or path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None


def inside(directory: Path, name: str, where: str, root: Path | None = None) -> Path:
    """``name`` (written in a config file in ``directory``) as a resolved path that stays inside ``root``
    (default: ``directory``)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: expected a file name, got {brief(name)}")
    if Path(name).is_absolute():
        raise ConfigError(f"{where}: {brief(name)} is an absolute path; a config file may only name files in its "
                          f"own directory ({Path(root or directory).resolve()})")
    try:
        path = (Path(directory) / name).resolve()
        root = Path(root or directory).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"{where}: {brief(name)} is not a usable path ({exc})") from None
    if not path.is_relative_to(root):
        raise ConfigError(f"{where}: {brief(name)} leads out of {root}; a config file may only name files in its "
                          "own directory")
    return path


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                repeated = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if repeated:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        f"duplicate key {brief(key)}", key_node.start_mark)
        return super().construct_mapping(node, deep)


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Nodes the document holds once every alias is followed, counted up to ``limit`` + 1; each distinct
    node is sized once, so counting costs as much as the document's text, not its expansion."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        sizes[id(node)] = min(total, limit + 1)
        return sizes[id(node)]

    return size(root)


def load_yaml(text: str, where: str):
    """Plain YAML data with bounded resources: ``safe_load`` semantics, duplicate keys refused, and a
    document whose aliases expand past ``MAX_YAML_NODES`` values refused before it is built."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise ConfigError(f"{where}: YAML expands to more than {MAX_YAML_NODES:,} values (aliases of aliases); "
                              "refused")
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()
