"""The govchat command line, run as an operator runs it."""
import subprocess
import sys
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from admin.api import verify_password
from admin.models import AuditEntry, User

GOVCHAT = str(Path(sys.executable).parent / "govchat")


def govchat(db_url, *args, stdin: str | None = None, **env) -> subprocess.CompletedProcess:
    return subprocess.run([GOVCHAT, *args], input=stdin, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db_url, **env}, timeout=300)


async def test_users_add_prints_a_one_time_password_that_works(db):
    result = govchat(db.url, "users", "add", "wang.li", "--role", "reviewer", "--name", "王丽")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip().split(": ")[-1]
    async with db.session() as session:
        user = await session.scalar(select(User).where(User.username == "wang.li"))
        audit = await session.scalar(select(AuditEntry).where(AuditEntry.target == "wang.li"))
    assert user.role == "reviewer" and user.must_change_password
    assert verify_password(user, password) and not verify_password(user, password + "x")
    assert audit.action == "user.create" and audit.actor == "cli"


@pytest.mark.parametrize("args, stdin, message", [
    (["users", "add", "zhang", "--role", "agent", "--password-stdin"], "short1\n", "at least 10"),
    (["users", "add", "zhang", "--role", "agent", "--password-stdin"], "onlyletterslong\n", "letters and digits"),
    (["users", "add", "zhang", "--role", "unit_handler"], None, "needs --unit"),
    (["users", "add", "bad name", "--role", "agent"], None, "username"),
])
async def test_users_add_refuses_bad_requests_in_plain_words(db, args, stdin, message):
    result = govchat(db.url, *args, stdin=stdin)
    assert result.returncode == 2 and message in result.stderr
    async with db.session() as session:
        assert await session.scalar(select(User)) is None


async def test_kb_import_rejects_a_bad_file_whole(db, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,question,similar_questions,answer,category,unit\nX-1,问题,,,社保,人社局\n",
                   encoding="utf-8")
    result = govchat(db.url, "kb", "import", str(bad), "--publish")
    assert result.returncode == 2
    assert "nothing was imported" in result.stderr and "row 2, column answer: empty" in result.stderr


def test_backup_and_restore_from_the_command_line(db_url, tmp_path):
    file = tmp_path / "govchat.backup"
    made = govchat(db_url, "backup", str(file))
    assert made.returncode == 0, made.stderr
    assert "Backed up" in made.stdout and file.stat().st_size > 0
    refused = govchat(db_url, "restore", str(tmp_path / "missing"))
    assert refused.returncode == 1 and "no backup file" in refused.stderr


def test_a_bad_database_url_is_a_clear_configuration_error():
    result = govchat("mysql://x", "db", "upgrade")
    assert result.returncode == 2 and "DATABASE_URL must start with" in result.stderr


async def test_setup_loads_the_demo_once_and_creates_one_admin(db, tmp_path):
    first = govchat(db.url, "setup", "--no-train", GOVCHAT_VAR_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "Q&A entries" in first.stdout and first.stdout.count("password:") == 1
    second = govchat(db.url, "setup", "--no-train", GOVCHAT_VAR_DIR=str(tmp_path))
    assert second.returncode == 0 and "password" not in second.stdout and "Loaded" not in second.stdout
    async with db.session() as session:
        admins = (await session.scalars(select(User).where(User.role == "admin"))).all()
    assert [a.username for a in admins] == ["admin"] and admins[0].must_change_password


async def test_kb_export_round_trips_an_import_exactly(db, tmp_path):
    from knowledge_base.api import DEMO_QA, read_table

    assert govchat(db.url, "kb", "import", str(DEMO_QA), "--publish").returncode == 0
    exported = tmp_path / "out.csv"
    result = govchat(db.url, "kb", "export", str(exported))
    assert result.returncode == 0 and f"Exported {len(read_table(DEMO_QA))} entries" in result.stdout
    assert exported.read_bytes() == DEMO_QA.read_bytes()


async def test_kb_import_of_an_xlsx_publishes_approved_by_the_importer_and_audits(db, tmp_path):
    from knowledge_base.api import Row, write_table
    from knowledge_base.models import Version

    sheet = tmp_path / "qa.xlsx"
    write_table(sheet, [Row("X-1", "问题一", (), "答案一", "社保", "人社局"),
                        Row("X-2", "问题二", ("说法",), "答案二", "", "")])
    result = govchat(db.url, "kb", "import", str(sheet), "--publish")
    assert result.returncode == 0, result.stderr
    assert "Imported 2 entries and published them" in result.stdout
    async with db.session() as session:
        versions = (await session.scalars(select(Version).order_by(Version.id))).all()
        audits = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "kb.import"))).all()
    assert [(v.status, v.reviewer) for v in versions] == [("published", "cli"), ("published", "cli")]
    assert [(a.actor, a.target, a.detail) for a in audits] == [
        ("cli", str(sheet), {"entries": 2, "published": True})]
    exported = tmp_path / "out.xlsx"
    assert govchat(db.url, "kb", "export", str(exported)).returncode == 0
    assert [c.value for c in load_workbook(exported).worksheets[0]["A"]] == ["id", "X-1", "X-2"]


@pytest.mark.parametrize("command", ["import", "export"])
async def test_kb_import_and_export_refuse_other_file_kinds(db, tmp_path, command):
    path = tmp_path / "qa.xls"
    path.write_text("id\n")
    result = govchat(db.url, "kb", command, str(path))
    assert result.returncode == 2 and "must be .csv or .xlsx, not .xls" in result.stderr


async def test_kb_gaps_groups_unanswered_questions_biggest_first(db):
    import json

    from knowledge_base.api import DEMO_QA
    from knowledge_base.models import ABANDONED, ANSWERED, UNANSWERED, Query

    assert govchat(db.url, "kb", "import", str(DEMO_QA), "--publish").returncode == 0
    asked = ["宠物狗办证在哪里办", "宠物狗办证去哪里", "养狗办证在哪里办理", "宠物狗办证在哪里办",
             "垃圾分类积分怎么兑换"]
    async with db.session() as session, session.begin():
        for i, query in enumerate(asked):
            # A clarification the citizen walked away from is a gap too.
            session.add(Query(text=query, outcome=ABANDONED if i == 2 else UNANSWERED))
        session.add(Query(text="社保卡丢了怎么补办", outcome=ANSWERED, entry_id="SB-001"))
    result = govchat(db.url, "kb", "gaps", "--json", GOVCHAT_EMBEDDER="none")
    assert result.returncode == 0, result.stderr
    gaps = [json.loads(line) for line in result.stdout.splitlines()]
    assert [g["count"] for g in gaps] == [4, 1]
    assert gaps[0]["examples"][0] == "宠物狗办证在哪里办"
    assert set(gaps[0]["examples"]) <= set(asked[:4]) and gaps[1]["examples"] == ["垃圾分类积分怎么兑换"]
    assert all("nearest_id" in g for g in gaps)


async def test_kb_hits_prints_answers_and_votes_per_entry_and_period(db):
    import json
    from datetime import datetime, timedelta, timezone

    from bot.models import Conversation, Message
    from knowledge_base import api as kb
    from knowledge_base import curation
    from knowledge_base.models import ANSWERED, CHOSEN, UNANSWERED, Query

    at = datetime.now(timezone.utc) - timedelta(hours=1)
    async with db.session() as session, session.begin():
        await kb.import_rows(session, [kb.Row("SB-001", "社保卡丢了怎么补办？", (), "先挂失。", "社保", "")],
                             actor="test", publish=True)
        for outcome, entry_id in [(ANSWERED, "SB-001"), (CHOSEN, "SB-001"), (ANSWERED, "GJJ-001"),
                                  (UNANSWERED, None)]:
            session.add(Query(text="问", outcome=outcome, entry_id=entry_id, at=at))
        session.add(Query(text="问", outcome=ANSWERED, entry_id="HJ-005", at=at - timedelta(days=40)))
        conv = Conversation(channel="webchat", sender="web-1")
        session.add(conv)
        await session.flush()
        reply = Message(conversation_id=conv.id, channel="webchat", direction="out", source="bot",
                        kind="answer", text="先挂失。", source_ref="qa:SB-001@1")
        session.add(reply)
        await session.flush()
        await curation.record_feedback(session, reply.id, True, at=at)

    result = govchat(db.url, "kb", "hits", "--period", "day")
    assert result.returncode == 0, result.stderr
    day = curation.period_label(at, "day")
    assert result.stdout.splitlines() == [
        "entry    period      answered    👍    👎",
        f"SB-001   {day}         2     1     0",
        f"GJJ-001  {day}         1     0     0",
    ]
    result = govchat(db.url, "kb", "hits", "--period", "quarter", "--days", "60", "--json")
    assert result.returncode == 0, result.stderr
    quarters = [curation.period_label(at - timedelta(days=40), "quarter"), curation.period_label(at, "quarter")]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["entry_id"], r["period"], r["answered"], r["up"], r["down"]) for r in rows} == {
        ("SB-001", quarters[1], 2, 1, 0), ("GJJ-001", quarters[1], 1, 0, 0), ("HJ-005", quarters[0], 1, 0, 0)}
    result = govchat(db.url, "kb", "hits", "--period", "year")
    assert result.returncode == 2 and "invalid choice" in result.stderr


async def test_report_alerts_lists_what_needs_attention(db):
    import json

    # An empty Q&A base: the staleness alert; 2030 has no statutory calendar data: urgent.
    shown = govchat(db.url, "report", "alerts", "--date", "2030-01-15", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    kinds = {a["kind"]: a for a in json.loads(shown.stdout)}
    assert kinds["kb_stale"]["message"] == "问答库尚无已发布的内容。"
    assert kinds["calendar_missing"]["level"] == "danger"
    table = govchat(db.url, "report", "alerts", "--date", "2030-01-15", "--check")
    assert table.returncode == 1 and "【紧急】" in table.stdout and "【提醒】问答库尚无已发布的内容。" in table.stdout
