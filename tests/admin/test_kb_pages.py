"""Q&A curation (问答库, 问答审核) through HTTP, over the real database and a served index."""
from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from admin.models import AuditEntry
from knowledge_base import api as kb_api
from knowledge_base import workflow
from knowledge_base.api import KnowledgeBase, Row
from knowledge_base.models import Query
from knowledge_base.routes import setup_routes as kb_routes
from knowledge_base.settings import SearchSettings
from server.appkeys import KB
from tests.admin.conftest import add_user, console_app, csrf_of, login


def kb_app(db):
    """The consoles plus the served Q&A base and its search API, as server/app.py has them."""
    app = console_app(db)
    app[KB] = KnowledgeBase(db, SearchSettings())
    kb_routes(app)
    return app


@pytest.fixture
async def site(db):
    app = kb_app(db)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client
    await client.close()


async def as_user(client: TestClient, db, username: str, role: str) -> str:
    """Sign the client in as `username` (created on first use); returns the CSRF token."""
    async with db.session() as session:
        from admin.api import find_user
        known = await find_user(session, username)
    if known is None:
        await add_user(db, username, role)
    client.session.cookie_jar.clear()
    assert (await login(client, username)).status == 303
    return await csrf_of(client)


def row(ext: str, question: str, answer: str, category: str = "社保", unit: str = "社保中心",
        **more) -> Row:
    return Row(ext, question, (), answer, category, unit, **more)


async def seed(client, db, rows: list[Row], publish: bool = True) -> None:
    async with db.session() as session, session.begin():
        await kb_api.import_rows(session, rows, "seed", publish=publish)
    await client.app[KB].refresh()


async def versions(db, ext: str):
    async with db.session() as session:
        return [(v.number, v.status, v.author, v.reviewer, v.answer)
                for v in await workflow.versions(session, ext)]


async def post(client, path: str, csrf: str, **data):
    return await client.post(path, data={"_csrf": csrf, **data}, allow_redirects=False)


async def page_after(client, resp) -> str:
    assert resp.status == 303, (resp.status, await resp.text())
    return await (await client.get(resp.headers["Location"])).text()


def entries_on(html: str) -> list[str]:
    return re.findall(r'<tr class="[^"]*" data-entry="([^"]+)"', html)


async def test_list_searches_filters_colours_expiry_and_counts_hits(site, db):
    today = date.today()
    await seed(site, db, [
        row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。"),
        row("HJ-001", "居住证怎么办？", "带身份证到派出所。", "户籍", "公安局",
            valid_to=today - timedelta(days=1)),
        row("YB-001", "医保怎么报销？", "持医保卡结算。", "医保", "医保局",
            valid_to=today + timedelta(days=5)),
    ])
    await seed(site, db, [row("SB-002", "社保卡怎么挂失？", "拨打12333。")], publish=False)
    async with db.session() as session, session.begin():
        session.add_all([Query(text="补社保卡", outcome="answered", entry_id="SB-001"),
                         Query(text="社保卡掉了", outcome="chosen", entry_id="SB-001"),
                         Query(text="医保报销", outcome="unanswered")])
    await as_user(site, db, "agent.li", "agent")

    html = await (await site.get("/admin/kb")).text()
    assert entries_on(html) == ["HJ-001", "SB-001", "SB-002", "YB-001"]
    assert re.search(r'data-entry="SB-001">.*?<td class="hits">2</td>', html, re.S)
    assert re.search(r'<tr class="expired" data-entry="HJ-001">.*?已过期', html, re.S)
    assert re.search(r'<tr class="expiring" data-entry="YB-001">.*?即将过期', html, re.S)
    assert re.search(r'data-entry="SB-002">.*?草稿', html, re.S)
    assert re.search(r'data-entry="SB-001">.*?已发布', html, re.S)

    async def listed(**query) -> list[str]:
        resp = await site.get("/admin/kb", params=query)
        assert resp.status == 200
        return entries_on(await resp.text())

    assert await listed(q="社保卡") == ["SB-001", "SB-002"]
    assert await listed(q="100%") == []
    assert await listed(category="医保") == ["YB-001"]
    assert await listed(unit="公安局") == ["HJ-001"]
    assert await listed(status="draft") == ["SB-002"]
    assert await listed(expired="1") == ["HJ-001"]


async def test_a_saved_draft_is_a_new_version_with_its_diff_escaped(site, db):
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。")])
    csrf = await as_user(site, db, "agent.li", "agent")
    resp = await post(site, "/admin/kb/SB-001/save", csrf, base="1", question="社保卡丢了怎么补办？",
                      similar_questions="社保卡掉了\n补社保卡", answer="先挂失，再到窗口补办。<b>当场取卡</b>",
                      category="社保", unit="社保中心", tags="", valid_from="", valid_to="", submit="0")
    html = await page_after(site, resp)
    assert "已保存为 v2" in html
    assert [v[:3] for v in await versions(db, "SB-001")] == [(1, "published", "seed"),
                                                             (2, "draft", "agent.li")]
    v2 = html[html.index('id="v2"'):html.index('id="v1"')]
    assert '<div class="kb-line removed"><span class="mark">-</span>先挂失再补办。</div>' in v2
    assert "&lt;b&gt;当场取卡&lt;/b&gt;" in v2 and "<b>当场取卡" not in html
    assert '<span class="mark">+</span>补社保卡' in v2
    assert 'data-field="category"' not in v2            # unchanged fields are left out
    # Still served: v1 until a reviewer approves v2.
    assert site.app[KB].get("SB-001").version == 1
    async with db.session() as session:
        actions = [a.action for a in await session.scalars(select(AuditEntry))]
    assert "kb.draft" in actions

    # Saving on top of an old version is refused (someone saved in between).
    resp = await post(site, "/admin/kb/SB-001/save", csrf, base="1", question="x", answer="y")
    assert resp.status == 400 and "已有人保存了新的版本 v2" in await resp.text()
    resp = await post(site, "/admin/kb/SB-001/save", csrf, base="2", question="", answer="y")
    assert resp.status == 400 and "标准问题和答案不能为空" in await resp.text()
    assert len(await versions(db, "SB-001")) == 2


async def test_the_author_cannot_approve_and_another_reviewers_approval_is_served_at_once(site, db):
    csrf = await as_user(site, db, "rev.zhang", "reviewer")
    resp = await post(site, "/admin/kb/new", csrf, entry_id="GJJ-009", question="公积金贷款额度怎么算？",
                      similar_questions="公积金能贷多少", answer="按缴存余额的15倍计算，最高80万元。",
                      category="公积金", unit="公积金中心", tags="", valid_from="", valid_to="",
                      submit="1")
    assert "问答 GJJ-009 已创建并提交审核" in await page_after(site, resp)
    html = await (await site.get("/admin/kb/review")).text()
    assert 'data-entry="GJJ-009" data-version="1"' in html and "这是您本人编写的版本" in html

    resp = await post(site, "/admin/kb/GJJ-009/approve", csrf, version="1", back="review")
    assert "审核人不能是作者本人" in await page_after(site, resp)
    assert (await versions(db, "GJJ-009"))[0][1] == "in_review"
    search = await (await site.get("/api/kb/search", params={"q": "公积金贷款额度怎么算"})).json()
    assert search["decision"] == "none"

    csrf = await as_user(site, db, "rev.wang", "reviewer")
    resp = await post(site, "/admin/kb/GJJ-009/approve", csrf, version="1", back="review")
    html = await page_after(site, resp)
    assert "GJJ-009 v1 已审核通过并发布" in html and 'id="review-empty"' in html
    assert (await versions(db, "GJJ-009"))[0][1:4] == ("published", "rev.zhang", "rev.wang")
    search = await (await site.get("/api/kb/search", params={"q": "公积金贷款额度怎么算"})).json()
    assert search["decision"] == "answer" and search["hits"][0]["id"] == "GJJ-009"


async def test_a_rejection_needs_a_comment_and_goes_back_to_the_author(site, db):
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。")], publish=False)
    async with db.session() as session, session.begin():
        await workflow.submit(session, "SB-001", 1, "seed")
    csrf = await as_user(site, db, "rev.wang", "reviewer")
    resp = await post(site, "/admin/kb/SB-001/reject", csrf, version="1", comment="  ", back="review")
    assert "退回须填写意见" in await page_after(site, resp)
    assert (await versions(db, "SB-001"))[0][1] == "in_review"
    resp = await post(site, "/admin/kb/SB-001/reject", csrf, version="1", comment="请写明办理地点")
    html = await page_after(site, resp)
    assert "已退回作者修改" in html and "审核意见：请写明办理地点" in html
    assert (await versions(db, "SB-001"))[0][1] == "draft"


async def test_rolling_back_makes_a_draft_of_the_old_content_and_retiring_stops_serving(site, db):
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "旧答案。")])
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "新答案。")])
    csrf = await as_user(site, db, "rev.wang", "reviewer")
    resp = await post(site, "/admin/kb/SB-001/rollback", csrf, version="1")
    assert "已按 v1 的内容生成草稿 v3" in await page_after(site, resp)
    assert [(n, s, a) for n, s, _, _, a in await versions(db, "SB-001")] == [
        (1, "retired", "旧答案。"), (2, "published", "新答案。"), (3, "draft", "旧答案。")]
    resp = await post(site, "/admin/kb/SB-001/retire", csrf)
    assert "SB-001 已下线" in await page_after(site, resp)
    assert site.app[KB].get("SB-001") is None
    async with db.session() as session:
        actions = {a.action for a in await session.scalars(select(AuditEntry))}
    assert {"kb.rollback", "kb.retire"} <= actions


async def test_hit_testing_shows_the_bots_decision_and_the_top_hits(site, db):
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。"),
                          row("SB-002", "社保卡怎么挂失？", "拨打12333。")])
    await as_user(site, db, "agent.li", "agent")
    html = await (await site.get("/admin/kb/try", params={"q": "社保卡丢了怎么补办"})).text()
    assert 'data-kind="answer"' in html and "直接回答" in html
    assert 'href="/admin/kb/SB-001"' in html
    assert re.search(r'<tr data-entry="SB-001">.*?<td class="score">0\.\d{3}</td>', html, re.S)
    html = await (await site.get("/admin/kb/try", params={"q": "火星签证在哪里办"})).text()
    assert 'data-kind="none"' in html


async def test_unanswered_questions_are_grouped_and_open_a_prefilled_new_entry(site, db):
    async with db.session() as session, session.begin():
        session.add_all([Query(text="养老金怎么领取", outcome="unanswered"),
                         Query(text="养老金怎么领取", outcome="unanswered"),
                         Query(text="社保卡<script>", outcome="abandoned")])
    await as_user(site, db, "agent.li", "agent")
    html = await (await site.get("/admin/kb/gaps")).text()
    assert '<td class="count">2</td>' in html and "社保卡&lt;script&gt;" in html
    link = re.search(r'href="(/admin/kb/new\?question=[^"]+)"', html).group(1)
    html = await (await site.get(link.replace("&amp;", "&"))).text()
    assert 'name="question" maxlength="500" required value="养老金怎么领取"' in html


async def test_import_with_a_bad_row_names_it_and_stores_nothing(site, db):
    csrf = await as_user(site, db, "agent.li", "agent")
    csv = ("id,question,similar_questions,answer,category,unit\n"
           "SB-001,社保卡丢了怎么补办？,,先挂失再补办。,社保,社保中心\n"
           "SB-002,社保卡怎么挂失？,,,社保,社保中心\n")
    form = FormData({"_csrf": csrf})
    form.add_field("file", csv.encode(), filename="qa.csv", content_type="text/csv")
    resp = await site.post("/admin/kb/import", data=form, allow_redirects=False)
    text = await resp.text()
    assert resp.status == 400 and "第 3 行，answer 列" in text and "整份文件未导入" in text
    async with db.session() as session:
        assert await kb_api.count_entries(session) == 0

    form = FormData({"_csrf": csrf})
    form.add_field("file", csv.replace(",,,社保", ",,拨打12333。,社保").encode(), filename="qa.csv")
    resp = await site.post("/admin/kb/import", data=form, allow_redirects=False)
    assert "已导入 2 条，均为草稿" in await page_after(site, resp)
    assert [v[1] for v in await versions(db, "SB-002")] == ["draft"]   # never published from here


async def test_export_downloads_an_xlsx_that_imports_again(site, db, tmp_path):
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。", tags=("补办",)),
                          row("HJ-001", "居住证怎么办？", "带身份证。", valid_to=date(2030, 1, 1))])
    csrf = await as_user(site, db, "agent.li", "agent")
    resp = await site.get("/admin/kb/export.xlsx")
    assert resp.status == 200 and "spreadsheetml" in resp.headers["Content-Type"]
    assert "attachment" in resp.headers["Content-Disposition"]
    body = await resp.read()
    (tmp_path / "qa.xlsx").write_bytes(body)
    async with db.session() as session:
        assert kb_api.read_table(tmp_path / "qa.xlsx") == await kb_api.export_rows(session)
    form = FormData({"_csrf": csrf})
    form.add_field("file", body, filename="导出.xlsx")
    resp = await site.post("/admin/kb/import", data=form, allow_redirects=False)
    assert "已导入 2 条" in await page_after(site, resp)
    assert [v[1] for v in await versions(db, "HJ-001")] == ["published", "draft"]


async def test_roles_without_the_right_are_refused(site, db):
    await seed(site, db, [row("SB-001", "社保卡丢了怎么补办？", "先挂失再补办。")])
    for username, role in (("unit.zhao", "unit_handler"), ("disp.qian", "dispatcher")):
        csrf = await as_user(site, db, username, role)
        for path in ("/admin/kb", "/admin/kb/SB-001", "/admin/kb/review", "/admin/kb/try",
                     "/admin/kb/gaps", "/admin/kb/export.xlsx", "/admin/kb/new"):
            resp = await site.get(path, allow_redirects=False)
            assert resp.status == 403 and "您没有权限访问此页面" in await resp.text(), (role, path)
        resp = await post(site, "/admin/kb/SB-001/save", csrf, question="x", answer="y")
        assert resp.status == 403
    csrf = await as_user(site, db, "agent.li", "agent")
    assert (await site.get("/admin/kb/review")).status == 403
    for step in ("approve", "reject", "retire"):
        resp = await post(site, f"/admin/kb/SB-001/{step}", csrf, version="1", comment="x")
        assert resp.status == 403, step
    assert (await site.get("/admin/kb/nope")).status == 404
