"""Hostile text in the console forms (Q&A entry edit, inbox reply, case reply, unit and category
names): stored exactly as typed, shown escaped on the page, overlong refused with a plain message,
characters no database can hold refused at the door — never a 500 (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from markupsafe import escape
from sqlalchemy import select

from bot.models import Message
from casework.models import Category, Unit
from knowledge_base import workflow
from tests.admin.conftest import signed_in
from tests.admin.test_case_pages import a_case, case_named
from tests.admin.test_inbox import handed_off, site, staff  # noqa: F401 (fixtures)
from tests.admin.test_kb_pages import as_user, kb_app, row, seed
from tests.fuzzing import PAYLOADS

# What a browser sends from a form: no bare "\r" (it posts "\r\n" as typed, which we keep).
FORM_PAYLOADS = [p for p in PAYLOADS if "\r" not in p]
UNSTORABLE = ["社保\x00卡", "\x00"]     # PostgreSQL text cannot hold NUL
REFUSED_WORDS = "无法保存的字符"


def shown(html: str, text: str) -> None:
    """`text` is on the page escaped, and its markup never raw."""
    assert str(escape(text)) in html, text
    for raw in ("<script>alert(1)</script>", "<img src=x", "<svg onload"):
        if raw in text:
            assert raw not in html, raw


@pytest.fixture
async def kb_site(db):
    from aiohttp.test_utils import TestClient, TestServer
    client = TestClient(TestServer(kb_app(db)))
    await client.start_server()
    yield client
    await client.close()


async def test_a_qa_entry_keeps_hostile_text_literally(kb_site, db):
    await seed(kb_site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。")])
    csrf = await as_user(kb_site, db, "agent.li", "agent")
    for n, payload in enumerate(FORM_PAYLOADS, start=2):
        resp = await kb_site.post("/admin/kb/SB-001/save", allow_redirects=False, data={
            "_csrf": csrf, "base": str(n - 1), "question": "问：" + payload, "answer": payload,
            "category": payload[:64], "unit": "社保中心", "similar_questions": payload})
        assert resp.status == 303, (payload, resp.status, await resp.text())
        async with db.session() as session:
            latest = (await workflow.versions(session, "SB-001"))[-1]
        assert (latest.number, latest.question, latest.answer) == (n, "问：" + payload.strip(),
                                                                   payload.strip())
        assert latest.category == payload[:64].strip()
        shown(await (await kb_site.get("/admin/kb/SB-001")).text(), payload.strip())


async def test_characters_no_database_holds_are_refused_at_the_door(kb_site, db):
    await seed(kb_site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。")])
    csrf = await as_user(kb_site, db, "agent.li", "agent")
    for bad in UNSTORABLE:
        resp = await kb_site.post("/admin/kb/SB-001/save", allow_redirects=False, data={
            "_csrf": csrf, "base": "1", "question": "问题", "answer": bad, "category": "社保"})
        assert resp.status == 400 and REFUSED_WORDS in await resp.text(), (bad, resp.status)
    async with db.session() as session:
        assert len(await workflow.versions(session, "SB-001")) == 1


async def test_an_inbox_reply_keeps_hostile_text_and_refuses_overlong(site, db, staff):  # noqa: F811
    conv_id = await handed_off(db, site, "web-hostile", *FORM_PAYLOADS[:3])
    agent = await staff("li.na")
    assert (await agent.post(f"/admin/inbox/{conv_id}/claim")).status == 303
    page = await (await agent.get(f"/admin/inbox/{conv_id}")).text()
    for citizen_said in FORM_PAYLOADS[:3]:
        shown(page, citizen_said.strip())
    for payload in FORM_PAYLOADS:
        resp = await agent.post(f"/admin/inbox/{conv_id}/reply", text=payload)
        assert resp.status == 303, (payload, resp.status, await resp.text())
    async with db.session() as session:
        sent = list(await session.scalars(select(Message.text).where(Message.source == "staff")
                                          .order_by(Message.id)))
    assert sent == [p.strip() for p in FORM_PAYLOADS]
    page = await (await agent.get(f"/admin/inbox/{conv_id}")).text()
    for payload in FORM_PAYLOADS:
        shown(page, payload.strip())
    # The citizen reads them back exactly (the web chat writes them with textContent).
    updates = await (await site.get("/api/chat/updates?sender=web-hostile&after=0")).json()
    assert [m["text"] for m in updates["messages"]] == [p.strip() for p in FORM_PAYLOADS]

    resp = await agent.post(f"/admin/inbox/{conv_id}/reply", text="长" * 2001)
    assert resp.status == 400 and "回复内容请在2000字以内" in await resp.text()
    for bad in UNSTORABLE:
        resp = await agent.post(f"/admin/inbox/{conv_id}/reply", text=bad)
        assert resp.status == 400 and REFUSED_WORDS in await resp.text(), bad
    async with db.session() as session:
        assert len(list(await session.scalars(select(Message.id).where(Message.source == "staff")))) \
            == len(FORM_PAYLOADS)


async def test_a_case_reply_keeps_hostile_text_literally(make_client, db):
    payloads = FORM_PAYLOADS[:8]
    cases = [await a_case(db, "JH-RSJ", status="in_progress", seq=n + 1) for n in range(len(payloads) + 1)]
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")
    for case, payload in zip(cases, payloads):
        resp = await client.post(f"/admin/cases/{case.number}/reply",
                                 data={"_csrf": csrf, "text": payload})
        assert resp.status == 200, (payload, resp.status)
        assert (await case_named(db, case.number)).reply_text == payload.strip()
        shown(await (await client.get(f"/admin/cases/{case.number}")).text(), payload.strip())
    last = cases[-1]
    for bad in UNSTORABLE:
        resp = await client.post(f"/admin/cases/{last.number}/reply", data={"_csrf": csrf, "text": bad})
        assert resp.status == 400 and REFUSED_WORDS in await resp.text(), bad
    assert (await case_named(db, last.number)).status == "in_progress"


async def test_unit_and_category_names_keep_hostile_text_and_refuse_overlong(make_client, db):
    client, csrf = await signed_in(make_client, db, "boss", "admin")

    async def post(path, **data):
        return await client.post(path, data={"_csrf": csrf, **data}, allow_redirects=False)

    for n, payload in enumerate(FORM_PAYLOADS):
        name = payload.strip()[:64]
        resp = await post("/admin/settings/categories", name=name, parent_id="")
        assert resp.status == 303, (name, resp.status, await resp.text())
        resp = await post("/admin/settings/units", id=f"U{n}", name=name, parent_id="", regions="",
                          duty_start="", duty_end="")
        assert resp.status == 303, (name, resp.status, await resp.text())
    async with db.session() as session:
        categories = set(await session.scalars(select(Category.name)))
        units = set(await session.scalars(select(Unit.name)))
    assert {p.strip()[:64] for p in FORM_PAYLOADS} <= categories
    assert {p.strip()[:64] for p in FORM_PAYLOADS} <= units
    for path in ("/admin/settings/categories", "/admin/settings/units"):
        html = await (await client.get(path)).text()
        for payload in FORM_PAYLOADS:
            shown(html, payload.strip()[:64])

    resp = await post("/admin/settings/categories", name="类" * 65, parent_id="")
    assert resp.status == 400 and "分类名称不能超过64个字符" in await resp.text()
    resp = await post("/admin/settings/units", id="LONG", name="单" * 129, parent_id="", regions="",
                      duty_start="", duty_end="")
    assert resp.status == 400 and "单位名称不能超过128个字符" in await resp.text()
    for bad in UNSTORABLE:
        assert (await post("/admin/settings/categories", name=bad, parent_id="")).status == 400
        resp = await post("/admin/settings/units", id="BAD", name=bad, parent_id="", regions="",
                          duty_start="", duty_end="")
        assert resp.status == 400 and REFUSED_WORDS in await resp.text()
    async with db.session() as session:
        assert await session.get(Unit, "BAD") is None and await session.get(Unit, "LONG") is None
        assert len(set(await session.scalars(select(Category.name)))) == len(categories)


async def test_overlong_staff_text_is_refused_with_the_limit_never_cut(make_client, kb_site, db):
    """Case replies (4000) and Q&A fields (question 500, answer 5000, category 64, unit 128):
    too long is refused with the limit and the length, nothing stored, never a silent cut."""
    case = await a_case(db, "JH-RSJ", status="in_progress")
    client, csrf = await signed_in(make_client, db, "zhao", "unit_handler")
    resp = await client.post(f"/admin/cases/{case.number}/reply",
                             data={"_csrf": csrf, "text": "答复" * 20000})
    assert resp.status == 400 and "内容过长：最多 4000 个字，现有 40000 个字" in await resp.text()
    assert (await case_named(db, case.number)).reply_text is None

    await seed(kb_site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。")])
    csrf = await as_user(kb_site, db, "agent.li", "agent")
    async with db.session() as session:
        before = len(await workflow.versions(session, "SB-001"))
    resp = await kb_site.post("/admin/kb/SB-001/save", allow_redirects=False, data={
        "_csrf": csrf, "base": "1", "question": "问" * 600, "answer": "答" * 6000,
        "category": "类" * 100, "unit": "单" * 200})
    assert resp.status == 400 and "标准问题过长：最多 500 个字，现有 600 个字" in await resp.text()
    async with db.session() as session:
        assert len(await workflow.versions(session, "SB-001")) == before
