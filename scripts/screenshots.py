"""Screenshots of the staff consoles for docs/consoles.md — `make screenshots`.

A throwaway SQLite database (temp dir) with the bundled demo content, one account per role, a
little realistic work prepared through the project's own APIs (a handed-off web chat, cases in
different states, a Q&A draft in review), the whole app served in-process on loopback with a
fake Rasa, and Debian's Chromium saving 1280×800 PNGs (one 768×1024 tablet view) into
docs/screenshots/. Chinese needs a CJK font on the machine (`apt-get install fonts-noto-cjk`).
"""
from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import ClientSession, web                             # noqa: E402
from aiohttp.test_utils import TestServer                          # noqa: E402
from sqlalchemy import select                                      # noqa: E402

from admin.api import create_user                                  # noqa: E402
from bot import api as bot_api                                     # noqa: E402
from bot.models import Conversation                                # noqa: E402
from casework import api as casework                               # noqa: E402
from casework import lifecycle, spotcheck                          # noqa: E402
from casework.models import Category                               # noqa: E402
from knowledge_base import workflow                                # noqa: E402
from server import bootstrap, migrate                              # noqa: E402
from server.app import create_app                                  # noqa: E402
from server.config import Config                                   # noqa: E402
from server.db import CHINA, Database, utcnow                      # noqa: E402
from tests.conftest import free_port                               # noqa: E402
from tests.e2e import CHROMIUM, CHROMIUM_ARGS                      # noqa: E402

OUT = ROOT / "docs" / "screenshots"
PASSWORD = "Screenshot-Demo-42"
UNIT = "JH-ZFJ"                  # 嘉禾市综合行政执法局: the unit handler's unit
LAPTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}

ACCOUNTS = [  # username, role, display name, unit
    ("admin", "admin", "系统管理员", None),
    ("li.na", "agent", "李娜", None),
    ("zhao.min", "unit_handler", "赵敏", UNIT),
    ("fen.pai", "dispatcher", "孙分派", None),
    ("wang.shen", "reviewer", "王审核", None),
]


async def fake_rasa_reply(request: web.Request) -> web.Response:
    return web.json_response([{"custom": {"kind": "answer", "source_ref": "qa:SB-001@1",
                                          "text": "您好，我是嘉禾市政务服务智能助手，请问有什么可以帮您？"}}])


async def prepare(db: Database) -> dict:
    """Demo content, accounts, cases and a Q&A draft in review; returns what the pages need."""
    await bootstrap.load_demo_content(db)
    async with db.session() as session, session.begin():
        for username, role, name, unit in ACCOUNTS:
            await create_user(session, username=username, role=role, actor="system",
                              password=PASSWORD, unit_id=unit, display_name=name)

    # Cases: intake as the bot's form leaves them, then the lifecycle's own steps.
    now = utcnow() - timedelta(hours=3)
    async with db.session() as session:
        cat = {name: await session.scalar(select(Category.id).where(Category.name == name))
               for name in ("餐饮油烟", "施工噪声扰民", "占道经营", "社会生活噪声", "工业企业噪声")}

    async def submit(minutes: int, description: str, place: str, category: str | None,
                     phone: str, confidence: float | None, unit: str | None = UNIT,
                     deadline_in: int | None = None) -> str:
        today = (now + timedelta(hours=8)).date()          # China's date
        intake = casework.Intake(case_type="complaint", description=description, place=place,
                                 occurred="最近一周每天晚上", phone=phone, unit_id=unit,
                                 category_id=cat.get(category), route_confidence=confidence,
                                 deadline=None if deadline_in is None else today + timedelta(days=deadline_in))
        return (await casework.submit_case(db, intake, now=now + timedelta(minutes=minutes))).case.number

    # Two older cases of the unit, in progress: one due tomorrow, one a day overdue.
    soon = await submit(-12 * 24 * 60, "小区楼下广场舞音响每晚九点半以后还开很大声，多次沟通无果。",
                        "南湖区建设街道紫阳小区", "社会生活噪声", "13500004444", 0.88, deadline_in=1)
    late = await submit(-16 * 24 * 60, "城郊一家板材厂夜里机器轰鸣，附近村民无法入睡。",
                        "秀洲区王江泾镇", "工业企业噪声", "13400005555", 0.81, deadline_in=-1)
    for number, days in ((soon, 12), (late, 16)):
        at = now - timedelta(days=days) + timedelta(hours=1)
        await lifecycle.dispatch(db, number, UNIT, actor="system", now=at)
        await lifecycle.accept(db, number, unit_id=UNIT, actor="zhao.min", now=at + timedelta(hours=2))

    oil = await submit(0, "幸福路12号的烧烤店每天晚上排油烟，直冲我家窗户，家里全是油烟味，"
                          "孩子咳嗽。请有关部门督促加装油烟净化设施。",
                       "南湖区幸福路12号", "餐饮油烟", "13812345678", 0.91)
    noise = await submit(5, "东栅路工地夜间十一点以后还在打桩施工，噪音很大，影响休息。",
                         "南湖区东栅路与中环南路交叉口", "施工噪声扰民", "13900001111", 0.84)
    stall = await submit(10, "菜场门口流动摊贩占道经营，早上电动车都过不去。",
                         "秀洲区新城街道农贸市场", "占道经营", "13700002222", 0.77)
    vague = await submit(15, "小区门口的路灯坏了快一个月了，晚上很黑，老人出门不安全。",
                         "嘉善县魏塘街道", None, "13600003333", 0.32, unit=None)
    for number in (oil, noise, stall):
        await lifecycle.dispatch(db, number, UNIT, actor="system", now=now + timedelta(minutes=20))
    await lifecycle.accept(db, oil, unit_id=UNIT, actor="zhao.min", now=now + timedelta(minutes=40))
    await lifecycle.request_extension(db, oil, unit_id=UNIT, days=5, actor="zhao.min",
                                      reason="需协调市场监管部门联合检查，并等待净化设备安装。",
                                      now=now + timedelta(minutes=50))
    await lifecycle.return_misrouted(db, stall, unit_id=UNIT, actor="zhao.min",
                                     reason="该农贸市场周边由街道负责管理，非本单位事项。",
                                     now=now + timedelta(minutes=55))

    # One case answered and rated, so the reports have a reply to count.
    await lifecycle.accept(db, noise, unit_id=UNIT, actor="zhao.min", now=now + timedelta(minutes=45))
    await lifecycle.reply(db, noise, unit_id=UNIT, actor="zhao.min", now=now + timedelta(minutes=90),
                          text="已责令施工单位22时后停止高噪声作业，并安排夜间巡查。")
    await lifecycle.rate(db, noise, 5, actor="citizen", now=now + timedelta(minutes=100))

    # A Q&A draft in review: a new version of a demo entry by the agent.
    async with db.session() as session, session.begin():
        current = (await workflow.versions(session, "SB-001"))[-1]
        draft = await workflow.save_draft(
            session, "SB-001", "li.na", question=current.question,
            similar_questions=list(current.similar_questions) + ["社保卡丢了能在手机上补办吗"],
            answer=current.answer + "\n补办期间可使用电子社保卡就医结算。",
            category=current.category, unit=current.unit)
        await workflow.submit(session, "SB-001", draft.number, "li.na")
    # This quarter's spot check, drawn with a fixed seed.
    today = utcnow().astimezone(CHINA).date()
    async with db.session() as session, session.begin():
        check = await spotcheck.draw(session, f"{today.year}Q{(today.month - 1) // 3 + 1}", 3, seed=2026,
                                     actor="admin")
    return {"case": oil, "spotcheck": check.id}


async def handoff(site: str, db: Database) -> int:
    """A web-chat citizen greets the bot, asks for a person and writes twice; its conversation id."""
    async with ClientSession(site) as http:
        async def say(text: str) -> None:
            async with http.post("/api/chat", json={"sender": "demo-citizen", "text": text}) as resp:
                assert resp.status == 200, await resp.text()

        await say("你好")
        async with db.session() as session:
            conv_id = await session.scalar(select(Conversation.id))
        await bot_api.request_handoff(db, conv_id, bot_api.CITIZEN_REQUEST)
        await say("我母亲的养老金这个月没有到账，卡号没变，想问问是什么原因？")
        await say("她今年刚办的退休，在社保中心窗口办的。")
    return conv_id


async def shoot(site: str, conv_id: int, case: str, spot_check: int) -> list[Path]:
    from playwright.async_api import async_playwright

    saved: list[Path] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            async def page_for(username: str | None, viewport=LAPTOP):
                context = await browser.new_context(viewport=viewport, locale="zh-CN",
                                                    timezone_id="Asia/Shanghai")
                page = await context.new_page()
                page.set_default_timeout(10000)
                if username:
                    await page.goto(site + "/admin/login")
                    await page.fill("input[name=username]", username)
                    await page.fill("input[name=password]", PASSWORD)
                    async with page.expect_navigation():
                        await page.click("button[type=submit]")
                return page

            async def snap(page, path: str, name: str) -> None:
                await page.goto(site + path, wait_until="load")
                await page.evaluate("document.fonts.ready")
                target = OUT / f"{name}.png"
                await page.screenshot(path=str(target))
                saved.append(target)

            page = await page_for(None)
            await snap(page, "/admin/login", "login")

            admin = await page_for("admin")
            await snap(admin, "/admin/", "home")
            await snap(admin, "/admin/users", "accounts")
            await snap(admin, "/admin/audit", "audit-log")
            await snap(admin, "/admin/settings", "settings")
            await snap(admin, "/admin/settings/units", "settings-units")
            await snap(admin, "/admin/settings/calendar", "settings-calendar")
            await snap(admin, "/admin/settings/wechat", "settings-wechat")
            await snap(admin, "/admin/reports", "reports")
            await snap(admin, "/admin/reports/assessment", "assessment")
            await snap(admin, f"/admin/spotchecks/{spot_check}", "spotcheck")

            agent = await page_for("li.na")
            await agent.goto(f"{site}/admin/inbox/{conv_id}")
            await agent.click("#claim")
            await agent.locator(".flash", has_text="已接管该会话").wait_for()
            await agent.fill("#reply-text", "您好，我是人工客服李娜。新退休人员首月养老金一般在次月发放，"
                                            "请您提供退休办理日期，我帮您查询。")
            await agent.click("#send-reply")
            await agent.locator(".flash", has_text="回复已发送").wait_for()
            await snap(agent, "/admin/inbox", "inbox")
            await snap(agent, f"/admin/inbox/{conv_id}", "inbox-conversation")

            handler = await page_for("zhao.min")
            await snap(handler, "/admin/cases", "unit-desk")
            await snap(handler, f"/admin/cases/{case}", "case")
            tablet = await page_for("zhao.min", TABLET)
            await snap(tablet, "/admin/cases", "unit-desk-tablet")

            dispatcher = await page_for("fen.pai")
            await snap(dispatcher, "/admin/dispatch", "dispatch-desk")
            await snap(dispatcher, "/admin/settings/routing", "settings-routing")

            reviewer = await page_for("wang.shen")
            await snap(reviewer, "/admin/kb", "kb-list")
            await snap(reviewer, "/admin/kb/SB-001", "kb-entry")
            await snap(reviewer, "/admin/kb/review", "kb-review")
            await snap(reviewer, "/admin/kb/try?q=社保卡掉了怎么办", "kb-hit-test")
        finally:
            await browser.close()
    return saved


async def run(tmp: str, url: str) -> list[Path]:
    db = Database(url)
    try:
        prepared = await prepare(db)
        rasa = web.Application()
        rasa.router.add_post("/webhooks/rest/webhook", fake_rasa_reply)
        async with TestServer(rasa, host="127.0.0.1") as fake_rasa:
            config = Config(database_url=url, rasa_manage=False, var_dir=Path(tmp),
                            embedder="none", rasa_url=str(fake_rasa.make_url("/")).rstrip("/"))
            async with TestServer(create_app(config), host="127.0.0.1", port=free_port()) as server:
                site = str(server.make_url("/")).rstrip("/")
                conv_id = await handoff(site, db)
                return await shoot(site, conv_id, prepared["case"], prepared["spotcheck"])
    finally:
        await db.dispose()


def main() -> None:
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="govchat-shots-") as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/shots.db"
        migrate.upgrade(url)            # alembic runs its own event loop: before ours
        saved = asyncio.run(run(tmp, url))
    for path in saved:
        print(f"{path.relative_to(ROOT)}  {path.stat().st_size // 1024} KB")
    print(f"{len(saved)} screenshots in {time.monotonic() - started:.0f}s")


if __name__ == "__main__":
    main()
