"""The consoles in a real browser: sign in, the role's nav, and deactivation felt on the next click."""
from __future__ import annotations

import pytest

from tests.admin.conftest import PASSWORD, add_user, console_app
from tests.browser import needs_chromium, new_page, serving, sign_in
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium


@pytest.fixture
async def site(db):
    async with serving(console_app(db)) as url:
        yield url


async def test_a_deactivated_account_is_signed_out_on_its_next_click(site, db):
    from playwright.async_api import async_playwright

    await add_user(db, "boss", "admin", display_name="王主任")
    await add_user(db, "li.na", "agent", display_name="李娜")
    problems = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            admin = await new_page(browser, problems)
            staff = await new_page(browser, problems, {"width": 820, "height": 1180})

            await sign_in(admin, site, "/admin/", "boss")
            assert await admin.locator(".user-name").inner_text() == "王主任"
            assert await admin.locator(".user-role").inner_text() == "管理员"
            assert await admin.locator('.nav a[data-route="admin-users"]').count() == 1
            assert await admin.locator('.nav [data-route="audit-log"]').count() == 1   # link or 即将上线

            await sign_in(staff, site, "/admin/", "li.na")
            assert await staff.locator(".user-role").inner_text() == "客服"
            assert await staff.locator('.nav [data-route="admin-users"]').count() == 0
            assert await staff.locator('.nav [data-route="dispatch-desk"]').count() == 0
            assert await staff.locator('.nav [data-route="staff-inbox"]').count() == 1

            # The admin deactivates li.na, confirming the question admin.js asks.
            await admin.click('.nav a[data-route="admin-users"]')
            admin.once("dialog", lambda dialog: dialog.accept())
            await admin.click('tr[data-username="li.na"] button.danger')
            await admin.locator(".flash", has_text="账号 li.na 已停用").wait_for(timeout=10000)

            # li.na's open page: the next click lands on the login page, with the reason.
            await staff.click('.nav a[data-route="admin-password"]')
            await staff.wait_for_url("**/admin/login?m=expired")
            assert await staff.locator("#login-notice").inner_text() == "登录已失效，请重新登录"
            await staff.fill("input[name=username]", "li.na")
            await staff.fill("input[name=password]", PASSWORD)
            await staff.click("button[type=submit]")
            assert await staff.locator("#login-error").inner_text() == "您的账号已停用，请联系管理员"

            # Logging out is a POST that carries the CSRF token from the page.
            await admin.click(".logout button")
            await admin.wait_for_url("**/admin/login?m=logout")
        finally:
            await browser.close()
    # The strict CSP refused nothing: no inline script or style slipped into a page.
    assert [p for p in problems if "401" not in p] == []
