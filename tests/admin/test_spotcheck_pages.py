"""季度抽查 over HTTP: draw, read an item's trail, record a finding, export; who may do what."""
from __future__ import annotations

import io
import re

from openpyxl import load_workbook
from sqlalchemy import select

from admin.models import AuditEntry
from casework import events
from casework.models import Case, SpotCheck, SpotCheckItem, Unit
from tests.admin.conftest import signed_in
from tests.casework.test_spotcheck import PHONE, add_case, add_conversation, china


async def quarter_of_work(db) -> None:
    async with db.session() as session, session.begin():
        session.add(Unit(id="JH-RSJ", name="人社局"))
        await session.flush()
        conv = await add_conversation(session, "webchat", "", china(2026, 8, 1, 9))
        for i in range(3):
            case = await add_case(session, i + 1, "JH-RSJ", china(2026, 8, 1 + i, 10),
                                  conversation_id=conv.id)
            events.record(session, events.CASE_DISPATCHED, at=china(2026, 8, 1 + i, 11),
                          case_id=case.id, actor="fen", unit_id="JH-RSJ")


async def draw(client, csrf, **fields):
    data = {"_csrf": csrf, "quarter": "2026Q3", "per_unit": "2", "seed": "", **fields}
    return await client.post("/admin/spotchecks/draw", data=data, allow_redirects=False)


async def test_an_admin_draws_reads_a_trail_records_a_finding_and_exports(make_client, db):
    await quarter_of_work(db)
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    assert "季度抽查" in await (await client.get("/admin/")).text()
    resp = await draw(client, csrf, seed="2024")
    assert resp.status == 303
    page = await (await client.get(resp.headers["Location"])).text()
    assert 'id="seed">2024<' in page and 'id="progress">0/3<' in page
    assert "人社局 (JH-RSJ)" in page and "会话渠道 webchat/默认" in page
    assert "随机种子 2024" in page                               # the flash
    async with db.session() as session:
        check = await session.scalar(select(SpotCheck))
        item = await session.scalar(select(SpotCheckItem).where(SpotCheckItem.kind == "case")
                                    .order_by(SpotCheckItem.id))
        case = await session.get(Case, item.case_id)
    item_url = f"/admin/spotchecks/{check.id}/items/{item.id}"
    page = await (await client.get(item_url)).text()
    assert case.number in page and "派单，单位 JH-RSJ" in page and "请问社保怎么办" in page
    assert PHONE not in page and "138****5678" in page

    refused = await client.post(item_url + "/finding", data={"_csrf": csrf, "finding": "problem"})
    assert refused.status == 400 and "请写明发现的问题" in await refused.text()
    resp = await client.post(item_url + "/finding", allow_redirects=False,
                             data={"_csrf": csrf, "finding": "problem", "comment": "答复<script>x</script>"})
    assert resp.status == 303
    page = await (await client.get(item_url)).text()
    assert "有问题" in page and "答复&lt;script&gt;x&lt;/script&gt;" in page
    assert 'id="progress">1/3<' in await (await client.get(f"/admin/spotchecks/{check.id}")).text()
    assert "1/3" in await (await client.get("/admin/spotchecks")).text()

    resp = await client.get(f"/admin/spotchecks/{check.id}/export?format=xlsx")
    assert resp.status == 200 and "spotcheck-2026Q3" in resp.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(await resp.read()))
    assert book.sheetnames == ["抽查清单", "记录"] and book["抽查清单"].max_row == 4
    resp = await client.get(f"/admin/spotchecks/{check.id}/export?format=csv")
    assert resp.status == 200 and "有问题" in await resp.text()
    assert (await client.get(f"/admin/spotchecks/{check.id}/export?format=pdf")).status == 400
    async with db.session() as session:
        actions = [a.action for a in await session.scalars(select(AuditEntry).where(
            AuditEntry.actor == "boss", AuditEntry.action.like("spotcheck.%")).order_by(AuditEntry.id))]
    assert actions == ["spotcheck.draw", "spotcheck.finding", "spotcheck.export", "spotcheck.export"]


async def test_a_bad_draw_is_shown_again_with_the_reason(make_client, db):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    resp = await draw(client, csrf, quarter="2026-3")
    assert resp.status == 400 and "季度格式应为 2026Q3" in await resp.text()
    resp = await draw(client, csrf, per_unit="many")
    assert resp.status == 400 and "每单位抽取数量应为正整数" in await resp.text()
    async with db.session() as session:
        assert await session.scalar(select(SpotCheck)) is None


async def test_a_reviewer_reads_but_changes_nothing_and_others_are_refused(make_client, db):
    await quarter_of_work(db)
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    await draw(admin, csrf, seed="5")
    async with db.session() as session:
        check = await session.scalar(select(SpotCheck))
        item = await session.scalar(select(SpotCheckItem))
    item_url = f"/admin/spotchecks/{check.id}/items/{item.id}"
    reviewer, rcsrf = await signed_in(make_client, db, "shen", "reviewer")
    assert (await reviewer.get("/admin/spotchecks")).status == 200
    page = await (await reviewer.get(item_url)).text()
    assert "未检查" in page and "finding-form" not in page and "draw-form" not in page
    assert (await reviewer.post(item_url + "/finding", data={"_csrf": rcsrf, "finding": "ok"})).status == 403
    assert (await reviewer.get(f"/admin/spotchecks/{check.id}/export")).status == 403
    assert (await draw(reviewer, rcsrf)).status == 403
    for role in ("agent", "dispatcher", "unit_handler"):
        other, _ = await signed_in(make_client, db, f"x.{role}", role)
        assert (await other.get("/admin/spotchecks")).status == 403
        assert (await other.get(item_url)).status == 403
        assert "季度抽查" not in await (await other.get("/admin/")).text()
    # Another spot check's item under this one's URL is not found.
    assert (await admin.get(f"/admin/spotchecks/{check.id + 1}/items/{item.id}")).status == 404


async def test_the_home_page_shows_alerts_to_admins_and_reviewers_only(make_client, db):
    admin, _ = await signed_in(make_client, db, "boss", "admin")
    page = await (await admin.get("/admin/")).text()
    assert 'id="alerts"' in page and "问答库尚无已发布的内容" in page
    assert re.search(r'data-kind="kb_stale">\s*问答库尚无已发布的内容。 <a href="/admin/kb">去处理</a>', page)
    agent, _ = await signed_in(make_client, db, "kefu", "agent")
    assert 'id="alerts"' not in await (await agent.get("/admin/")).text()
