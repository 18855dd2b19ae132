"""The quarterly spot check: a reproducible sample, each item's trail, findings and the export."""
from __future__ import annotations

import io
from datetime import date, datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from admin.models import AuditEntry
from bot.models import Conversation, Message
from casework import events, spotcheck
from casework.models import Case, CaseAttachment, SpotCheckItem, Unit
from casework.spotcheck import SpotCheckError
from casework.spotcheck_export import export
from server.db import CHINA

PHONE = "13812345678"


def china(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


async def add_case(session, seq: int, unit_id: str | None, at: datetime, **fields) -> Case:
    case = Case(number=f"ZJ{china_day(at):%Y%m%d}-{seq:04d}", day=china_day(at), seq=seq,
                case_type="complaint", description=f"油烟扰民，电话{PHONE}", status="dispatched",
                unit_id=unit_id, created_at=at, phone=PHONE, **fields)
    session.add(case)
    await session.flush()
    return case


def china_day(at: datetime) -> date:
    return at.astimezone(CHINA).date()


async def add_conversation(session, channel: str, account: str, *times: datetime) -> Conversation:
    conv = Conversation(channel=channel, account=account, sender=f"o-{channel}-{times[0]:%m%d%H%M%S}",
                        created_at=times[0], last_message_at=times[-1])
    session.add(conv)
    await session.flush()
    for at in times:
        session.add(Message(conversation_id=conv.id, channel=channel, account=account,
                            direction="in", source="citizen", text="请问社保怎么办", created_at=at))
    await session.flush()
    return conv


@pytest.fixture
async def world(db):
    """Q3 2026: 7 cases for 人社局, 2 for 住建局, 1 for 城管局 on the last evening (and one just
    after midnight, in Q4); 6 web chats and 1 WeChat conversation, and one chat from Q2 only."""
    async with db.session() as session, session.begin():
        for uid, name in (("JH-RSJ", "人社局"), ("JH-ZJJ", "住建局"), ("JH-CGJ", "城管局")):
            session.add(Unit(id=uid, name=name))
        await session.flush()
        for i in range(7):
            await add_case(session, i + 1, "JH-RSJ", china(2026, 7, 3 + i, 10))
        for i in range(2):
            await add_case(session, 20 + i, "JH-ZJJ", china(2026, 8, 3 + i, 10))
        await add_case(session, 30, "JH-CGJ", china(2026, 9, 30, 23, 30))
        await add_case(session, 31, "JH-CGJ", china(2026, 10, 1, 0, 10))
        for i in range(6):
            await add_conversation(session, "webchat", "", china(2026, 7, 10 + i, 9))
        await add_conversation(session, "wechat", "default", china(2026, 9, 1, 9))
        await add_conversation(session, "webchat", "", china(2026, 6, 30, 23, 0))
    return db


async def drawn(db, quarter="2026Q3", per_unit=3, seed=None) -> tuple[int, int, dict]:
    async with db.session() as session, session.begin():
        check = await spotcheck.draw(session, quarter, per_unit, seed, actor="inspector")
        check_id, stored_seed = check.id, check.seed
    async with db.session() as session:
        items = list(await session.scalars(select(SpotCheckItem).where(
            SpotCheckItem.spot_check_id == check_id)))
        numbers = {c.id: (c.number, c.unit_id) for c in await session.scalars(select(Case))}
        convs = {c.id: f"{c.channel}/{c.account}" for c in await session.scalars(select(Conversation))}
    groups: dict[str, set] = {}
    for item in items:
        if item.kind == "case":
            number, unit_id = numbers[item.case_id]
            assert item.unit_id == unit_id
            groups.setdefault(unit_id, set()).add(number)
        else:
            groups.setdefault(convs[item.conversation_id], set()).add(item.conversation_id)
    return check_id, stored_seed, groups


def test_quarter_bounds_are_china_dates():
    assert spotcheck.quarter_bounds("2026Q3") == (date(2026, 7, 1), date(2026, 9, 30))
    assert spotcheck.quarter_bounds("2026q4") == (date(2026, 10, 1), date(2026, 12, 31))
    assert spotcheck.quarter_bounds("2027Q1") == (date(2027, 1, 1), date(2027, 3, 31))
    with pytest.raises(SpotCheckError):
        spotcheck.quarter_bounds("2026-09")


async def test_the_same_seed_draws_the_same_sample_and_other_seeds_differ(world):
    _, seed, first = await drawn(world, seed=42)
    _, _, again = await drawn(world, seed=42)
    assert seed == 42 and first == again
    samples = [str(sorted((k, sorted(v)) for k, v in (await drawn(world, seed=s))[2].items()))
               for s in (1, 2, 3, 4, 5)]
    assert len(set(samples)) > 1


async def test_n_per_unit_and_all_of_a_smaller_group(world):
    _, _, groups = await drawn(world, per_unit=3, seed=7)
    assert {k: len(v) for k, v in groups.items()} == {
        "JH-RSJ": 3, "JH-ZJJ": 2, "JH-CGJ": 1, "webchat/": 3, "wechat/default": 1}


async def test_the_quarter_ends_at_midnight_china_time(world):
    _, _, q3 = await drawn(world, "2026Q3", seed=1)
    _, _, q4 = await drawn(world, "2026Q4", seed=1)
    assert q3["JH-CGJ"] == {"ZJ20260930-0030"}          # 23:30 on 30 September (15:30 UTC)
    assert q4["JH-CGJ"] == {"ZJ20261001-0031"}          # 00:10 on 1 October (16:10 UTC, 30 Sep)
    assert set(q4) == {"JH-CGJ"}                         # nothing else happened in Q4


async def test_a_seed_is_generated_stored_and_the_draw_audited(world):
    check_id, seed, _ = await drawn(world, seed=None)
    async with world.session() as session:
        check = await spotcheck.get_check(session, check_id)
        row = await session.scalar(select(AuditEntry).where(AuditEntry.action == "spotcheck.draw"))
        listed = await spotcheck.list_checks(session)
    assert check.seed == seed and 0 <= seed < 2**31 and check.created_by == "inspector"
    assert row.target == f"spotcheck:{check_id}" and row.detail["seed"] == seed
    assert row.detail["cases"] == 3 + 2 + 1 and row.detail["conversations"] == 3 + 1
    assert (listed[0].total, listed[0].checked) == (10, 0)


async def test_a_bad_request_is_refused(world):
    async with world.session() as session:
        for quarter, per_unit, seed in (("2026Q5", 3, None), ("2026Q3", 0, None), ("2026Q3", 3, -1)):
            with pytest.raises(SpotCheckError):
                await spotcheck.draw(session, quarter, per_unit, seed, actor="x")


async def test_a_case_trail_has_its_events_in_order_messages_and_masked_numbers(db):
    async with db.session() as session, session.begin():
        session.add(Unit(id="JH-RSJ", name="人社局"))
        conv = await add_conversation(session, "wechat", "default", china(2026, 8, 1, 9, 0))
        case = await add_case(session, 1, "JH-RSJ", china(2026, 8, 1, 9, 5), conversation_id=conv.id,
                              address="幸福路1号")
        for name, minutes, actor, detail in (
                (events.CASE_SUBMITTED, 5, None, {}),
                (events.CASE_DISPATCHED, 30, "fen", {"unit_id": "JH-RSJ", "reason": "油烟"}),
                (events.CASE_ACCEPTED, 60, "zhao", {}),
                (events.CASE_REPLIED, 120, "zhao", {})):
            events.record(session, name, at=china(2026, 8, 1, 9) + timedelta(minutes=minutes),
                          case_id=case.id, actor=actor, **detail)
        session.add(CaseAttachment(case_id=case.id, kind="image", media_id="m1",
                                   created_at=china(2026, 8, 1, 9, 4)))
        session.add(Message(conversation_id=conv.id, channel="wechat", account="default",
                            direction="out", source="bot", text=f"已记录您的电话{PHONE}",
                            created_at=china(2026, 8, 1, 9, 5, 1)))
        check = await spotcheck.draw(session, "2026Q3", 1, 1, actor="inspector")
        await session.flush()
        item = await session.scalar(select(SpotCheckItem).where(
            SpotCheckItem.spot_check_id == check.id, SpotCheckItem.kind == "case"))
        found = await spotcheck.trail(session, item)
        chat = await spotcheck.trail(session, await session.scalar(select(SpotCheckItem).where(
            SpotCheckItem.spot_check_id == check.id, SpotCheckItem.kind == "conversation")))
    facts = dict(found.facts)
    assert found.title == f"办件 {case.number}" and facts["联系电话"] == "138****5678"
    assert facts["承办单位"] == "人社局 (JH-RSJ)" and "138****5678" in facts["诉求内容"]
    assert [(line.what, line.text.split("，")[0]) for line in found.lines] == [
        ("消息", "请问社保怎么办"), ("附件", "图片"), ("事件", "受理"), ("消息", "已记录您的电话138****5678"),
        ("事件", "派单"), ("事件", "签收"), ("事件", "答复")]
    dispatched = found.lines[4]
    assert dispatched.who == "fen" and "单位 JH-RSJ" in dispatched.text and "理由 油烟" in dispatched.text
    assert all(PHONE not in f"{line.text}{line.who}" for line in found.lines)
    assert chat.title == f"会话 #{conv.id}" and dict(chat.facts)["本季度办件"] == case.number
    assert [line.who for line in chat.lines] == ["群众（收）", "机器人（发）"]


async def test_a_finding_is_recorded_replaced_and_audited(world):
    check_id, _, _ = await drawn(world, seed=3)
    async with world.session() as session, session.begin():
        item = await session.scalar(select(SpotCheckItem).where(SpotCheckItem.spot_check_id == check_id)
                                    .order_by(SpotCheckItem.id))
        with pytest.raises(SpotCheckError, match="a problem needs a comment"):
            await spotcheck.record_finding(session, item.id, "problem", "  ", actor="inspector")
        with pytest.raises(SpotCheckError):
            await spotcheck.record_finding(session, item.id, "maybe", "", actor="inspector")
        await spotcheck.record_finding(session, item.id, "ok", "", actor="inspector")
        await spotcheck.record_finding(session, item.id, "problem", "答复未说明依据", actor="boss")
    async with world.session() as session:
        item = await session.get(SpotCheckItem, item.id)
        rows = list(await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "spotcheck.finding").order_by(AuditEntry.id)))
        listed = (await spotcheck.list_checks(session))[0]
    assert (item.finding, item.comment, item.checked_by) == ("problem", "答复未说明依据", "boss")
    assert item.checked_at is not None
    assert [r.detail["before"]["finding"] for r in rows] == [None, "ok"]
    assert rows[-1].detail["after"] == {"finding": "problem", "comment": "答复未说明依据"}
    assert rows[-1].target == f"spotcheck:{check_id}/item:{item.id}"
    assert (listed.total, listed.checked, listed.problems) == (10, 1, 1)


async def test_the_xlsx_and_csv_exports_hold_the_items_and_their_trails(world):
    check_id, seed, groups = await drawn(world, seed=9)
    async with world.session() as session, session.begin():
        case = await session.scalar(select(Case).where(Case.number.in_(groups["JH-ZJJ"]))
                                    .order_by(Case.id))
        events.record(session, events.CASE_DISPATCHED, at=case.created_at + timedelta(hours=1),
                      case_id=case.id, actor="fen", unit_id="JH-ZJJ", reason="=cmd|' /C calc'!A0")
        item = await session.scalar(select(SpotCheckItem).where(SpotCheckItem.case_id == case.id,
                                                                SpotCheckItem.spot_check_id == check_id))
        await spotcheck.record_finding(session, item.id, "ok", "", actor="inspector")
    async with world.session() as session, session.begin():
        data = await export(session, check_id, "xlsx", actor="inspector")
        text = (await export(session, check_id, "csv", actor="inspector")).decode("utf-8")
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["抽查清单", "记录"]
    listing, lines = book["抽查清单"], book["记录"]
    header = [c.value for c in listing[1]]
    assert header[:4] == ["序号", "单位/渠道", "类别", "编号"] and "检查结论" in header
    assert listing[1][0].font.bold and listing.freeze_panes == "A2"
    assert listing[1][0].fill.fgColor.rgb.endswith("DDE6F0")
    assert listing.max_row == 1 + 10
    rows = [[c.value for c in r] for r in listing.iter_rows(min_row=2)]
    mine = next(r for r in rows if r[3] == case.number)
    assert mine[1] == "住建局 (JH-ZJJ)" and mine[2] == "办件" and mine[7] == "合格"
    assert mine[5] == case.created_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
    trail_rows = [[c.value for c in r] for r in lines.iter_rows(min_row=2)]
    dispatched = next(r for r in trail_rows if r[2] == case.number and r[4] == "事件")
    assert dispatched[5] == "fen" and dispatched[6].startswith("派单，单位 JH-ZJJ")
    assert lines.cell(row=trail_rows.index(dispatched) + 2, column=7).data_type == "s"
    assert all(PHONE not in str(v) for r in trail_rows + rows for v in r)
    assert text.startswith("\ufeff序号,单位/渠道") and case.number in text and PHONE not in text
    async with world.session() as session:
        audited = list(await session.scalars(select(AuditEntry).where(
            AuditEntry.action == "spotcheck.export")))
    assert sorted(a.detail["format"] for a in audited) == ["csv", "xlsx"]


async def test_the_command_line_draws_prints_the_seed_lists_and_exports(world, monkeypatch, capsys,
                                                                        tmp_path):
    import asyncio

    from server.cli import main

    monkeypatch.setenv("DATABASE_URL", world.url)

    async def govchat(*args) -> int:   # main() runs its own event loop
        return await asyncio.to_thread(main, list(args))

    assert await govchat("spotcheck", "draw", "--quarter", "2026Q3", "--per-unit", "2") == 0
    out = capsys.readouterr().out
    seed = int(out.split("seed: ")[1].split()[0])
    assert "2026Q3 (2026-07-01 to 2026-09-30), 8 items" in out
    assert await govchat("spotcheck", "draw", "--quarter", "2026Q3", "--per-unit", "2",
                         "--seed", str(seed), "--as", "inspector") == 0
    assert f"seed: {seed}" in capsys.readouterr().out
    async with world.session() as session:
        first, second = [sorted((i.kind, i.case_id, i.conversation_id) for i in items) for items in [
            list(await session.scalars(select(SpotCheckItem).where(SpotCheckItem.spot_check_id == c.id)))
            for c in sorted((r.check for r in await spotcheck.list_checks(session)), key=lambda c: c.id)]]
    assert first == second
    assert await govchat("spotcheck", "list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 3 and f"{seed:>10}" in listed[1] and "0/8" in listed[1]
    out_file = tmp_path / "q3.xlsx"
    assert await govchat("spotcheck", "export", listed[1].split()[0],
                         "--out", str(out_file)) == 0
    assert load_workbook(out_file).sheetnames == ["抽查清单", "记录"]
    assert await govchat("spotcheck", "draw", "--quarter", "Q3", "--per-unit", "2") == 2
    assert await govchat("spotcheck", "export", "1", "--out", str(tmp_path / "x.pdf")) == 2
    assert "quarter must look like 2026Q3" in capsys.readouterr().err
