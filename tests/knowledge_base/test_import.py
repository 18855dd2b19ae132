"""Importing and exporting the Q&A base through the database: files round-trip, ids make versions.

The file checks themselves are in test_files.py.
"""
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from knowledge_base import api as kb
from knowledge_base.models import Version

PLAIN = ("id,question,similar_questions,answer,category,unit\n"
         "A-1,社保卡丢了怎么补办？,社保卡补办|社保卡弄丢了咋办,\"先挂失，再补卡。\n窗口：市民之家\",社保,人社局\n"
         "101,\"带逗号, 和引号\"\"的问题\",,答案,,\n")
FULL = ("id,question,similar_questions,answer,category,unit,tags,valid_from,valid_to,notice_until\n"
        "A-1,社保卡丢了怎么补办？,社保卡补办,先挂失再补卡。,社保,人社局,社保卡|补办,2026-01-01,2026-12-31,\n"
        "N-1,台风天还上班吗？,,请关注停工通知。,应急,应急管理局,通知,,,2026-12-01T18:00\n")


def write(tmp_path: Path, text: str, name: str = "qa.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


async def load(db, path: Path, publish: bool = True) -> None:
    async with db.session() as session, session.begin():
        await kb.import_rows(session, kb.read_table(path), actor="t", publish=publish)


async def export(db, path: Path) -> Path:
    async with db.session() as session:
        kb.write_table(path, await kb.export_rows(session))
    return path


def cells(path: Path) -> list[tuple]:
    return list(load_workbook(path).worksheets[0].iter_rows(values_only=True))


@pytest.mark.parametrize("text", [PLAIN, FULL], ids=["six columns", "optional columns"])
async def test_csv_import_then_export_gives_the_same_bytes(db, tmp_path, text):
    source = write(tmp_path, text)
    await load(db, source)
    assert (await export(db, tmp_path / "out.csv")).read_bytes() == source.read_bytes()


async def test_xlsx_import_then_export_gives_the_same_cells(db, tmp_path):
    source = tmp_path / "in.xlsx"
    kb.write_table(source, kb.read_table(write(tmp_path, FULL)))
    await load(db, source)
    assert cells(await export(db, tmp_path / "out.xlsx")) == cells(source)


async def test_csv_to_xlsx_and_back_gives_the_same_csv(db, tmp_path):
    source = write(tmp_path, FULL)
    await load(db, source)
    xlsx = await export(db, tmp_path / "mid.xlsx")
    await load(db, xlsx)   # same ids again: new versions with the same content
    assert (await export(db, tmp_path / "out.csv")).read_bytes() == source.read_bytes()


async def test_optional_columns_are_stored_on_the_version(db, tmp_path):
    await load(db, write(tmp_path, FULL), publish=False)
    async with db.session() as session:
        versions = (await session.scalars(select(Version).order_by(Version.id))).all()
    assert [(v.tags, v.valid_from, v.valid_to, v.notice_until, v.status) for v in versions] == [
        (["社保卡", "补办"], date(2026, 1, 1), date(2026, 12, 31), None, "draft"),
        (["通知"], None, None, datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc), "draft"),
    ]


async def test_reimport_makes_a_new_published_version(db, tmp_path):
    await load(db, write(tmp_path, "id,question,similar_questions,answer,category,unit\n"
                                   "A-1,问题,说法一|说法二,旧答案,社保,人社局\n"))
    await load(db, write(tmp_path, "id,question,similar_questions,answer,category,unit\n"
                                   "A-1,问题,说法一,新答案,社保,人社局\n", name="again.csv"))
    async with db.session() as session:
        served = await kb.published(session)
        versions = (await session.scalars(select(Version).order_by(Version.number))).all()
    assert [(q.entry_id, q.version, q.answer, q.similar_questions) for q in served] == [
        ("A-1", 2, "新答案", ("说法一",))]
    assert [(v.number, v.status, v.reviewer) for v in versions] == [(1, "retired", "t"), (2, "published", "t")]
