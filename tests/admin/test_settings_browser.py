"""系统设置 in Chromium: an admin adds a WeChat account with its secrets, and neither the page nor
its forms ever show them again; on a tablet width."""
from __future__ import annotations

import pytest

from tests.admin.conftest import add_user, console_app
from tests.browser import TABLET, needs_chromium, new_page, serving, sign_in
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium

SECRET = "AppSecretValue-0000-9f8e7d6c"
TOKEN = "WxTokenValue2026"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
async def site(db):
    async with serving(console_app(db)) as url:
        yield url


async def test_an_admin_adds_a_wechat_account_and_its_secrets_are_never_shown(site, db):
    from playwright.async_api import async_playwright

    await add_user(db, "boss", "admin")
    problems = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await new_page(browser, problems, TABLET)
            await sign_in(page, site, "/admin/", "boss")
            await page.click('.nav a[data-route="settings-index"]')
            await page.click("text=微信公众号")
            await page.wait_for_url("**/admin/settings/wechat")

            form = page.locator("#wechat-add")
            await form.locator("input[name=name]").fill("nanhu")
            await form.locator("input[name=app_id]").fill("wx00aa11bb22cc33dd")
            await form.locator("select[name=mode]").select_option("safe")
            await form.locator("input[name=app_secret]").fill(SECRET)
            await form.locator("input[name=token]").fill(TOKEN)
            await form.locator("input[name=encoding_aes_key]").fill(AES_KEY)
            await form.locator("button[type=submit]").click()
            await page.locator(".flash", has_text="已添加公众号 nanhu").wait_for(timeout=10000)

            row = page.locator('tr[data-account="nanhu"]')
            assert "/wechat/nanhu" in await row.inner_text()
            assert f"••••{SECRET[-4:]}" in await row.locator(".secrets").inner_text()
            for url in (page.url, None):
                if url is None:
                    await row.locator("a", has_text="编辑").click()
                    await page.wait_for_url("**/admin/settings/wechat/*")
                html = await page.content()
                values = await page.eval_on_selector_all(
                    "input, textarea", "els => els.map(e => e.value).join('\\n')")
                for secret in (SECRET, TOKEN, AES_KEY):
                    assert secret not in html and secret not in values
            # Saving the edit form with the secrets left blank keeps them.
            await page.locator("#wechat-edit button[type=submit]").click()
            await page.locator(".flash", has_text="已保存公众号 nanhu").wait_for(timeout=10000)
            assert "（已更新密钥）" not in await page.locator(".flash").inner_text()
        finally:
            await browser.close()
    assert problems == []

    from sqlalchemy import select

    from channels.wechat.models import WechatAccount
    async with db.session() as session:
        stored = await session.scalar(select(WechatAccount))
    assert (stored.app_secret, stored.token, stored.encoding_aes_key) == (SECRET, TOKEN, AES_KEY)
