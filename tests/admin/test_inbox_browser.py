"""The staff inbox in a real browser: an agent claims a handed-off web chat and replies, the
citizen's page shows the reply, and a citizen's markup stays text with nothing executed."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from bot import api as bot_api
from bot.models import Conversation
from tests.admin.conftest import add_user
from tests.browser import needs_chromium, new_page, serving_with_a_fake_rasa, sign_in, signed_in_page
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium

PAYLOAD = "<script>alert(1)</script><img src=x onerror=alert(2)>"
REPLY = "您好，我是人工客服李娜，请带身份证到社保中心补办。"


@pytest.fixture
async def site(db, tmp_path):
    async with serving_with_a_fake_rasa(db, tmp_path, "您好，我是智能助手。") as url:
        yield url


async def send(page, text: str) -> None:
    await page.fill("#chat-input", text)
    await page.click("#chat-send")


async def test_an_agent_claims_and_replies_and_the_citizen_sees_it(site, db):
    from playwright.async_api import async_playwright

    await add_user(db, "li.na", "agent", display_name="李娜")
    problems, dialogs = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            agent = await new_page(browser, problems)
            citizen = await (await browser.new_context(viewport={"width": 390, "height": 800})).new_page()
            citizen.on("pageerror", lambda e: problems.append(str(e)))
            for page in (agent, citizen):
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            # The agent signs in and opens the (empty) inbox.
            await sign_in(agent, site, "/admin/inbox", "li.na")
            assert await agent.locator("#inbox-list tr[data-id]").count() == 0

            # The citizen chats, is handed to staff, and writes something that looks like markup.
            await citizen.goto(site + "/")
            await send(citizen, "你好")
            await citizen.locator("#chat-log", has_text="您好，我是智能助手。").wait_for(timeout=10000)
            async with db.session() as session:
                conv_id = await session.scalar(select(Conversation.id))
            assert await bot_api.request_handoff(db, conv_id, bot_api.CITIZEN_REQUEST)
            await send(citizen, PAYLOAD)

            # The list refreshes by itself and shows the markup as text.
            row = agent.locator(f'#inbox-list tr[data-id="{conv_id}"]')
            await row.wait_for(timeout=8000)
            assert (await row.locator(".last").inner_text()).startswith("群众：" + PAYLOAD[:40])
            await row.locator(".last a").click()
            await agent.wait_for_url(f"**/admin/inbox/{conv_id}")
            citizen_texts = await agent.locator(".msg-citizen .text").all_inner_texts()
            assert citizen_texts == ["你好", PAYLOAD]
            assert await agent.locator("#history img").count() == 0

            await agent.click("#claim")
            await agent.locator(".flash", has_text="已接管该会话").wait_for(timeout=10000)
            await agent.click(".canned-phrase >> nth=0")
            assert (await agent.input_value("#reply-text")).startswith("您好，我是人工客服")
            await agent.fill("#reply-text", REPLY)
            await agent.click("#send-reply")
            await agent.locator(".flash", has_text="回复已发送").wait_for(timeout=10000)
            assert await agent.locator(".msg-staff .text").inner_text() == REPLY

            # The citizen's page picks the reply up from /api/chat/updates.
            await citizen.locator("#chat-log", has_text=REPLY).wait_for(timeout=15000)
        finally:
            await browser.close()
    assert dialogs == []
    assert problems == []


async def test_a_new_handoff_appears_in_the_open_list_without_a_reload(site, db, monkeypatch):
    """The list's event stream (admin/live.py) says `changed`; live.js has inbox.js redraw it."""
    from playwright.async_api import async_playwright

    from admin import live
    monkeypatch.setattr(live, "CHECK_EVERY", 0.2)
    await add_user(db, "li.na", "agent")
    problems = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            agent = await signed_in_page(browser, site, "/admin/inbox", "li.na", problems)
            assert await agent.locator("#inbox-list tr[data-id]").count() == 0

            citizen = await (await browser.new_context()).new_page()
            await citizen.goto(site + "/")
            await send(citizen, "我要找人工")
            await citizen.locator("#chat-log", has_text="您好，我是智能助手。").wait_for(timeout=10000)
            async with db.session() as session:
                conv_id = await session.scalar(select(Conversation.id))
            assert await bot_api.request_handoff(db, conv_id, bot_api.CITIZEN_REQUEST)

            # Sooner than the 5 s polling fallback would: the stream brought it.
            row = agent.locator(f'#inbox-list tr[data-id="{conv_id}"]')
            await row.wait_for(timeout=10000)
            assert await row.locator(".owner").inner_text() == "未接管"
            assert await agent.evaluate("window.stillTheSamePage") is True      # no reload
            assert (await agent.locator("#live-note").inner_text()).startswith("已更新 ")
        finally:
            await browser.close()
    assert problems == []
