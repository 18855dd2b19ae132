"""The case desks: 本单位办件, a case's page and its actions, and 分派中心 — through HTTP."""
from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select

from admin.models import AuditEntry
from casework import api as casework
from casework import lifecycle
from casework.models import Case, CaseAttachment, Category, Event, ExtensionRequest, Unit
from server.db import utcnow
from tests.admin.conftest import UNIT, add_user, login, signed_in

OTHER = "JH-ZJJ"
PHONE = "13812345678"


async def directory(db) -> None:
    async with db.session() as session, session.begin():
        for unit in (Unit(id="DISPATCH", name="分派中心", is_dispatcher=True),
                     Unit(id=UNIT, name="人社局"), Unit(id=OTHER, name="住建局")):
            await session.merge(unit)


async def a_case(db, unit_id: str | None, *, status: str = "dispatched", seq: int = 1,
                 description: str = f"楼下饭店油烟太大，联系我 {PHONE}，身份证330102199001011234",
                 phone: str | None = PHONE, anonymous: bool = False, deadline: date | None = None,
                 confidence: float | None = None, **fields) -> Case:
    """A case as intake and dispatch leave it (inserted directly: the pages are under test)."""
    await directory(db)
    now = utcnow()
    async with db.session() as session, session.begin():
        category = await session.scalar(select(Category).where(Category.name == "餐饮油烟"))
        if category is None:
            category = Category(name="餐饮油烟", level=1)
            session.add(category)
            await session.flush()
        case = Case(number=casework.case_number(date(2026, 11, 27), seq), day=date(2026, 11, 27),
                    seq=seq, case_type="complaint", description=description, status=status,
                    unit_id=unit_id, created_at=now - timedelta(hours=seq), phone=phone,
                    anonymous=anonymous, category_id=category.id, address="南湖区幸福路1号",
                    occurred="每天晚上", route_confidence=confidence,
                    deadline=deadline or now.date() + timedelta(days=20),
                    dispatched_at=now if status != "submitted" else None, **fields)
        session.add(case)
    return case


async def audits(db, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


async def case_named(db, number: str) -> Case:
    async with db.session() as session:
        return await casework.find_case(session, number)


async def test_a_unit_handler_sees_only_their_units_cases_with_numbers_masked(make_client, db):
    mine = await a_case(db, UNIT, seq=1, deadline=utcnow().date() - timedelta(days=1))
    theirs = await a_case(db, OTHER, seq=2, description="别的单位的事")
    client, _ = await signed_in(make_client, db, "zhao", "unit_handler")
    page = await (await client.get("/admin/cases")).text()
    assert mine.number in page and theirs.number not in page and "别的单位的事" not in page
    assert PHONE not in page and "138****5678" in page
    assert "330102199001011234" not in page and "330102********1234" in page
    assert "已派单" in page and 'class="overdue"' in page and "已超期" in page
    # Another unit in the query string changes nothing for a unit handler.
    assert theirs.number not in await (await client.get(f"/admin/cases?unit={OTHER}")).text()


async def test_a_dispatcher_filters_by_unit_status_and_overdue(make_client, db):
    late = await a_case(db, UNIT, seq=1, deadline=utcnow().date() - timedelta(days=3))
    other = await a_case(db, OTHER, seq=2, status="in_progress")
    client, _ = await signed_in(make_client, db, "fen", "dispatcher")
    page = await (await client.get("/admin/cases")).text()
    assert late.number in page and other.number in page
    assert page.index(late.number) < page.index(other.number)           # most urgent first
    page = await (await client.get(f"/admin/cases?unit={OTHER}")).text()
    assert late.number not in page and other.number in page
    page = await (await client.get("/admin/cases?overdue=1")).text()
    assert late.number in page and other.number not in page
    page = await (await client.get("/admin/cases?status=in_progress")).text()
    assert late.number not in page and other.number in page


async def test_another_units_case_is_refused_by_url_for_every_case_route(make_client, db):
    theirs = await a_case(db, OTHER)
    async with db.session() as session, session.begin():
        session.add(CaseAttachment(case_id=theirs.id, kind="image", stored_path="1/1.jpg",
                                   content_type="image/jpeg"))
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")
    base = f"/admin/cases/{theirs.number}"
    resp = await client.get(base)
    assert resp.status == 403 and "别的" not in await resp.text() and PHONE[-4:] not in await resp.text()
    assert (await client.get(base + "/evidence/1")).status == 403
    for action in ("unmask", "accept", "return", "extend", "reply", "close"):
        resp = await client.post(f"{base}/{action}", data={"_csrf": csrf, "reason": "x",
                                                          "text": "x", "days": "3"})
        assert resp.status == 403, action
    case = await case_named(db, theirs.number)
    assert case.status == "dispatched" and case.unit_id == OTHER
    assert await audits(db, "case.unmask") == [] and await audits(db, "case.accept") == []


async def test_accept_reply_and_return_through_the_forms_are_audited(make_client, db):
    first = await a_case(db, UNIT, seq=1)
    second = await a_case(db, UNIT, seq=2)
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")

    resp = await client.post(f"/admin/cases/{first.number}/accept", data={"_csrf": csrf},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/admin/cases/{first.number}"
    page = await (await client.get(resp.headers["Location"])).text()
    assert "已签收" in page and "办理中" in page and "将发送给群众" in page

    # A reply without text is refused in Chinese, and nothing changes.
    resp = await client.post(f"/admin/cases/{first.number}/reply", data={"_csrf": csrf, "text": " "})
    assert resp.status == 400 and "请填写答复内容" in await resp.text()
    assert (await case_named(db, first.number)).status == "in_progress"

    resp = await client.post(f"/admin/cases/{first.number}/reply",
                             data={"_csrf": csrf, "text": "已责令饭店加装油烟净化器。"})
    assert resp.status == 200 and "答复已发送给群众" in await resp.text()
    case = await case_named(db, first.number)
    assert case.status == "replied" and case.reply_text == "已责令饭店加装油烟净化器。"

    resp = await client.post(f"/admin/cases/{second.number}/return", data={"_csrf": csrf, "reason": ""})
    assert resp.status == 400 and "请填写退回理由" in await resp.text()
    resp = await client.post(f"/admin/cases/{second.number}/return",
                             data={"_csrf": csrf, "reason": "属住建局职责"})
    assert resp.status == 200
    assert (await case_named(db, second.number)).status == "returned"

    [accepted] = await audits(db, "case.accept")
    assert (accepted.actor, accepted.target) == ("zhao", first.number)
    assert accepted.detail["before"] == {"status": "dispatched"}
    assert accepted.detail["after"] == {"status": "in_progress"}
    [replied] = await audits(db, "case.reply")
    assert replied.detail["after"] == {"status": "replied"}
    [returned] = await audits(db, "case.return")
    assert returned.detail["reason"] == "属住建局职责"
    async with db.session() as session:
        names = [e.name for e in await lifecycle.trail(session, first.id)]
    assert names == ["case_accepted", "case_replied"]


async def test_a_refused_step_shows_the_page_again_and_changes_nothing(make_client, db):
    case = await a_case(db, UNIT)
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")
    resp = await client.post(f"/admin/cases/{case.number}/reply", data={"_csrf": csrf, "text": "好"})
    page = await resp.text()
    assert resp.status == 409 and "操作未完成" in page and case.number in page
    assert (await case_named(db, case.number)).status == "dispatched"
    assert await audits(db, "case.reply") == []


async def test_a_form_without_csrf_is_refused(make_client, db):
    case = await a_case(db, UNIT)
    client, _ = await signed_in(make_client, db, "zhao", "unit_handler")
    resp = await client.post(f"/admin/cases/{case.number}/accept", data={})
    assert resp.status == 403
    resp = await client.post(f"/admin/cases/{case.number}/accept", data={"_csrf": "forged"})
    assert resp.status == 403
    assert (await case_named(db, case.number)).status == "dispatched"


async def test_unmasking_shows_the_number_once_and_is_audited(make_client, db):
    case = await a_case(db, UNIT)
    hidden = await a_case(db, UNIT, seq=2, anonymous=True, phone="13900001111")
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")
    page = await (await client.get(f"/admin/cases/{case.number}")).text()
    assert PHONE not in page and "138****5678" in page and "显示完整号码" in page
    resp = await client.post(f"/admin/cases/{case.number}/unmask", data={"_csrf": csrf})
    assert resp.status == 200 and PHONE in await resp.text()
    [entry] = await audits(db, "case.unmask")
    assert (entry.actor, entry.target) == ("zhao", case.number)
    # The description stays masked, and the next view is masked again.
    assert PHONE not in (await (await client.get(f"/admin/cases/{case.number}")).text())

    page = await (await client.get(f"/admin/cases/{hidden.number}")).text()
    assert "匿名" in page and "1111" not in page and "显示完整号码" not in page
    resp = await client.post(f"/admin/cases/{hidden.number}/unmask", data={"_csrf": csrf})
    assert resp.status == 403 and "13900001111" not in await resp.text()
    assert len(await audits(db, "case.unmask")) == 1


async def test_admins_may_read_a_case_but_not_unmask_it(make_client, db):
    case = await a_case(db, UNIT)
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    page = await (await client.get(f"/admin/cases/{case.number}")).text()
    assert "138****5678" in page and "显示完整号码" not in page
    assert (await client.post(f"/admin/cases/{case.number}/unmask", data={"_csrf": csrf})).status == 403


async def evidence_of(db, case: Case, var_dir) -> tuple[CaseAttachment, ...]:
    """(kept under var_dir/media, lost, still waiting, a stored path escaping media/)."""
    (var_dir / "media" / str(case.id)).mkdir(parents=True)
    (var_dir / "media" / str(case.id) / "1.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    async with db.session() as session, session.begin():
        files = (CaseAttachment(case_id=case.id, kind="image", media_id="m1",
                                stored_path=f"{case.id}/1.png", content_type="image/png", size=12),
                 CaseAttachment(case_id=case.id, kind="image", media_id="m2", fetch_attempts=5,
                                fetch_error="media expired"),
                 CaseAttachment(case_id=case.id, kind="video", media_id="m3", fetch_attempts=1),
                 CaseAttachment(case_id=case.id, kind="image", stored_path="../../etc/passwd",
                                content_type="image/png"))
        session.add_all(files)
    return files


async def test_kept_evidence_is_served_with_its_type_and_missing_files_show_their_state(
        make_client, db, tmp_path):
    case = await a_case(db, UNIT)
    kept, lost, _, escape = await evidence_of(db, case, tmp_path)
    await add_user(db, "zhao", "unit_handler")
    client = await make_client(var_dir=tmp_path)
    assert (await login(client, "zhao")).status == 303
    page = await (await client.get(f"/admin/cases/{case.number}")).text()
    assert f"/admin/cases/{case.number}/evidence/{kept.id}" in page
    assert "media expired" in page and "尚未取回" in page
    resp = await client.get(f"/admin/cases/{case.number}/evidence/{kept.id}")
    assert resp.status == 200 and resp.content_type == "image/png"
    assert await resp.read() == b"\x89PNG\r\n\x1a\nfake"
    assert (await client.get(f"/admin/cases/{case.number}/evidence/{lost.id}")).status == 404
    assert (await client.get(f"/admin/cases/{case.number}/evidence/{escape.id}")).status == 404


async def test_the_dispatcher_desk_lists_its_queues_and_reassigns(make_client, db):
    new = await a_case(db, "DISPATCH", status="submitted", seq=1, confidence=None)
    unsure = await a_case(db, "DISPATCH", status="submitted", seq=2, confidence=0.05)
    back = await a_case(db, UNIT, seq=3)
    working = await a_case(db, UNIT, seq=4, status="in_progress")
    late = await a_case(db, OTHER, seq=5, status="in_progress", escalated_at=utcnow(),
                        deadline=utcnow().date() - timedelta(days=2))
    now = utcnow()
    await lifecycle.return_misrouted(db, back.number, unit_id=UNIT, reason="不是人社局的事",
                                     actor="zhao", now=now)
    await lifecycle.request_extension(db, working.number, unit_id=UNIT, days=5,
                                      reason="需要现场检测", actor="zhao", now=now)
    client, csrf = await signed_in(make_client, db, "fen", "dispatcher")
    page = await (await client.get("/admin/dispatch")).text()

    def queue(key: str) -> str:
        return re.search(rf'<section id="queue-{key}">(.*?)</section>', page, re.S).group(1)

    assert new.number in queue("submitted") and unsure.number not in queue("submitted")
    assert unsure.number in queue("low")
    assert back.number in queue("returned") and "不是人社局的事" in queue("returned")
    assert late.number in queue("escalated")
    assert working.number in queue("extensions") and "需要现场检测" in queue("extensions")

    # A returned case needs a reason and cannot go back to the unit that returned it.
    resp = await client.post(f"/admin/cases/{back.number}/reassign",
                             data={"_csrf": csrf, "unit_id": OTHER, "reason": "", "back": "dispatch"})
    assert "操作未完成" in await resp.text()
    resp = await client.post(f"/admin/cases/{back.number}/reassign", allow_redirects=False,
                             data={"_csrf": csrf, "unit_id": OTHER, "reason": "属住建局",
                                   "back": "dispatch"})
    assert resp.status == 303 and resp.headers["Location"] == "/admin/dispatch"
    case = await case_named(db, back.number)
    assert (case.status, case.unit_id) == ("dispatched", OTHER)
    [entry] = await audits(db, "case.dispatch")
    assert entry.detail["unit_id"] == OTHER and entry.detail["reason"] == "属住建局"

    before = (await case_named(db, working.number)).deadline
    resp = await client.post(f"/admin/cases/{working.number}/approve",
                             data={"_csrf": csrf, "back": "dispatch"})
    assert "已批准延期" in await resp.text()
    assert (await case_named(db, working.number)).deadline > before
    async with db.session() as session:
        request = await session.scalar(select(ExtensionRequest))
        assert (request.status, request.decided_by) == ("approved", "fen")
        assert await session.scalar(select(Event.name).where(
            Event.case_id == working.id).order_by(Event.id.desc()).limit(1)) == "case_extension_approved"
    assert len(await audits(db, "case.extension_approve")) == 1


async def test_a_unit_handler_cannot_open_the_dispatcher_desk(make_client, db):
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")
    assert (await client.get("/admin/dispatch")).status == 403
    case = await a_case(db, UNIT, status="submitted")
    resp = await client.post(f"/admin/cases/{case.number}/reassign",
                             data={"_csrf": csrf, "unit_id": UNIT})
    assert resp.status == 403
