"""What the tests in Chromium share: the skip without Chromium, an app served on loopback (alone,
or the whole server with a fake Rasa), a page that collects script errors, signing in."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from server.app import create_app
from server.config import Config
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


@contextlib.asynccontextmanager
async def serving_with_a_fake_rasa(db, var_dir: Path, says: str) -> AsyncIterator[str]:
    """The whole server (chat, consoles) on loopback, with a fake Rasa that answers `says` to
    whatever it is told; yields the base URL."""
    async def webhook(request):
        return web.json_response([{"text": says}])

    rasa = web.Application()
    rasa.router.add_post("/webhooks/rest/webhook", webhook)
    async with TestServer(rasa, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=var_dir, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"))
        async with serving(create_app(config)) as url:
            yield url


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
