"""Reading config files, and the files a config file names: every failure is one ``ConfigError`` line.

The rule for a path written *inside* a config file (a processor file's ``base``, a search space's
``arch`` or ``hwmodel`` workload): it is relative to the directory holding that file, and must stay in
the directory of the file the user named (a search space, or the processor file given to ``hwmodel``),
including through files that name further files. An absolute path, or a ``..`` or symlink that leads
out, is refused, so a config file someone shares cannot make the tool read or write outside the
directory the user pointed it at. Paths given on the command line are the user's own, taken as given.
"""

from __future__ import annotations

from pathlib import Path

from hwmodel.errors import ConfigError, brief


def is_file(path: Path) -> bool:
    """``Path.is_file`` that answers False for names the OS cannot even look up (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_text(path: Path, where: str | None = None) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
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
