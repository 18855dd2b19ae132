"""季度抽查 in a real browser: an admin draws a sample, opens an item and records a finding."""
from __future__ import annotations

import pytest

from tests.admin.conftest import add_user, console_app
from tests.admin.test_spotcheck_pages import quarter_of_work
from tests.browser import needs_chromium, new_page, serving, sign_in
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium


@pytest.fixture
async def site(db):
    async with serving(console_app(db)) as url:
        yield url


async def test_an_admin_draws_opens_an_item_and_records_a_finding(site, db):
    from playwright.async_api import async_playwright

    await quarter_of_work(db)                     # 3 cases of 人社局 and 1 web chat in 2026Q3
    await add_user(db, "boss", "admin", display_name="王督查")
    dialogs, problems = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await new_page(browser, problems)
            page.set_default_timeout(8000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            await sign_in(page, site, "/admin/spotchecks", "boss")
            assert await page.locator('.nav a[data-route="spotcheck-list"]').count() == 1

            await page.fill("#draw-form input[name=quarter]", "2026Q3")
            await page.fill("#draw-form input[name=per_unit]", "2")
            await page.fill("#draw-form input[name=seed]", "77")
            await page.click("#draw-form button[type=submit]")
            await page.wait_for_url(site + "/admin/spotchecks/*")
            assert "随机种子 77" in await page.locator(".flash").inner_text()
            assert await page.locator("#progress").inner_text() == "0/3"

            await page.locator("tr[data-item] a").first.click()
            await page.wait_for_url(site + "/admin/spotchecks/*/items/*")
            assert await page.locator("#trail").get_by_text("派单").count() >= 1
            assert "13812345678" not in await page.content()
            await page.check("#finding-form input[value=ok]")
            await page.fill("#finding-form textarea[name=comment]", "答复及时，依据充分")
            await page.click("#finding-form button[type=submit]")
            await page.wait_for_url(site + "/admin/spotchecks/*/items/*")
            assert "已记录检查结论：合格" in await page.locator(".flash").inner_text()
            assert (await page.locator("#finding").inner_text()).startswith("合格")

            await page.click("text=← 2026Q3 季度抽查")
            assert await page.locator("#progress").inner_text() == "1/3"
        finally:
            await browser.close()
    assert dialogs == [] and problems == []
