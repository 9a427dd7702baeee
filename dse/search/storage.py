"""Where a study's trials live: the storage a space file may name, and the record that makes a study directory
describe itself.

A space's ``storage`` is a database server URL, or a plain file name (a journal, or SQLite) for a file in the
study directory (``space_storage``, ``study_storage``); other places are for ``--storage``, the user's own flag.

The driver writes ``study.yaml`` beside ``space.yaml``: the storage it used, as a path relative to the
study directory when the file is inside it (the default ``study.db``), else absolute, or a server URL with
its password masked. Every reader (status, show, pareto, sweep, --resume) opens exactly that storage,
relative to the directory it was given, so a copied or renamed study directory reads its own trials and
``dse status .`` works inside one. A reader never creates or alters a storage: a missing file or an empty
database is refused before Optuna would write its schema into it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import optuna

from dse.util.atomic import write_text
from dse.util.errors import UserError
from hwmodel import brief, load_yaml, read_text

RECORD = "study.yaml"
FORMAT = "dse-study/1"
DEFAULT = "sqlite:///study.db"  # relative to the study directory


def mask(storage: str) -> str:
    """``storage`` with any password replaced by ``***``: safe for messages and for the record."""
    if "://" not in storage or "@" not in storage:
        return storage
    from sqlalchemy.engine import make_url

    try:
        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - unparsable: hide everything between :// and @
        scheme, _, rest = storage.partition("://")
        return f"{scheme}://***@{rest.rpartition('@')[2]}"


def file_of(storage: str) -> Path | None:
    """The file a storage lives in (a journal, or SQLite under any driver), or None for a server."""
    if "://" not in storage:
        return Path(storage).expanduser()
    from sqlalchemy.engine import make_url

    url = make_url(storage)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return Path(url.database)
    return None


def in_directory(storage: str, directory: Path) -> str:
    """A storage written relative to ``directory`` (a recorded one, a space's file name) made absolute."""
    path = file_of(storage)
    if path is None or path.is_absolute():
        return storage
    absolute = Path(directory).resolve() / path
    if "://" not in storage:
        return str(absolute)
    from sqlalchemy.engine import make_url

    return make_url(storage).set(database=str(absolute)).render_as_string(hide_password=False)


def _portable(storage: str, directory: Path) -> str:
    """What the record keeps: a file inside the study directory relative to it, others as they are."""
    path = file_of(storage)
    if path is None:
        return mask(storage)
    try:
        relative = path.resolve().relative_to(Path(directory).resolve())
    except ValueError:
        return str(path.resolve()) if "://" not in storage else storage
    if "://" not in storage:
        return str(relative)
    from sqlalchemy.engine import make_url

    return make_url(storage).set(database=str(relative)).render_as_string(hide_password=False)


def write_record(directory: Path, storage: str) -> None:
    text = f"# written by dse search: where this study's trials are (relative paths: to this directory)\n" \
           f"format: {FORMAT}\nstorage: {_portable(storage, directory)!r}\n"
    write_text(Path(directory) / RECORD, text)


def recorded(directory: Path) -> str | None:
    """The storage ``directory``'s record names, made absolute; None for a directory without a record
    (studies from before the record: their storage is the default)."""
    path = Path(directory) / RECORD
    if not path.is_file():
        return None
    doc = load_yaml(read_text(path), str(path))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("storage"), str):
        raise UserError(f"{path}: damaged (expected format {FORMAT!r} and a storage); pass --storage")
    if "***@" in doc["storage"]:
        raise UserError(f"{path}: the study's storage {doc['storage']} needs its password; pass --storage")
    return in_directory(doc["storage"], directory)


def holds_study(path: Path) -> bool:
    """Whether the SQLite file ``path`` holds Optuna's tables; read-only, so looking changes nothing."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return con.execute("SELECT 1 FROM sqlite_master WHERE name = 'studies'").fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return False


SERVER_DIALECTS = ("postgresql", "mysql", "mariadb", "oracle", "mssql")  # databases reached over a network


def space_storage(value: Any) -> str | None:
    """A database server URL, or a file name (a journal, or SQLite under any driver: ``sqlite:///NAME``,
    ``sqlite+pysqlite:///NAME``) for a file in the study directory. Every URL is parsed as SQLAlchemy
    parses it, so no dialect, driver or URI form makes the driver write elsewhere; other places are
    for ``--storage``, the user's own flag."""
    if value is None:
        return None
    shown = mask(value) if isinstance(value, str) else value
    refused = UserError(f"storage: expected a database URL or a plain file name (a journal or sqlite:///NAME in the "
                        f"study directory; other places: --storage), got {brief(shown)}")
    if not isinstance(value, str) or not value:
        raise refused
    name = value
    if "://" in value:
        from sqlalchemy.engine import make_url

        try:
            url = make_url(value)
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy can read
            raise refused from None
        if url.get_backend_name() != "sqlite":
            if url.get_backend_name() not in SERVER_DIALECTS:
                raise UserError(f"storage: {url.get_backend_name()!r} is not a database server ("
                                f"{', '.join(SERVER_DIALECTS)}); a file storage is a plain file name")
            return value
        if url.query or url.host or url.username or url.port:  # ?uri=true&..., file: URIs, odd forms
            raise refused
        name = url.database
    if not isinstance(name, str) or not name or name in (".", "..") or name.startswith("file:") or \
            any(c in name for c in "/\\\0"):
        raise refused
    return value


def study_storage(storage: str | None, directory: Path) -> str | None:
    """Where a space's ``storage`` is: a file name is a file in the study ``directory``; a URL is itself."""
    return None if storage is None else in_directory(storage, directory)


def check_storage(storage: str, where: str, exists: bool, study_dir: Path | None = None) -> None:
    """Refuse a storage Optuna could not open, before anything is written. ``exists``: it must hold a study
    already; ``study_dir``: the study directory, which the driver creates (a storage file may go there).
    Messages show the URL with its password masked."""
    if "://" in storage:
        from sqlalchemy.engine import make_url

        try:
            make_url(storage).get_dialect().import_dbapi()
        except Exception as exc:  # noqa: BLE001 - unparsable URL, unknown dialect, driver not installed
            reason = str(exc).splitlines()[0] if str(exc) else ""
            raise UserError(f"{where}: {brief(mask(storage))} is not a usable database URL "
                            f"({type(exc).__name__}: {reason.replace(storage, mask(storage))})") from None
    path = file_of(storage)
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{where}: {path} is a directory, not a database or journal file")
    if exists and not path.is_file():
        raise UserError(f"{where}: {path} does not exist (no study there)")
    if not path.parent.is_dir() and not (study_dir and path.parent.resolve() == Path(study_dir).resolve()):
        raise UserError(f"{where}: {path.parent} is not a directory")


def locate(flag: str | None, directory: Path, space_storage: str | None, must_exist: bool) -> str:
    """The storage of the study in ``directory``: ``--storage`` as given, else the directory's record, else
    the space's (a file name there), else ``study.db`` in it. Checked before anything is written; with
    ``must_exist``, it must already hold a study (readers and --resume never create one)."""
    if flag is not None:
        storage, where = flag, "--storage"
    elif (storage := recorded(directory)) is not None:
        where = str(Path(directory) / RECORD)
    elif space_storage is not None:
        storage, where = study_storage(space_storage, directory), "storage"
    else:
        storage, where = in_directory(DEFAULT, directory), None
        if must_exist and not (Path(directory) / "study.db").is_file():
            raise UserError(f"{directory}: no study.db (the study's database); pass --storage if it is elsewhere")
    check_storage(storage, where or str(directory), must_exist, directory)
    path = file_of(storage)
    if must_exist and path is not None and "://" in storage and not holds_study(path):
        raise UserError(f"{path}: holds no study (an empty or foreign database); nothing was written to it")
    return storage


def open_storage(url: str):
    """An Optuna storage: a URL (sqlite://, postgresql://, ...) or a journal file path."""
    if url.startswith("sqlite:///"):
        return _sqlite(url)
    if "://" in url:
        return url
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(url).expanduser())))


def _sqlite(url: str) -> optuna.storages.RDBStorage:
    """SQLite in WAL mode with synchronous=NORMAL: a commit no longer waits for an fsync (a trial makes
    about 25 of them), and the file stays consistent through a kill -9 or a power cut (a cut may lose the
    last commits, never the database). WAL needs a local disk: on NFS use a journal file or a server."""
    path = url[len("sqlite:///"):]

    def connect() -> sqlite3.Connection:
        con = sqlite3.connect(path, timeout=30, check_same_thread=False)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA wal_autocheckpoint=128")  # merge the log every 512 KiB (a few dozen trials)
        return con

    return optuna.storages.RDBStorage(url, engine_kwargs={"creator": connect})


def display_name(storage: str) -> str:
    """The storage URL as messages show it: its password masked, shortened."""
    return brief(mask(storage))

