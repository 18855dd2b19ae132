"""Backup and restore round-trip every table, on both backends, and refuse to overwrite by accident."""
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.models import Conversation, Message
from casework.models import Case, Event, Unit
from server import backup
from server.db import utcnow
from server.models import metadata


async def _fill(db) -> None:
    now = utcnow()
    async with db.session() as session, session.begin():
        session.add(Unit(id="HZ-ZJJ", name="杭州市住建局", categories=["物业管理"], regions=[]))
        conv = Conversation(channel="wechat", account="zj", sender="openid-1", created_at=now,
                            last_message_at=now)
        session.add(conv)
        await session.flush()
        session.add(Message(conversation_id=conv.id, channel="wechat", account="zj", external_id="1",
                            direction="in", source="citizen", text="小区电梯坏了三天 🚧 <b>急</b>",
                            meta={"media": [{"kind": "image"}]}, created_at=now))
        case = Case(number="ZJ20261127-0001", day=date(2026, 11, 27), seq=1, case_type="complaint",
                    description="电梯故障\n'; DROP TABLE cases; --", unit_id="HZ-ZJJ",
                    conversation_id=conv.id, phone="13812345678", deadline=date(2026, 12, 4),
                    created_at=now)
        session.add(case)
        await session.flush()
        session.add(Event(name="case_submitted", at=now, case_id=case.id, value_seconds=1.5,
                          detail={"case_type": "complaint", "说明": "中文"}))


async def _snapshot(db) -> dict[str, list[tuple]]:
    tables = {}
    async with db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = (await conn.execute(select(table).order_by(*table.primary_key.columns))).all()
            tables[table.name] = [tuple(r) for r in rows]
    return tables


async def test_round_trip_restores_every_table(db, db_url, tmp_path):
    await _fill(db)
    before = await _snapshot(db)
    assert before["cases"] and before["messages"] and before["events"]
    file = tmp_path / "govchat.backup"

    done = backup.backup(db_url, file)
    assert done.size > 0 and file.exists()
    assert not (tmp_path / "govchat.backup.partial").exists()

    # Change the data after the backup: a new case, an edited message, a deleted event.
    async with db.session() as session, session.begin():
        case = await session.scalar(select(Case))
        session.add(Case(number="ZJ20261127-0002", day=case.day, seq=2, case_type="report",
                         description="后来的", created_at=utcnow() + timedelta(seconds=1)))
        (await session.scalar(select(Message))).text = "改过"
        await session.delete(await session.scalar(select(Event)))
    assert await _snapshot(db) != before

    with pytest.raises(backup.BackupError, match="--force"):
        backup.restore(db_url, file)
    assert len((await _snapshot(db))["cases"]) == 2           # refused: nothing changed

    backup.restore(db_url, file, force=True)
    await db.engine.dispose()                                  # no pooled connection of the old file
    assert await _snapshot(db) == before


async def test_restore_into_an_empty_database_needs_no_force(db, db_url, tmp_path):
    await _fill(db)
    before = await _snapshot(db)
    file = tmp_path / "b"
    backup.backup(db_url, file)
    async with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())
    assert not backup.has_data(db_url)
    backup.restore(db_url, file)
    await db.engine.dispose()
    assert await _snapshot(db) == before


async def test_restore_refuses_what_is_not_a_backup_of_this_backend(db_url, tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_text("不是备份")
    with pytest.raises(backup.BackupError, match="not a govchat backup"):
        backup.restore(db_url, junk, force=True)
    with pytest.raises(backup.BackupError, match="no backup file"):
        backup.restore(db_url, tmp_path / "missing", force=True)
    other = tmp_path / "other"
    other.write_bytes(backup.PG_MAGIC + b"\0" * 20 if db_url.startswith("sqlite")
                      else backup.SQLITE_MAGIC + b"\0" * 20)
    with pytest.raises(backup.BackupError, match="backup and DATABASE_URL is"):
        backup.restore(db_url, other, force=True)


def test_a_folder_is_not_a_backup_file(tmp_path):
    with pytest.raises(backup.BackupError, match="is a folder"):
        backup.backup(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", tmp_path)
