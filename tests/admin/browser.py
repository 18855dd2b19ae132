"""What the console tests in Chromium share: the skip without Chromium, an app served on loopback,
a page that collects script errors, and signing in through the login form."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.admin.conftest import PASSWORD
from tests.conftest import free_port
from tests.e2e import CHROMIUM

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)")

LAPTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """The app on a free loopback port; yields its base URL."""
    async with TestServer(app, host="127.0.0.1", port=free_port()) as server:
        yield str(server.make_url("/")).rstrip("/")


async def new_page(browser, problems: list, viewport: dict = LAPTOP):
    """A page in its own context (its own cookies); script errors and CSP refusals go to
    `problems`."""
    page = await (await browser.new_context(viewport=viewport)).new_page()
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    return page


async def sign_in(page, site: str, path: str, username: str) -> None:
    """Open `path`, be sent to the login form, sign in, and land back on `path`."""
    await page.goto(site + path)
    assert "/admin/login" in page.url
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(site + path)


async def signed_in_page(browser, site: str, path: str, username: str, problems: list,
                         viewport: dict = LAPTOP):
    page = await new_page(browser, problems, viewport)
    await sign_in(page, site, path, username)
    await page.evaluate("window.stillTheSamePage = true")      # gone if the page reloads
    return page
