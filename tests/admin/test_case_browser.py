"""The unit desk in a real browser: a handler works a case, and a citizen's script stays text."""
from __future__ import annotations

import pytest

from tests.admin.conftest import UNIT, add_user, console_app
from tests.admin.test_case_pages import a_case, case_named
from tests.browser import needs_chromium, new_page, serving, sign_in, signed_in_page
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"


@pytest.fixture
async def site(db):
    async with serving(console_app(db)) as url:
        yield url


async def test_a_unit_handler_opens_a_case_and_replies_and_a_citizens_script_stays_text(site, db):
    from playwright.async_api import async_playwright

    case = await a_case(db, UNIT, status="in_progress",
                        description=f"饭店油烟扰民 {PAYLOAD} 电话13812345678")
    await add_user(db, "zhao", "unit_handler", display_name="赵敏")
    dialogs, problems = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await new_page(browser, problems)
            page.set_default_timeout(8000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            await sign_in(page, site, "/admin/cases", "zhao")
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


async def test_the_dispatch_desk_shows_a_new_case_live_and_never_wipes_a_form_being_typed(
        site, db, monkeypatch):
    from playwright.async_api import async_playwright

    from admin import live
    monkeypatch.setattr(live, "CHECK_EVERY", 0.2)
    first = await a_case(db, "DISPATCH", status="submitted", seq=1)
    await add_user(db, "fen", "dispatcher")
    problems = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await signed_in_page(browser, site, "/admin/dispatch", "fen", problems)

            second = await a_case(db, "DISPATCH", status="submitted", seq=2)
            await page.locator(f'#queue-submitted tr[data-number="{second.number}"]').wait_for(timeout=10000)
            assert (await page.locator("#live-note").inner_text()).startswith("已更新 ")

            # A reason half typed stays; the page offers a reload instead.
            reason = page.locator(f'tr[data-number="{first.number}"] input[name=reason]')
            await reason.fill("属住建局")
            third = await a_case(db, "DISPATCH", status="submitted", seq=3)
            await page.locator("#live-note", has_text="列表有更新").wait_for(timeout=10000)
            assert await reason.input_value() == "属住建局"
            assert await page.locator(f'tr[data-number="{third.number}"]').count() == 0
            assert await page.evaluate("window.stillTheSamePage") is True
        finally:
            await browser.close()
    assert problems == []
