"""统计报表 in a real browser: an admin opens it from the nav, groups by month, sees table and charts."""
from __future__ import annotations

from tests.admin.conftest import add_user
from tests.admin.test_browser import pytestmark, site  # noqa: F401  (Chromium or skip; the server)
from tests.admin.test_report_pages import history_with_handoffs
from tests.browser import new_page, sign_in
from tests.e2e import CHROMIUM, CHROMIUM_ARGS


async def test_an_admin_groups_the_report_by_month_and_sees_table_and_charts(site, db):
    from playwright.async_api import async_playwright

    await history_with_handoffs(db)
    await add_user(db, "boss", "admin")
    problems = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await new_page(browser, problems)
            page.set_default_timeout(8000)
            await sign_in(page, site, "/admin/", "boss")
            await page.click('.nav a[data-route="report-timeliness"]')
            await page.wait_for_url("**/admin/reports")
            assert await page.locator("h1").inner_text() == "统计报表"
            await page.fill("input[name=from]", "2026-10-01")
            await page.fill("input[name=to]", "2026-11-30")
            await page.select_option("#report-by", "month")
            await page.click("#report-form button[type=submit]")
            await page.wait_for_url("**by=month**")
            first_cells = await page.locator("#report-table tbody td:first-child").all_inner_texts()
            assert first_cells == ["2026-10", "2026-11", "合计"]
            assert await page.locator("#chart-bars svg.chart rect").count() == 2       # a bar a month
            assert await page.locator("#chart-trend svg.chart circle").count() >= 2
            assert await page.locator("#chart-waits svg.chart rect").count() == 7
            box = await page.locator("#chart-bars svg.chart").bounding_box()
            assert box and box["width"] > 600                   # drawn, at the page's width
            assert await page.locator("#report-by").input_value() == "month"
        finally:
            await browser.close()
    assert problems == []
