"""WeChat's API on loopback, as documented: the access-token endpoint, 客服消息 send, and the
custom menu (create, and read back as get_current_selfmenu_info answers).

It records every call and can be told to misbehave: reject the current token once (40001),
answer an errcode to every send (45015, 45047), fail with HTTP 500 (the first n sends, or
chosen ones), or wait. A menu WeChat would refuse gets WeChat's errcode (40016 …).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class FakeWechatApi:
    apps: dict[str, str]                        # app id → secret
    tokens_issued: list[str] = field(default_factory=list)
    sent: list[dict] = field(default_factory=list)      # accepted sends: touser, content, token
    send_calls: int = 0
    reject_token_once: bool = False             # next send: 40001 and the token is dead
    errcode: int | None = None                  # every send answers this
    http_500: int = 0                           # this many sends answer HTTP 500 first
    http_500_on: set[int] = field(default_factory=set)   # these sends (1, 2 …) answer HTTP 500
    delay: float = 0.0
    menu_bodies: list[str] = field(default_factory=list)    # every menu/create body, as sent
    menus: dict[str, dict] = field(default_factory=dict)    # app id → its accepted menu
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # MediaId → file, type
    media_calls: int = 0
    _valid: dict[str, str] = field(default_factory=dict)     # app id → its one valid token

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/custom/send", self.send)
        app.router.add_post("/cgi-bin/menu/create", self.create_menu)
        app.router.add_get("/cgi-bin/get_current_selfmenu_info", self.current_menu)
        app.router.add_get("/cgi-bin/media/get", self.get_media)
        return app

    async def token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("grant_type") != "client_credential":
            return _error(40002, "invalid grant_type")
        if self.apps.get(q.get("appid", "")) != q.get("secret"):
            return _error(40125, "invalid appsecret")
        token = f"TOKEN-{len(self.tokens_issued) + 1}-{q['appid']}"
        self.tokens_issued.append(token)
        self._valid[q["appid"]] = token      # a new token replaces the app's previous one
        return web.json_response({"access_token": token, "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        self.send_calls += 1
        await asyncio.sleep(self.delay)
        if self.http_500 or self.send_calls in self.http_500_on:
            self.http_500 = max(0, self.http_500 - 1)
            return web.Response(status=500, text="upstream error")
        token = request.query.get("access_token", "")
        if self.reject_token_once:
            self.reject_token_once = False
            self._valid = {k: v for k, v in self._valid.items() if v != token}
        if token not in self._valid.values():
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if self.errcode is not None:
            return _error(self.errcode, "refused")
        body = json.loads(await request.text())
        assert body["msgtype"] == "text", body
        self.sent.append({"touser": body["touser"], "content": body["text"]["content"],
                          "token": token})
        return _error(0, "ok")


    def _app_of(self, token: str) -> str | None:
        if self.reject_token_once:
            self.reject_token_once = False
            self._valid = {k: v for k, v in self._valid.items() if v != token}
        return next((app for app, valid in self._valid.items() if valid == token), None)

    async def create_menu(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode("utf-8")
        self.menu_bodies.append(body)
        app_id = self._app_of(request.query.get("access_token", ""))
        if app_id is None:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        menu = json.loads(body)
        if (errcode := _menu_errcode(menu)) is not None:
            return _error(errcode, "invalid menu")
        self.menus[app_id] = menu
        return _error(0, "ok")

    async def current_menu(self, request: web.Request) -> web.Response:
        app_id = self._app_of(request.query.get("access_token", ""))
        if app_id is None:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        menu = self.menus.get(app_id)
        if menu is None:
            return web.json_response({"is_menu_open": 0})
        # This API wraps sub-buttons in {"list": [...]}, unlike menu/create.
        buttons = [{**b, "sub_button": {"list": b["sub_button"]}} if b.get("sub_button") else b
                   for b in menu["button"]]
        return web.json_response({"is_menu_open": 1, "selfmenu_info": {"button": buttons}})


    async def get_media(self, request: web.Request) -> web.Response:
        """A temporary media file's bytes; 40007 for an id WeChat does not (or no longer) keep."""
        self.media_calls += 1
        if self._app_of(request.query.get("access_token", "")) is None:
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        if self.http_500:
            self.http_500 -= 1
            return web.Response(status=500, text="upstream error")
        found = self.media.get(request.query.get("media_id", ""))
        if found is None:
            return _error(40007, "invalid media_id")
        body, content_type = found
        return web.Response(body=body, content_type=content_type)


def _menu_errcode(menu: dict) -> int | None:
    """WeChat's errcode for a menu it refuses (global return codes 40016–40027)."""
    buttons = menu.get("button") or []
    if not 1 <= len(buttons) <= 3:
        return 40016
    for button in buttons:
        if len(button.get("name", "").encode()) > 16:
            return 40018
        subs = button.get("sub_button") or []
        if len(subs) > 5:
            return 40023
        for sub in subs:
            if len(sub.get("name", "").encode()) > 60:
                return 40025
            if len(sub.get("key", "").encode()) > 128:
                return 40026
        if not subs and len(button.get("key", "").encode()) > 128:
            return 40019
    return None


def _error(errcode: int, errmsg: str) -> web.Response:
    # WeChat answers errors with HTTP 200 and a text/plain JSON body.
    return web.Response(text=json.dumps({"errcode": errcode, "errmsg": errmsg}),
                        content_type="text/plain")


@contextlib.asynccontextmanager
async def serve(apps: dict[str, str]) -> AsyncIterator[tuple[FakeWechatApi, str]]:
    """The fake and its base URL (for WECHAT_API_BASE)."""
    fake = FakeWechatApi(apps)
    async with TestServer(fake.app(), host="127.0.0.1") as server:
        yield fake, str(server.make_url("")).rstrip("/")
