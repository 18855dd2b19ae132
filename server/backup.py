"""`govchat backup FILE` and `govchat restore FILE`: the whole database, either backend.

SQLite uses its online backup API (a consistent copy while the server runs); PostgreSQL uses
pg_dump's custom format and pg_restore in one transaction. A backup is written to a temporary
file beside FILE and renamed into place when complete, so a failed backup never leaves a file
that looks whole. Restore refuses to overwrite a database that holds data unless `force` is
given, and refuses a file of the other backend.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

PG_MAGIC = b"PGDMP"                      # the first bytes of a pg_dump custom-format file
SQLITE_MAGIC = b"SQLite format 3\x00"


class BackupError(Exception):
    """A backup or restore that cannot be done, said in plain words for the operator."""


@dataclass(frozen=True)
class Done:
    path: Path
    size: int
    backend: str


def backend_of(database_url: str) -> str:
    return "sqlite" if make_url(database_url).get_backend_name() == "sqlite" else "postgresql"


def backup(database_url: str, path: Path | str) -> Done:
    path = Path(path)
    if path.is_dir():
        raise BackupError(f"{path} is a folder; give a file name such as {path / 'govchat.backup'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    backend = backend_of(database_url)
    try:
        if backend == "sqlite":
            source = _sqlite_file(database_url)
            if not source.exists():
                raise BackupError(f"there is no database at {source}")
            with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(partial)) as dst:
                src.backup(dst)
        else:
            _run(["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                  f"--file={partial}", *_pg_args(database_url)], database_url)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return Done(path, path.stat().st_size, backend)


def restore(database_url: str, path: Path | str, *, force: bool = False) -> Done:
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"there is no backup file at {path}")
    backend = backend_of(database_url)
    with path.open("rb") as f:
        head = f.read(16)
    kind = "postgresql" if head.startswith(PG_MAGIC) else "sqlite" if head == SQLITE_MAGIC else None
    if kind is None:
        raise BackupError(f"{path} is not a govchat backup (neither a SQLite file nor a pg_dump archive)")
    if kind != backend:
        raise BackupError(f"{path} is a {kind} backup and DATABASE_URL is {backend}: restore it into a "
                          f"{kind} database, or move data between backends with an export")
    if not force and has_data(database_url):
        raise BackupError("the database already holds data; restoring replaces all of it. "
                          "Stop the server, make a backup of the current state, then run again with --force")
    if backend == "sqlite":
        target = _sqlite_file(database_url)
        target.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path)) as src:
            _require_sqlite_schema(src, path)
            with closing(sqlite3.connect(target)) as dst:
                src.backup(dst)
    else:
        _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges",
              "--single-transaction", "--exit-on-error", f"--dbname={_pg_dbname(database_url)}",
              *_pg_args(database_url, with_db=False), str(path)], database_url)
    return Done(path, path.stat().st_size, backend)


def has_data(database_url: str) -> bool:
    """Whether any table other than alembic's holds a row."""
    if backend_of(database_url) == "sqlite":
        target = _sqlite_file(database_url)
        if not target.exists():
            return False
        with closing(sqlite3.connect(target)) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
                "AND name != 'alembic_version'")]
            return any(conn.execute(f'SELECT 1 FROM "{t}" LIMIT 1').fetchone() for t in tables)
    query = ("SELECT string_agg(format('SELECT 1 FROM %I.%I', schemaname, tablename), ' UNION ALL ') "
             "FROM pg_tables WHERE schemaname = 'public' AND tablename != 'alembic_version'")
    union = _run(["psql", "-At", "-c", query, *_pg_args(database_url)], database_url).strip()
    if not union:
        return False
    return bool(_run(["psql", "-At", "-c", f"SELECT EXISTS ({union})", *_pg_args(database_url)],
                     database_url).strip() == "t")


def _require_sqlite_schema(conn: sqlite3.Connection, path: Path) -> None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'").fetchone():
        raise BackupError(f"{path} is a SQLite file but not a govchat database (no alembic_version)")


def _sqlite_file(database_url: str) -> Path:
    database = make_url(database_url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _pg_dbname(database_url: str) -> str:
    return make_url(database_url).database or "postgres"


def _pg_args(database_url: str, *, with_db: bool = True) -> list[str]:
    url = make_url(database_url)
    args = [f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 5432}",
            f"--username={url.username or 'postgres'}"]
    return args + ([f"--dbname={_pg_dbname(database_url)}"] if with_db else [])


def _run(command: list[str], database_url: str) -> str:
    if shutil.which(command[0]) is None:
        raise BackupError(f"{command[0]} is not installed (the PostgreSQL client tools: "
                          f"apt-get install postgresql-client)")
    env = {**os.environ}
    password = make_url(database_url).password
    if password:
        env["PGPASSWORD"] = password            # never on the command line, where ps shows it
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed: {done.stderr.strip()[:500]}")
    return done.stdout
