"""The calls govchat makes to WeChat's API: fetch an access token, send a 客服消息, push and
read the custom menu (自定义菜单).

WeChat answers HTTP 200 with `{"errcode": …, "errmsg": …}` for its own errors; those become
`ApiError`. Anything that says nothing about the request (5xx, timeouts, broken connections,
a body that is not JSON) becomes `Unreachable`: worth trying again later.
"""
from __future__ import annotations

import asyncio
import json

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=10)
MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=60)
# The token WeChat was given is no longer valid (expired, replaced by a newer fetch, malformed).
TOKEN_REJECTED = frozenset({40001, 40014, 42001})
WINDOW_CLOSED = 45015      # more than 48 hours since the citizen's last message
QUOTA_EXCEEDED = 45047     # too many customer-service messages since the citizen's last message


class ApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class Unreachable(Exception):
    """No usable answer from WeChat; the message may be tried again."""


class WechatApi:
    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def fetch_token(self, app_id: str, secret: str) -> tuple[str, int]:
        """A fresh access token and its lifetime in seconds (7200 today)."""
        body = await self._call("GET", "/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": app_id, "secret": secret})
        try:
            return str(body["access_token"]), int(body.get("expires_in", 7200))
        except (KeyError, ValueError) as exc:
            raise Unreachable(f"token answer without access_token: {exc}") from None

    async def send_text(self, access_token: str, openid: str, content: str) -> None:
        payload = {"touser": openid, "msgtype": "text", "text": {"content": content}}
        # Raw UTF-8 as WeChat's own samples send it, not \uXXXX escapes.
        await self._call("POST", "/cgi-bin/message/custom/send",
                         params={"access_token": access_token},
                         data=json.dumps(payload, ensure_ascii=False).encode(),
                         headers={"Content-Type": "application/json; charset=utf-8"})

    async def create_menu(self, access_token: str, menu: dict) -> None:
        """Replace the account's custom menu with `menu` ({"button": [...]})."""
        await self._call("POST", "/cgi-bin/menu/create", params={"access_token": access_token},
                         data=json.dumps(menu, ensure_ascii=False).encode(),
                         headers={"Content-Type": "application/json; charset=utf-8"})

    async def current_menu(self, access_token: str) -> dict:
        """The menu the account shows now, made in the console or through the API."""
        return await self._call("GET", "/cgi-bin/get_current_selfmenu_info",
                                params={"access_token": access_token})

    async def get_media(self, access_token: str, media_id: str, max_bytes: int) -> tuple[bytes, str]:
        """A temporary media file (临时素材) and its content type. WeChat answers an image with
        its bytes, a video with JSON naming a `video_url`, an error with JSON."""
        try:
            async with self.http.get(self.base_url + "/cgi-bin/media/get", timeout=MEDIA_TIMEOUT,
                                     params={"access_token": access_token, "media_id": media_id},
                                     ) as resp:
                if resp.status != 200:
                    raise Unreachable(f"HTTP {resp.status}")
                content_type = resp.content_type
                body = await _read_capped(resp, max_bytes)
            if content_type in ("application/json", "text/plain"):
                answer = json.loads(body)
                if answer.get("errcode"):
                    raise ApiError(int(answer["errcode"]), str(answer.get("errmsg", "")))
                if not answer.get("video_url"):
                    raise Unreachable("media answer without a file or a video_url")
                async with self.http.get(answer["video_url"], timeout=MEDIA_TIMEOUT) as resp:
                    if resp.status != 200:
                        raise Unreachable(f"video HTTP {resp.status}")
                    return await _read_capped(resp, max_bytes), resp.content_type
            return body, content_type
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None

    async def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            async with self.http.request(method, self.base_url + path, timeout=TIMEOUT,
                                         **kwargs) as resp:
                if resp.status != 200:
                    raise Unreachable(f"HTTP {resp.status}")
                body = await resp.json(content_type=None)   # WeChat often says text/plain
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise Unreachable(f"{type(exc).__name__}: {exc}".rstrip(": ")) from None
        if not isinstance(body, dict):
            raise Unreachable("answer is not a JSON object")
        errcode = body.get("errcode") or 0
        if errcode != 0:
            raise ApiError(int(errcode), str(body.get("errmsg", "")))
        return body


class TooLarge(Exception):
    """A media file over the size govchat keeps."""


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise TooLarge(f"{resp.content_length} bytes")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > max_bytes:
            raise TooLarge(f"over {max_bytes} bytes")
    return bytes(body)
