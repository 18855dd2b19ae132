"""Staff accounts: creation with a checked password, activation, passwords, and the audit trail.

Every change here is one call in the caller's transaction and writes one audit row with the
state before and after. Messages are English for the CLI; `AccountError.zh` is the console's.
"""
from __future__ import annotations

import re
import secrets
import string

from argon2 import PasswordHasher
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.models import ROLES, AuditEntry, LoginAttempt, StaffSession, User

_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10


class AccountError(ValueError):
    """A staff-facing problem with an account request, in plain words (`zh` for the consoles)."""

    def __init__(self, message: str, zh: str = "") -> None:
        super().__init__(message)
        self.zh = zh or message


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters",
                           f"密码至少需要{MIN_PASSWORD}个字符")
    if not (re.search(r"[A-Za-z]", password) and re.search(r"\d", password)):
        raise AccountError("the password must contain both letters and digits",
                           "密码必须同时包含字母和数字")


def generate_password(length: int = 16) -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        try:
            check_password(password)
            return password
        except AccountError:
            continue


def verify_password(user: User, password: str) -> bool:
    try:
        return _hasher.verify(user.password_hash, password)
    except Exception:
        return False


def audit(session: AsyncSession, actor: str, action: str, target: str = "", **detail) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target, detail=detail))


async def create_user(
    session: AsyncSession, *, username: str, role: str, actor: str,
    password: str | None = None, unit_id: str | None = None, display_name: str = "",
) -> tuple[User, str]:
    """Create an account; returns it with its password (generated when none is given).

    A generated password is one-time: the account must change it at first login.
    """
    if not _USERNAME.match(username):
        raise AccountError("the username must be 2–64 letters, digits, '_', '.' or '-'",
                           "用户名须为2至64个字母、数字或 _ . - 字符")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", "未知的角色")
    if role == "unit_handler" and not unit_id:
        raise AccountError("a unit_handler account needs --unit", "承办人账号必须选择所属单位")
    if await session.scalar(select(User).where(User.username == username)):
        raise AccountError(f"the username {username!r} is taken", f"用户名 {username} 已被使用")
    generated = password is None
    password = generate_password() if generated else password
    check_password(password)
    user = User(username=username, role=role, unit_id=unit_id, display_name=display_name,
                password_hash=_hasher.hash(password), must_change_password=generated)
    session.add(user)
    audit(session, actor, "user.create", username, role=role, unit_id=unit_id)
    await session.flush()
    return user, password


async def has_audit(session: AsyncSession, action: str) -> bool:
    return await session.scalar(select(AuditEntry.id).where(AuditEntry.action == action).limit(1)) is not None


async def count_admins(session: AsyncSession) -> int:
    return await session.scalar(
        select(func.count()).select_from(User).where(User.role == "admin", User.active)) or 0


def hash_password(password: str) -> str:
    return _hasher.hash(password)


async def find_user(session: AsyncSession, username: str) -> User | None:
    return await session.scalar(select(User).where(User.username == username))


async def end_sessions(session: AsyncSession, user_id: int) -> int:
    """Sign the account out everywhere, at once (art. 28); returns how many sessions ended."""
    result = await session.execute(delete(StaffSession).where(StaffSession.user_id == user_id))
    return result.rowcount or 0


async def set_active(session: AsyncSession, user: User, active: bool, *, actor: str) -> None:
    """Deactivate (ending every session) or reactivate an account.

    Nobody deactivates their own account, and the last active admin stays.
    """
    if user.active == active:
        return
    if not active:
        if user.username == actor:
            raise AccountError("an account cannot deactivate itself", "不能停用自己的账号")
        if user.role == "admin" and await count_admins(session) <= 1:
            raise AccountError("the last active admin cannot be deactivated",
                               "不能停用最后一个有效的管理员账号")
    user.active = active
    ended = 0 if active else await end_sessions(session, user.id)
    audit(session, actor, "user.activate" if active else "user.deactivate", user.username,
          before={"active": not active}, after={"active": active}, sessions_ended=ended)
    await session.flush()


async def reset_password(session: AsyncSession, user: User, *, actor: str) -> str:
    """A new one-time password, to be changed at the next login; ends the account's sessions."""
    password = generate_password()
    before = user.must_change_password
    user.password_hash = _hasher.hash(password)
    user.must_change_password = True
    ended = await end_sessions(session, user.id)
    audit(session, actor, "user.password_reset", user.username,
          before={"must_change_password": before}, after={"must_change_password": True},
          sessions_ended=ended)
    await session.flush()
    return password


async def change_password(session: AsyncSession, user: User, current: str, new: str) -> None:
    """The account's own change: the current password, then the policy."""
    if not verify_password(user, current):
        raise AccountError("the current password is wrong", "当前密码不正确")
    check_password(new)
    if verify_password(user, new):
        raise AccountError("the new password must differ from the current one", "新密码不能与当前密码相同")
    before = user.must_change_password
    user.password_hash = _hasher.hash(new)
    user.must_change_password = False
    audit(session, user.username, "password.change", user.username,
          before={"must_change_password": before}, after={"must_change_password": False})
    await session.flush()


async def list_users(session: AsyncSession) -> list[User]:
    return list((await session.scalars(select(User).order_by(User.username))).all())


async def last_logins(session: AsyncSession) -> dict[str, datetime]:
    """Each username's latest successful login."""
    rows = await session.execute(select(LoginAttempt.username, func.max(LoginAttempt.at))
                                 .where(LoginAttempt.ok).group_by(LoginAttempt.username))
    return {name: at for name, at in rows}
