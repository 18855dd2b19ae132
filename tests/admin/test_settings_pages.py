"""系统设置 over HTTP (SQLite and PostgreSQL): units, categories, routing rules and examples,
working-day overrides, case-type deadlines and WeChat accounts — each change checked in the
database, in the audit log, and where it matters in what the system then does."""
from __future__ import annotations

import asyncio
import re
from datetime import date, datetime, timezone

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from admin.models import AuditEntry
from bot import api as bot_api
from casework import api as casework
from casework import calendar as cal
from casework.intake import take_case
from casework.models import Case, Category, RoutingExample, RoutingKeyword, Unit
from casework.routing import Router
from channels.wechat.models import WechatAccount
from server.appkeys import ROUTER
from tests.admin.conftest import add_user, console_app, csrf_of, login, signed_in

# 2026-09-30 10:00 China time, before the National Day holiday (see tests/casework/test_intake.py).
BEFORE_NATIONAL_DAY = datetime(2026, 9, 30, 2, 0, tzinfo=timezone.utc)
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"     # 43 characters
SECRET = "SeCrEt-app-0123456789abcdef"
TOKEN = "TokenValue9876"


async def audits(db, prefix: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditEntry).where(
            AuditEntry.action.like(f"{prefix}%")).order_by(AuditEntry.id)))


async def post(client, csrf, path, **data):
    return await client.post(path, data={"_csrf": csrf, **data}, allow_redirects=False)


async def add_categories(db, *names: str) -> None:
    async with db.session() as session, session.begin():
        session.add_all(Category(name=n, level=1) for n in names)


def unit_form(**fields) -> dict:
    form = {"id": "", "name": "", "parent_id": "", "regions": "", "duty_start": "", "duty_end": ""}
    form.update(fields)
    return form


# ---------------------------------------------------------------- units

async def test_units_are_created_and_edited_with_the_import_checks_in_chinese(db, make_client):
    await add_categories(db, "劳动关系", "市容环境")
    client, csrf = await signed_in(make_client, db, "boss", "admin")

    async def create(**fields):
        return await post(client, csrf, "/admin/settings/units", **unit_form(**fields))

    resp = await create(id="A", name="甲单位", parent_id="NOPE", categories="不存在的分类",
                        duty_start="25:00", duty_end="08:00")
    text = await resp.text()
    assert resp.status == 400
    for problem in ("上级单位 NOPE 不存在", "分类不存在：不存在的分类", "值班时间 25:00 格式不正确"):
        assert problem in text
    assert 'value="甲单位"' in text                       # the form comes back filled in

    resp = await create(id="A", name="甲单位", categories="劳动关系", regions="南湖区、秀洲区",
                        duty_start="20:00", duty_end="08:00")
    assert resp.status == 303
    resp = await post(client, csrf, "/admin/settings/units",
                      **unit_form(id="B", name="乙单位", parent_id="A"), categories="市容环境")
    assert resp.status == 303
    assert "名称“甲单位”已被其他单位使用" in await (await create(id="C", name="甲单位")).text()
    assert "单位编号 A 已存在" in await (await create(id="A", name="丙单位")).text()
    async with db.session() as session:
        a = await session.get(Unit, "A")
    assert (a.categories, a.regions, a.duty_start, a.duty_end) == (["劳动关系"], ["南湖区", "秀洲区"],
                                                                   "20:00", "08:00")

    # A loop (A under its own child B) is refused and nothing changes.
    resp = await post(client, csrf, "/admin/settings/units/A", **unit_form(name="甲单位", parent_id="B"))
    assert resp.status == 400 and "会造成循环" in await resp.text()
    # Only one dispatcher unit.
    assert (await post(client, csrf, "/admin/settings/units/A",
                       **unit_form(name="甲单位", is_dispatcher="1"))).status == 303
    resp = await post(client, csrf, "/admin/settings/units/B",
                      **unit_form(name="乙单位", parent_id="A", is_dispatcher="1"))
    assert resp.status == 400 and "只能有一个分派单位，A 已是分派单位" in await resp.text()
    # The edit form sent no duty hours and no categories: both cleared.
    page = await (await client.get("/admin/settings/units/A")).text()
    assert "编辑单位 A" in page and 'name="duty_start" value=""' in page
    async with db.session() as session:
        a = await session.get(Unit, "A")
    assert (a.parent_id, a.is_dispatcher, a.duty_start, a.categories) == (None, True, None, [])

    rows = await audits(db, "settings.unit")
    assert [r.action for r in rows] == ["settings.unit.create", "settings.unit.create", "settings.unit.update"]
    assert rows[2].detail["before"]["duty_start"] == "20:00" and rows[2].detail["after"]["is_dispatcher"]
    tree = await (await client.get("/admin/settings/units")).text()
    assert tree.index('data-unit="A"') < tree.index('data-unit="B"') and 'class="depth-1" data-unit="B"' in tree


async def test_a_unit_with_cases_accounts_or_children_is_not_deleted_and_the_page_says_why(db, make_client):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    async with db.session() as session, session.begin():
        session.add_all([Unit(id="P", name="上级"), Unit(id="C", name="下级", parent_id="P"),
                         Unit(id="E", name="空单位")])
    await add_user(db, "handler", "unit_handler", unit_id="C")
    resp = await post(client, csrf, "/admin/settings/units/P/delete")
    assert resp.status == 400 and "仍有1 个下级单位，不能删除" in await resp.text()
    resp = await post(client, csrf, "/admin/settings/units/C/delete")
    assert resp.status == 400 and "仍有1 个账号" in await resp.text()
    assert (await post(client, csrf, "/admin/settings/units/E/delete")).status == 303
    async with db.session() as session:
        assert {u.id for u in await session.scalars(select(Unit))} == {"P", "C"}
    (row,) = await audits(db, "settings.unit.delete")
    assert row.detail["before"]["name"] == "空单位" and row.detail["after"] == {}
    assert (await post(client, csrf, "/admin/settings/units/NOPE")).status == 404


# ---------------------------------------------------------------- categories

async def test_categories_are_added_renamed_everywhere_and_kept_while_used(db, make_client):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    assert (await post(client, csrf, "/admin/settings/categories", name="劳动保障", parent_id="")).status == 303
    async with db.session() as session:
        top = await session.scalar(select(Category).where(Category.name == "劳动保障"))
    assert (await post(client, csrf, "/admin/settings/categories", name="欠薪",
                       parent_id=str(top.id))).status == 303
    resp = await post(client, csrf, "/admin/settings/categories", name="欠薪", parent_id="")
    assert resp.status == 400 and "分类“欠薪”已存在" in await resp.text()
    async with db.session() as session, session.begin():
        leaf = await session.scalar(select(Category).where(Category.name == "欠薪"))
        session.add(Unit(id="U", name="单位", categories=["欠薪"]))
        session.add(RoutingKeyword(keyword="工资", category="欠薪"))
    assert leaf.level == 2
    assert (await post(client, csrf, f"/admin/settings/categories/{leaf.id}/rename", name="拖欠工资")).status == 303
    async with db.session() as session:
        assert (await session.get(Unit, "U")).categories == ["拖欠工资"]
        assert (await session.scalar(select(RoutingKeyword))).category == "拖欠工资"
    resp = await post(client, csrf, f"/admin/settings/categories/{leaf.id}/delete")
    assert resp.status == 400 and "仍被使用（1 个单位、1 条关键词规则）" in await resp.text()
    resp = await post(client, csrf, f"/admin/settings/categories/{top.id}/delete")
    assert resp.status == 400 and "1 个下级分类" in await resp.text()
    assert [r.action for r in await audits(db, "settings.category")] == [
        "settings.category.create", "settings.category.create", "settings.category.rename"]


# ---------------------------------------------------------------- routing rules and examples

async def routing_client(db, tmp_path, username="disp", role="dispatcher"):
    """A console with a served router, as server/app.py has, signed in as `role`."""
    app = console_app(db)
    app[ROUTER] = Router(db, tmp_path / "route")
    client = TestClient(TestServer(app))
    await client.start_server()
    await add_user(db, username, role)
    assert (await login(client, username)).status == 303
    return client, await csrf_of(client), app[ROUTER]


async def test_keyword_rules_take_effect_at_once_and_can_be_disabled(db, tmp_path):
    await add_categories(db, "劳动关系", "市容环境")
    client, csrf, router = await routing_client(db, tmp_path)
    try:
        resp = await post(client, csrf, "/admin/settings/routing/keywords",
                          keyword="拖欠工资", category="劳动关系", note="常见说法")
        assert resp.status == 303
        assert router.directory.keywords == [("拖欠工资", "劳动关系")]
        assert router.classify("老板拖欠工资三个月").reason.startswith("关键词规则")
        async with db.session() as session:
            rule = await session.scalar(select(RoutingKeyword))
        assert (await post(client, csrf, f"/admin/settings/routing/keywords/{rule.id}/toggle",
                           enabled="0")).status == 303
        assert router.directory.keywords == []
        page = await (await client.get("/admin/settings/routing")).text()
        assert 'class="off" data-keyword="拖欠工资"' in page and "已停用" in page
        assert (await post(client, csrf, f"/admin/settings/routing/keywords/{rule.id}/delete")).status == 303
        assert [r.action for r in await audits(db, "settings.keyword")] == [
            "settings.keyword.add", "settings.keyword.disable", "settings.keyword.remove"]
        (disable,) = await audits(db, "settings.keyword.disable")
        assert disable.detail["before"]["enabled"] is True and disable.detail["after"]["enabled"] is False
    finally:
        await client.close()


async def test_examples_are_imported_added_deleted_and_retrained_in_the_background(db, tmp_path):
    await add_categories(db, "劳动关系", "市容环境")
    client, csrf, router = await routing_client(db, tmp_path)
    try:
        bad = aiohttp.FormData()
        bad.add_field("_csrf", csrf)
        bad.add_field("file", "message,category\n工资不发,劳动关系\n油烟,\n".encode(), filename="ex.csv")
        resp = await client.post("/admin/settings/routing/examples/upload", data=bad)
        assert resp.status == 400 and "第 3 行：category 列为空" in await resp.text()

        rows = ["message,category"] + [f"公司拖欠工资第{i}个月,劳动关系" for i in range(6)] \
            + [f"楼下烧烤油烟很大第{i}次,市容环境" for i in range(6)]
        good = aiohttp.FormData()
        good.add_field("_csrf", csrf)
        good.add_field("file", "\n".join(rows).encode(), filename="examples.csv")
        assert (await client.post("/admin/settings/routing/examples/upload", data=good,
                                  allow_redirects=False)).status == 303
        assert (await post(client, csrf, "/admin/settings/routing/examples",
                           text="单位不交社保", category="劳动关系")).status == 303
        async with db.session() as session:
            examples = list(await session.scalars(select(RoutingExample).order_by(RoutingExample.id)))
        assert len(examples) == 13 and examples[-1].source == "admin"
        assert (await post(client, csrf, f"/admin/settings/routing/examples/{examples[0].id}/delete")).status == 303
        page = await (await client.get("/admin/settings/routing?category=市容环境")).text()
        assert "劳动关系（6）" in page and page.count("楼下烧烤油烟很大") == 6
        assert "公司拖欠工资" not in page.split('id="examples"')[1]

        assert router.model is None
        assert (await post(client, csrf, "/admin/settings/routing/retrain")).status == 303
        page = await (await client.get("/admin/settings/routing")).text()
        assert 'data-state="running"' in page or 'data-state="done"' in page
        for _ in range(200):
            if 'data-state="done"' in page:
                break
            await asyncio.sleep(0.1)
            page = await (await client.get("/admin/settings/routing")).text()
        assert re.search(r"已完成（[^）]*样本数 12", page), page
        assert router.model is not None and sum(router.model.counts.values()) == 12
        assert [r.action for r in await audits(db, "settings.example")] == [
            "settings.example.import", "settings.example.add", "settings.example.remove"]
        assert (await audits(db, "settings.routing.retrain"))[0].detail == {"started": True}
    finally:
        await client.close()


async def test_without_a_served_router_the_page_names_the_cli_command(db, make_client):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    page = await (await client.get("/admin/settings/routing")).text()
    assert "govchat route train" in page and 'action="/admin/settings/routing/retrain"' not in page


# ---------------------------------------------------------------- working-day overrides

async def test_overrides_change_the_working_calendar_and_a_missing_year_is_warned(db, make_client):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    page = await (await client.get("/admin/settings/calendar?year=2026")).text()
    assert "国庆节" in page and 'data-day="2026-10-10"' in page        # a holiday and a make-up day
    page = await (await client.get("/admin/settings/calendar?year=2027")).text()
    assert "日历数据尚未包含2027年的法定节假日安排" in page and "周一至周五" in page

    friday = date(2027, 2, 5)
    async with db.session() as session:
        assert (await cal.load_calendar(session)).is_workday(friday)
    resp = await post(client, csrf, "/admin/settings/calendar", day="2027-02-05", kind="0", note="2027年春节")
    assert resp.status == 303 and resp.headers["Location"].endswith("year=2027")
    async with db.session() as session:
        assert not (await cal.load_calendar(session)).is_workday(friday)
    page = await (await client.get("/admin/settings/calendar?year=2027")).text()
    assert "本地调整：2027年春节" in page
    assert (await post(client, csrf, "/admin/settings/calendar/2027-02-05/remove")).status == 303
    async with db.session() as session:
        assert (await cal.load_calendar(session)).is_workday(friday)
    rows = await audits(db, "settings.calendar")
    assert [(r.action, r.detail["before"], r.detail["after"]) for r in rows] == [
        ("settings.calendar.set", {}, {"is_workday": False, "note": "2027年春节"}),
        ("settings.calendar.remove", {"is_workday": False, "note": "2027年春节"}, {})]
    resp = await post(client, csrf, "/admin/settings/calendar", day="", kind="0", note="")
    assert resp.status == 400 and "请选择日期" in await resp.text()


# ---------------------------------------------------------------- case-type deadlines

async def test_a_deadline_set_on_the_page_applies_to_the_next_case(db, make_client):
    client, csrf = await make_client(case_deadline_days={"report": 4}), None
    await add_user(db, "boss", "admin")
    assert (await login(client, "boss")).status == 303
    csrf = await csrf_of(client)
    page = await (await client.get("/admin/settings/deadlines")).text()
    assert re.search(r'data-type="complaint">.*?5 个工作日.*?class="source">默认', page, re.S)
    assert re.search(r'data-type="report">.*?4 个工作日.*?class="source">环境变量', page, re.S)

    async def new_case(text: str):
        conv = await bot_api.open_conversation(db, "webchat", "", f"o-{text}")
        intake = casework.Intake(case_type="complaint", description=text, conversation_id=conv.id)
        return (await take_case(db, intake, router=None, now=BEFORE_NATIONAL_DAY)).case

    assert (await new_case("第一件")).deadline == date(2026, 10, 13)      # 5 working days
    resp = await post(client, csrf, "/admin/settings/deadlines", case_type="complaint", days="2")
    assert resp.status == 303
    page = await (await client.get("/admin/settings/deadlines")).text()
    assert re.search(r'data-type="complaint">.*?2 个工作日.*?class="source">页面设置', page, re.S)
    second = await new_case("第二件")
    assert second.deadline == date(2026, 10, 9)                          # Thu 8, Fri 9 Oct
    async with db.session() as session:
        first = await session.scalar(select(Case).where(Case.description == "第一件"))
    assert first.deadline == date(2026, 10, 13)                          # earlier cases keep theirs

    resp = await post(client, csrf, "/admin/settings/deadlines", case_type="complaint", days="0")
    assert resp.status == 400 and "时限须为1至60之间的整数" in await resp.text()
    assert (await post(client, csrf, "/admin/settings/deadlines", case_type="complaint", clear="1")).status == 303
    assert (await new_case("第三件")).deadline == date(2026, 10, 13)
    rows = await audits(db, "settings.deadline")
    assert [(r.detail["before"], r.detail["after"]) for r in rows] == [
        ({}, {"working_days": 2}), ({"working_days": 2}, {})]


# ---------------------------------------------------------------- WeChat accounts

async def test_wechat_secrets_are_write_only(db, make_client):
    client, csrf = await signed_in(make_client, db, "boss", "admin")
    form = {"name": "nanhu", "app_id": "wx1234567890", "mode": "safe", "app_secret": SECRET,
            "token": TOKEN, "encoding_aes_key": AES_KEY[:40]}
    resp = await post(client, csrf, "/admin/settings/wechat", **form)
    text = await resp.text()
    assert resp.status == 400 and "EncodingAESKey 须为43个字符" in text
    assert SECRET not in text and TOKEN not in text and AES_KEY[:40] not in text   # not sent back either
    assert 'value="wx1234567890"' in text

    resp = await post(client, csrf, "/admin/settings/wechat", **{**form, "encoding_aes_key": AES_KEY})
    assert resp.status == 303
    bodies = [await (await client.get(path)).text() for path in ("/admin/settings/wechat",)]
    async with db.session() as session:
        row = await session.scalar(select(WechatAccount))
    bodies.append(await (await client.get(f"/admin/settings/wechat/{row.id}")).text())
    for body in bodies:
        assert SECRET not in body and TOKEN not in body and AES_KEY not in body
        assert "/wechat/nanhu" in body
    assert f"已设置（末4位 ••••{SECRET[-4:]}）" in bodies[0]

    # Blank secrets keep the stored ones; a new token replaces the old and is audited by name only.
    edit = f"/admin/settings/wechat/{row.id}"
    resp = await post(client, csrf, edit, app_id="wx0000000001", mode="safe", app_secret="",
                      token="NewToken55555", encoding_aes_key="")
    assert resp.status == 303
    async with db.session() as session:
        row = await session.get(WechatAccount, row.id)
    assert (row.app_id, row.app_secret, row.token, row.encoding_aes_key) == (
        "wx0000000001", SECRET, "NewToken55555", AES_KEY)
    resp = await post(client, csrf, edit, app_id="wx0000000001", mode="compatible", app_secret="",
                      token="bad token!", encoding_aes_key="")
    assert resp.status == 400 and "令牌（Token）须为3至32个英文字母或数字" in await resp.text()
    assert "NewToken55555" not in await resp.text()

    rows = await audits(db, "settings.wechat")
    assert [r.action for r in rows] == ["settings.wechat.create", "settings.wechat.update"]
    assert rows[1].detail["secrets_changed"] == ["token"]
    assert rows[1].detail["before"]["app_id"] == "wx1234567890"
    for r in rows:
        logged = repr(r.detail)
        assert all(s not in logged for s in (SECRET, TOKEN, "NewToken55555", AES_KEY))
    audit_page = await (await client.get("/admin/audit?action=settings.wechat")).text()
    assert all(s not in audit_page for s in (SECRET, TOKEN, "NewToken55555", AES_KEY))


# ---------------------------------------------------------------- who may open what

async def test_settings_are_for_admins_and_routing_also_for_dispatchers(db, make_client):
    admin, _ = await signed_in(make_client, db, "boss", "admin")
    page = await (await admin.get("/admin/settings")).text()
    for label in ("单位管理", "分类管理", "路由规则与示例", "工作日调整", "办理时限", "微信公众号", "词表管理"):
        assert label in page
    assert 'data-route="settings-index"' in page
    dispatcher, csrf = await signed_in(make_client, db, "disp", "dispatcher")
    assert (await dispatcher.get("/admin/settings/routing")).status == 200
    for path in ("/admin/settings", "/admin/settings/units", "/admin/settings/wechat"):
        resp = await dispatcher.get(path)
        assert resp.status == 403 and "您没有权限访问此页面" in await resp.text()
    assert (await post(dispatcher, csrf, "/admin/settings/deadlines", case_type="complaint", days="9")).status == 403
    agent, csrf = await signed_in(make_client, db, "agent1", "agent")
    assert (await agent.get("/admin/settings/routing")).status == 403
    assert (await post(agent, csrf, "/admin/settings/routing/keywords", keyword="x", category="y")).status == 403
