"""Migrations build the same schema the models declare, and come down again, on both backends."""
import asyncio

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from server import migrate
from server.models import metadata


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


async def test_down_and_up_again(db_url):
    await asyncio.to_thread(migrate.downgrade, db_url, "base")
    assert await _tables(db_url) <= {"alembic_version"}
    await asyncio.to_thread(migrate.upgrade, db_url)
    assert await _tables(db_url) == set(metadata.tables) | {"alembic_version"}
