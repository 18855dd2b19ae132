"""The chat page in a real browser shows a message that arrives later (a unit's reply), once."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.models import Conversation
from server.outbox import build_outbox
from tests.browser import needs_chromium, serving_with_a_fake_rasa
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium

UNIT_REPLY = "您反映的问题已处理完毕，感谢您的监督。"
CASE_NO = "ZJ20261127-0001"


@pytest.fixture
async def site(db, tmp_path):
    """The app on a real loopback port, with a fake Rasa that greets whatever it is told."""
    async with serving_with_a_fake_rasa(db, tmp_path, "您好，请问有什么可以帮您？") as url:
        yield url + "/"


async def test_a_units_reply_appears_on_the_open_page_and_not_again_after_a_reload(site, db):
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})
            await page.goto(site)
            await page.locator("#chat-input").fill("你好")
            await page.locator("#chat-input").press("Enter")
            await page.locator(".msg-bot").nth(1).wait_for(timeout=8000)   # after the welcome

            sender = await page.evaluate("localStorage.getItem('govchat.sender')")
            async with db.session() as session:
                conv = await session.scalar(select(Conversation.id).where(
                    Conversation.channel == "webchat", Conversation.sender == sender))
            await build_outbox(db).send(conv, UNIT_REPLY, source="unit", kind="case",
                                        meta={"case_no": CASE_NO})

            update = page.locator(".msg-update", has_text=UNIT_REPLY)
            await update.wait_for(timeout=8000)            # the page polls every 5 s
            assert await update.locator(".msg-label-text").inner_text() == "单位答复"
            assert await update.locator(".case-no").inner_text() == CASE_NO
            # A locator, not wait_for_function: its polling evaluates a string, which the page's
            # CSP (no 'unsafe-eval') refuses when the first check does not already pass.
            await page.locator("#sr-status", has_text="单位答复").wait_for(state="attached")
            assert await page.locator(".msg-update").count() == 1

            # A reload asks for what came after the last message seen: nothing.
            async with page.expect_response(lambda r: "/api/chat/updates" in r.url) as first_poll:
                await page.reload()
            assert (await (await first_poll.value).json())["messages"] == []
            assert await page.locator(".msg-update").count() == 0

            # What arrives while the citizen is away is shown on their next visit, at once.
            await page.goto("about:blank")
            await build_outbox(db).send(conv, "您的办件已办结。", source="system")
            await page.goto(site)
            notice = page.locator(".msg-update", has_text="您的办件已办结。")
            await notice.wait_for(timeout=4500)   # under the 5 s poll: shown on load
            assert await notice.locator(".msg-label-text").inner_text() == "系统通知"
            assert await page.locator(".msg-update").count() == 1
        finally:
            await browser.close()
