"""Access tokens: one per app id, kept in the database so every instance uses the same one.

Each fetch from WeChat replaces the app's previous token (the old one lives on only a few
minutes), so instances must not fetch on their own: the fetch happens with the token's row
locked (PostgreSQL `FOR UPDATE`), and whoever waited finds the new token and uses it. SQLite
deployments are single-instance; there an in-process lock suffices.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from channels.wechat.accounts import Account
from channels.wechat.api_client import WechatApi
from channels.wechat.models import WechatToken
from server.db import Database, utcnow

REFRESH_BEFORE = timedelta(minutes=5)


class TokenCache:
    def __init__(self, db: Database, api: WechatApi) -> None:
        self.db = db
        self.api = api
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, account: Account, rejected: str | None = None) -> str:
        """A valid token for the account's app.

        `rejected`: WeChat refused this token; fetch a new one unless someone already has.
        Raises `ApiError` / `Unreachable` when WeChat gives none (wrong secret, IP not allowed).
        """
        async with self.db.session() as session:
            row = await session.get(WechatToken, account.app_id)
        if _usable(row, rejected):
            return row.access_token
        async with self._locks.setdefault(account.app_id, asyncio.Lock()):
            await self._ensure_row(account.app_id)
            async with self.db.session() as session, session.begin():
                row = await session.scalar(select(WechatToken).where(
                    WechatToken.app_id == account.app_id).with_for_update())
                if _usable(row, rejected):       # fetched by another worker while we waited
                    return row.access_token
                token, expires_in = await self.api.fetch_token(account.app_id, account.app_secret)
                now = utcnow()
                row.access_token, row.updated_at = token, now
                row.expires_at = now + timedelta(seconds=expires_in)
                return token

    async def _ensure_row(self, app_id: str) -> None:
        """The row to lock; created once per app id."""
        async with self.db.session() as session:
            if await session.get(WechatToken, app_id) is not None:
                return
        try:
            async with self.db.session() as session, session.begin():
                session.add(WechatToken(app_id=app_id))
        except IntegrityError:      # another instance created it a moment ago
            pass


def _usable(row: WechatToken | None, rejected: str | None) -> bool:
    return (row is not None and bool(row.access_token) and row.access_token != rejected
            and row.expires_at is not None and row.expires_at - REFRESH_BEFORE > utcnow())
