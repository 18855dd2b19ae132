"""The unit desk in a real browser: a handler works a case, and a citizen's script stays text."""
from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.admin.conftest import PASSWORD, UNIT, add_user, console_app
from tests.admin.test_case_pages import a_case, case_named
from tests.conftest import free_port
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
async def site(db):
    async with TestServer(console_app(db), host="127.0.0.1", port=free_port()) as server:
        yield str(server.make_url("/")).rstrip("/")


async def test_a_unit_handler_opens_a_case_and_replies_and_a_citizens_script_stays_text(site, db):
    from playwright.async_api import async_playwright

    case = await a_case(db, UNIT, status="in_progress",
                        description=f"饭店油烟扰民 {PAYLOAD} 电话13812345678")
    await add_user(db, "zhao", "unit_handler", display_name="赵敏")
    dialogs, problems = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context(viewport={"width": 1280, "height": 800})).new_page()
            page.set_default_timeout(8000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: problems.append(str(e)))

            await page.goto(site + "/admin/cases")
            await page.fill("input[name=username]", "zhao")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(site + "/admin/cases")
            row = page.locator(f'tr[data-number="{case.number}"]')
            assert PAYLOAD[:17] in await row.inner_text() and "13812345678" not in await page.content()
            assert await page.locator('.nav a[data-route="unit-cases"]').count() == 1

            await row.locator("a").click()
            await page.wait_for_url(f"{site}/admin/cases/{case.number}")
            description = await page.locator("#description").inner_text()
            assert PAYLOAD in description and "13812345678" not in description
            assert await page.locator("#description script, #description img").count() == 0
            assert await page.locator("#case-status").inner_text() == "办理中"

            await page.fill("#reply-form textarea[name=text]", "已责令饭店加装油烟净化器，请您监督。")
            await page.click("#reply-form button[type=submit]")
            await page.wait_for_url(f"{site}/admin/cases/{case.number}")
            assert await page.locator("#case-status").inner_text() == "已答复"
            assert "答复已发送给群众" in await page.locator(".flash").inner_text()
            assert "已责令饭店加装油烟净化器" in await page.locator("#reply-text").inner_text()
            assert await page.locator("#trail").get_by_text("答复").count() >= 1
        finally:
            await browser.close()
    assert dialogs == [] and problems == []
    assert (await case_named(db, case.number)).status == "replied"
