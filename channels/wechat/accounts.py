"""Accounts: the table (managed by `govchat wechat account …`) plus the default from env."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.wechat.crypto import CryptoError, aes_key
from channels.wechat.models import MODES, PLAINTEXT, WechatAccount
from server.config import Config
from server.db import Database

DEFAULT = "default"        # the account behind plain /wechat
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_TOKEN = re.compile(r"^[A-Za-z0-9]{3,32}$")    # WeChat's own rule for the token


class AccountError(ValueError):
    """An account cannot be added as given; the message says why, in plain words."""


@dataclass(frozen=True)
class Account:
    name: str
    app_id: str
    token: str = field(repr=False)
    app_secret: str = field(default="", repr=False)
    encoding_aes_key: str | None = field(default=None, repr=False)
    mode: str = PLAINTEXT


def validate(name: str, app_id: str, token: str, encoding_aes_key: str | None, mode: str) -> None:
    if not _NAME.match(name):
        raise AccountError("name: 1-64 of a-z 0-9 _ -, starting with a letter or digit")
    if not app_id:
        raise AccountError("the app id is required")
    if not _TOKEN.match(token):
        raise AccountError("token: 3-32 letters or digits (as WeChat requires)")
    if mode not in MODES:
        raise AccountError(f"mode must be one of {', '.join(MODES)}")
    if mode != PLAINTEXT and not encoding_aes_key:
        raise AccountError(f"{mode} mode needs the EncodingAESKey (--aes-key)")
    if encoding_aes_key:
        try:
            aes_key(encoding_aes_key)
        except CryptoError as exc:
            raise AccountError(str(exc)) from None


def from_config(config: Config) -> Account | None:
    """The default account from WECHAT_* settings, if they name one."""
    if not (config.wechat_app_id and config.wechat_token):
        return None
    return Account(DEFAULT, config.wechat_app_id, config.wechat_token, config.wechat_app_secret,
                   config.wechat_encoding_aes_key, config.wechat_mode)


async def add(session: AsyncSession, name: str, *, app_id: str, app_secret: str, token: str,
              encoding_aes_key: str | None = None, mode: str | None = None) -> Account:
    mode = mode or ("safe" if encoding_aes_key else PLAINTEXT)
    validate(name, app_id, token, encoding_aes_key, mode)
    if await session.scalar(select(WechatAccount.id).where(WechatAccount.name == name)):
        raise AccountError(f"an account named {name!r} exists already")
    row = WechatAccount(name=name, app_id=app_id, app_secret=app_secret, token=token,
                        encoding_aes_key=encoding_aes_key or None, mode=mode)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:      # added by someone else a moment ago
        raise AccountError(f"an account named {name!r} exists already") from None
    return _account(row)


async def remove(session: AsyncSession, name: str) -> bool:
    result = await session.execute(delete(WechatAccount).where(WechatAccount.name == name))
    return result.rowcount > 0


async def all_rows(session: AsyncSession) -> list[WechatAccount]:
    return list(await session.scalars(select(WechatAccount).order_by(WechatAccount.name)))


async def find(db: Database, config: Config, name: str) -> Account | None:
    """The account to serve at /wechat/{name}; the env account, if set, is the default."""
    if name == DEFAULT and (env := from_config(config)) is not None:
        return env
    async with db.session() as session:
        row = await session.scalar(select(WechatAccount).where(WechatAccount.name == name))
    return _account(row) if row else None


def _account(row: WechatAccount) -> Account:
    return Account(row.name, row.app_id, row.token, row.app_secret, row.encoding_aes_key, row.mode)
