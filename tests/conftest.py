"""Shared fixtures: real databases (SQLite always, PostgreSQL where reachable)."""
from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from server import migrate
from server.db import Database
from server.models import metadata

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
PG_URL = os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _pg_reason() -> str | None:
    """None when the test PostgreSQL answers, else why not."""
    engine = create_async_engine(PG_URL, connect_args={"timeout": 3})
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:
        return f"no PostgreSQL at {PG_URL.split('@')[-1]} ({type(exc).__name__}: {exc})"
    finally:
        await engine.dispose()


async def reset_schema(url: str) -> None:
    """Drop everything, then build the schema through the migrations, as production does."""
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await engine.dispose()
    await asyncio.to_thread(migrate.upgrade, url)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def db_url(request, tmp_path_factory) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    else:
        reason = await _pg_reason()
        if reason:
            pytest.skip(reason)
        url = PG_URL
    await reset_schema(url)
    return url


@pytest.fixture
async def db(db_url) -> Database:
    """A database with the current schema and no rows; emptied again after the test."""
    database = Database(db_url)
    await _empty(database)
    yield database
    await database.dispose()


async def _empty(database: Database) -> None:
    async with database.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())
