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
    """An account cannot be added as given; the message says why, in plain words, and `zh` in
    Chinese for the settings page."""

    def __init__(self, message: str, zh: str = "") -> None:
        super().__init__(message)
        self.zh = zh or message


@dataclass(frozen=True)
class Account:
    name: str
    app_id: str
    token: str = field(repr=False)
    app_secret: str = field(default="", repr=False)
    encoding_aes_key: str | None = field(default=None, repr=False)
    mode: str = PLAINTEXT


MODE_NAMES = {PLAINTEXT: "明文模式", "compatible": "兼容模式", "safe": "安全模式"}
SECRETS = ("app_secret", "token", "encoding_aes_key")      # never shown back once stored


def validate(name: str, app_id: str, token: str, encoding_aes_key: str | None, mode: str) -> None:
    if not _NAME.match(name):
        raise AccountError("name: 1-64 of a-z 0-9 _ -, starting with a letter or digit",
                           "名称须为1至64个小写字母、数字、_ 或 -，以字母或数字开头")
    if not app_id or len(app_id) > 64:
        raise AccountError("the app id is required", "请填写 AppID（64个字符以内）")
    if not _TOKEN.match(token):
        raise AccountError("token: 3-32 letters or digits (as WeChat requires)",
                           "令牌（Token）须为3至32个英文字母或数字（微信的要求）")
    if mode not in MODES:
        raise AccountError(f"mode must be one of {', '.join(MODES)}", "请选择消息加解密方式")
    if mode != PLAINTEXT and not encoding_aes_key:
        raise AccountError(f"{mode} mode needs the EncodingAESKey (--aes-key)",
                           f"{MODE_NAMES[mode]}需要填写 EncodingAESKey（43个字符）")
    if encoding_aes_key:
        try:
            aes_key(encoding_aes_key)
        except CryptoError as exc:
            raise AccountError(str(exc), "EncodingAESKey 须为43个字符的微信消息加解密密钥"
                               f"（现为{len(encoding_aes_key)}个字符）") from None


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
    if not app_secret or len(app_secret) > 128:
        raise AccountError("the app secret is required", "请填写 AppSecret（128个字符以内）")
    taken = AccountError(f"an account named {name!r} exists already", f"名称 {name} 已被使用")
    if await session.scalar(select(WechatAccount.id).where(WechatAccount.name == name)):
        raise taken
    row = WechatAccount(name=name, app_id=app_id, app_secret=app_secret, token=token,
                        encoding_aes_key=encoding_aes_key or None, mode=mode)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:      # added by someone else a moment ago
        raise taken from None
    return _account(row)


def secret_hint(value: str | None) -> str:
    """How the settings page shows a stored secret: at most its last 4 characters."""
    if not value:
        return "未设置"
    return f"已设置（末4位 ••••{value[-4:]}）" if len(value) >= 12 else "已设置"


def describe(row: WechatAccount) -> dict:
    """The account for the audit log: what is not secret, and only whether each secret is set."""
    return {"name": row.name, "app_id": row.app_id, "mode": row.mode,
            **{f"{key}_set": bool(getattr(row, key)) for key in SECRETS}}


async def update(session: AsyncSession, account_id: int, *, app_id: str, mode: str,
                 app_secret: str = "", token: str = "", encoding_aes_key: str = "",
                 ) -> tuple[WechatAccount, list[str]]:
    """Change an account; a blank secret keeps the stored one. Returns the row and the names of
    the secrets that changed (for the audit log, which never holds their values)."""
    row = await session.get(WechatAccount, account_id)
    if row is None:
        raise AccountError(f"no account {account_id}", "该公众号不存在")
    given = {"app_secret": app_secret, "token": token, "encoding_aes_key": encoding_aes_key}
    new = {key: value or getattr(row, key) for key, value in given.items()}
    if mode == PLAINTEXT and not encoding_aes_key:
        new["encoding_aes_key"] = row.encoding_aes_key      # kept, unused in plaintext mode
    validate(row.name, app_id, new["token"] or "", new["encoding_aes_key"], mode)
    if len(new["app_secret"] or "") > 128:
        raise AccountError("the app secret is too long", "AppSecret 不能超过128个字符")
    changed = [key for key in SECRETS if new[key] != getattr(row, key)]
    row.app_id, row.mode = app_id, mode
    for key in SECRETS:
        setattr(row, key, new[key])
    await session.flush()
    return row, changed


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
