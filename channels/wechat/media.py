"""Evidence files: an image or video a citizen sent with a case, fetched from WeChat and kept.

WeChat keeps a message's media (临时素材) for 3 days only, and a case lasts longer. So for
every case attachment with a MediaId, a worker in each server instance downloads the file
(`/cgi-bin/media/get`) into `var/media/<case id>/<attachment id>.<ext>`. Attempts are claimed
in the database, so two instances never fetch the same file twice at once; a file WeChat no
longer has (40007 invalid media_id) is recorded lost for staff to see, never retried.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web

from bot import api as bot_api
from casework import api as casework
from channels.wechat import accounts
from channels.wechat.api_client import TOKEN_REJECTED, ApiError, TooLarge, Unreachable, WechatApi
from channels.wechat.tokens import TokenCache
from server.appkeys import CONFIG, DB
from server.config import Config
from server.db import Database, utcnow

log = logging.getLogger(__name__)

CHANNEL = "wechat"
MAX_BYTES = 20 * 1024 * 1024      # WeChat's own limits: images 10 MB, videos 10 MB
POLL_SECONDS = 10
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp",
              "video/mp4": ".mp4", "audio/amr": ".amr", "audio/mpeg": ".mp3"}


def media_dir(config: Config) -> Path:
    return config.var_dir / "media"


class MediaFetcher:
    def __init__(self, db: Database, config: Config, api: WechatApi) -> None:
        self.db = db
        self.config = config
        self.api = api
        self.tokens = TokenCache(db, api)
        self.root = media_dir(config)

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("wechat media: fetch round failed; trying again later")
            await asyncio.sleep(POLL_SECONDS)

    async def run_once(self) -> int:
        """Fetch what is waiting; returns how many files were kept."""
        async with self.db.session() as session:
            waiting = await casework.evidence_to_fetch(session, utcnow())
        kept = 0
        for item in waiting:
            async with self.db.session() as session, session.begin():
                if not await casework.claim_fetch(session, item):
                    continue        # another instance took this attempt
            kept += await self._fetch(item)
        return kept

    async def _fetch(self, item: casework.ToFetch) -> int:
        try:
            account = await self._account(item.conversation_id)
            if account is None:
                return await self._lost(item, "not a WeChat conversation or no such account")
            body, content_type = await self._get(account, item.media_id)
        except ApiError as exc:
            # 40007: WeChat no longer has it (over 3 days) or never did. Others may pass later.
            if exc.errcode == 40007 or item.attempts + 1 >= casework.FETCH_ATTEMPTS:
                return await self._lost(item, f"WeChat: {exc}")
            log.warning("wechat media %s: %s; will try again", item.attachment_id, exc)
            return 0
        except TooLarge as exc:
            return await self._lost(item, f"file too large ({exc})")
        except Unreachable as exc:
            if item.attempts + 1 >= casework.FETCH_ATTEMPTS:
                return await self._lost(item, f"WeChat unreachable: {exc}")
            log.warning("wechat media %s: %s; will try again", item.attachment_id, exc)
            return 0
        relative = f"{item.case_id}/{item.attachment_id}{EXTENSIONS.get(content_type, '.bin')}"
        await asyncio.to_thread(_write, self.root / relative, body)
        async with self.db.session() as session, session.begin():
            await casework.evidence_stored(session, item.attachment_id, path=relative,
                                           content_type=content_type, size=len(body))
        return 1

    async def _account(self, conversation_id: int | None):
        if conversation_id is None:
            return None
        async with self.db.session() as session:
            conv = await bot_api.get_conversation(session, conversation_id)
        if conv is None or conv.channel != CHANNEL:
            return None
        account = await accounts.find(self.db, self.config, conv.account)
        return account if account is not None and account.app_secret else None

    async def _get(self, account, media_id: str) -> tuple[bytes, str]:
        token = await self.tokens.get(account)
        try:
            return await self.api.get_media(token, media_id, MAX_BYTES)
        except ApiError as exc:
            if exc.errcode not in TOKEN_REJECTED:
                raise
            token = await self.tokens.get(account, rejected=token)
            return await self.api.get_media(token, media_id, MAX_BYTES)

    async def _lost(self, item: casework.ToFetch, reason: str) -> int:
        log.warning("wechat media %s for case %s not kept: %s", item.attachment_id, item.case_id,
                    reason)
        async with self.db.session() as session, session.begin():
            await casework.evidence_lost(session, item.attachment_id, reason)
        return 0


def _write(path: Path, body: bytes) -> None:
    """Whole or not at all: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(body)
    os.replace(partial, path)


FETCHER = web.AppKey("wechat_media", MediaFetcher)


async def fetcher_context(app: web.Application) -> AsyncIterator[None]:
    http = aiohttp.ClientSession()
    app[FETCHER] = MediaFetcher(app[DB], app[CONFIG], WechatApi(app[CONFIG].wechat_api_base, http))
    task = asyncio.create_task(app[FETCHER].run(), name="wechat-media")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await http.close()
