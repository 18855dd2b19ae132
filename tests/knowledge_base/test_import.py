"""Reading Q&A files: good files load, a bad file is rejected whole with every problem named."""
from pathlib import Path

import pytest
from sqlalchemy import select

from knowledge_base import api as kb
from knowledge_base.models import Version


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "qa.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_bad_file_names_every_problem_by_row_and_column(tmp_path):
    path = write(tmp_path, "id,question,similar_questions,answer,category,unit\n"
                           "A-1,问题一,说法一|说法二,答案一,社保,人社局\n"
                           "A-2,,,答案二,社保,人社局\n"
                           "A-1,问题三,,,社保,人社局\n")
    with pytest.raises(kb.ImportRejected) as err:
        kb.read_csv(path)
    assert err.value.problems == [
        "row 3, column question: empty",
        "row 4, column answer: empty",
        "row 4, column id: A-1 repeats row 2",
    ]


def test_a_missing_column_is_reported(tmp_path):
    with pytest.raises(kb.ImportRejected) as err:
        kb.read_csv(write(tmp_path, "id,question,answer\nA,B,C\n"))
    assert err.value.problems == ["header: missing column(s) similar_questions, category, unit"]


async def test_reimport_makes_a_new_published_version(db, tmp_path):
    first = kb.read_csv(write(tmp_path, "id,question,similar_questions,answer,category,unit\n"
                                        "A-1,问题,说法一|说法二,旧答案,社保,人社局\n"))
    second = [kb.Row("A-1", "问题", ("说法一",), "新答案", "社保", "人社局")]
    async with db.session() as session, session.begin():
        await kb.import_rows(session, first, actor="t", publish=True)
    async with db.session() as session, session.begin():
        await kb.import_rows(session, second, actor="t", publish=True)
    async with db.session() as session:
        served = await kb.published(session)
        versions = (await session.scalars(select(Version).order_by(Version.number))).all()
    assert [(q.entry_id, q.version, q.answer) for q in served] == [("A-1", 2, "新答案")]
    assert [(v.number, v.status) for v in versions] == [(1, "retired"), (2, "published")]
    assert first[0].similar_questions == ("说法一", "说法二")
