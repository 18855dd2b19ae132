"""Staff accounts: creation with a checked password, and the audit trail of changes."""
from __future__ import annotations

import re
import secrets
import string

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.models import ROLES, AuditEntry, User

_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD = 10


class AccountError(ValueError):
    """A staff-facing problem with an account request, in plain words."""


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must have at least {MIN_PASSWORD} characters")
    if not (re.search(r"[A-Za-z]", password) and re.search(r"\d", password)):
        raise AccountError("the password must contain both letters and digits")


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
        raise AccountError("the username must be 2–64 letters, digits, '_', '.' or '-'")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if role == "unit_handler" and not unit_id:
        raise AccountError("a unit_handler account needs --unit")
    if await session.scalar(select(User).where(User.username == username)):
        raise AccountError(f"the username {username!r} is taken")
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
