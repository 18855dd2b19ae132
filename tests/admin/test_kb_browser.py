"""Q&A curation in a real browser: an agent drafts an entry and submits it, a reviewer approves
it, and the bot's index then answers with it."""
from __future__ import annotations

import pytest

from tests.admin.conftest import add_user
from tests.admin.test_kb_pages import kb_app
from tests.browser import needs_chromium, new_page, serving, sign_in
from tests.e2e import CHROMIUM, CHROMIUM_ARGS

pytestmark = needs_chromium

QUESTION = "公积金贷款额度怎么算？"


@pytest.fixture
async def site(db):
    async with serving(kb_app(db)) as url:
        yield url


async def test_an_agent_drafts_a_reviewer_approves_and_the_bot_answers_with_it(site, db):
    from playwright.async_api import async_playwright

    await add_user(db, "author.li", "agent", display_name="李客服")
    await add_user(db, "rev.wang", "reviewer", display_name="王审核")
    dialogs, problems = [], []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            pages = []
            for _ in range(2):
                page = await new_page(browser, problems)
                page.set_default_timeout(8000)
                page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
                pages.append(page)
            author, reviewer = pages

            # The agent: 问答库 in the nav, 问答审核 not; a new entry, saved and submitted.
            await sign_in(author, site, "/admin/kb", "author.li")
            assert await author.locator('.nav a[data-route="kb-list"]').count() == 1
            assert await author.locator('.nav [data-route="kb-review"]').count() == 0
            await author.click("text=新建问答")
            await author.wait_for_url(site + "/admin/kb/new")
            await author.fill("input[name=entry_id]", "GJJ-009")
            await author.fill("input[name=question]", QUESTION)
            await author.fill("textarea[name=similar_questions]", "公积金能贷多少\n公积金贷款最多贷多少")
            await author.fill("textarea[name=answer]", "按缴存余额的15倍计算，单人最高50万元，夫妻最高80万元。")
            await author.fill("input[name=category]", "公积金")
            await author.click('#new-form button[name=submit][value="1"]')
            await author.wait_for_url(site + "/admin/kb/GJJ-009")
            assert "已创建并提交审核" in await author.locator(".flash").inner_text()
            assert await author.locator("#v1 .status").inner_text() == "待审核"

            # The reviewer approves it from 问答审核.
            await sign_in(reviewer, site, "/admin/kb/review", "rev.wang")
            item = reviewer.locator('article[data-entry="GJJ-009"]')
            assert "公积金能贷多少" in await item.locator(".kb-diff").inner_text()
            await item.locator("form.approve button").click()
            await reviewer.wait_for_url(site + "/admin/kb/review")
            assert "GJJ-009 v1 已审核通过并发布" in await reviewer.locator(".flash").inner_text()
            assert await reviewer.locator("#review-empty").count() == 1

            # The bot's index (the same one its consult action searches) answers with it now.
            resp = await reviewer.request.get(site + "/api/kb/search", params={"q": "公积金贷款额度怎么算"})
            found = await resp.json()
            assert found["decision"] == "answer" and found["hits"][0]["id"] == "GJJ-009"

            await author.reload()
            assert await author.locator("#v1 .status").inner_text() == "已发布"
            assert await author.locator("#served").inner_text() == "v1"
        finally:
            await browser.close()
    assert dialogs == [] and problems == []
