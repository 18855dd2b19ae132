"""Staff sign-in: server-side sessions, login throttling, CSRF, and the guard on every /admin page.

The cookie `govchat_staff` holds a random token; the database keeps only its SHA-256 (a leaked
table opens no session). `admin_middleware` runs for every path under /admin: it finds the
session, refuses a deactivated account, checks the CSRF token on every state-changing request,
then asks admin/permissions.py whether the user's role may open the matched route — all before
the handler, which gets `request["user"]` and `request["staff_session"]`. Pages render with
`render(request, "x.html", {...})`, which hands every template `user`, `csrf_token`, `nav` and
the flash messages.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web
from sqlalchemy import delete, func, select, update

from admin import api
from admin.models import LoginAttempt, StaffSession, User
from admin.permissions import BEFORE_PASSWORD_CHANGE, ROLE_NAMES, RULES, is_public, may_open, nav_for
from server.appkeys import CONFIG, DB
from server.db import utcnow

log = logging.getLogger(__name__)

COOKIE = "govchat_staff"
LIFETIME = timedelta(hours=12)          # absolute: signed in at 8:00, signed out by 20:00
TOUCH_EVERY = timedelta(seconds=30)     # last_seen_at is written at most this often
WINDOW = timedelta(minutes=15)          # failures are counted over this window
LOCK = timedelta(minutes=15)            # how long a locked username stays locked
USER_FAILURES = 5
IP_FAILURES = 20
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

TEMPLATES = web.AppKey("admin_templates", jinja2.Environment)
TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"

# Admin pages load only their own files: no inline script or style, no framing.
# connect-src: fetch() and the live queues' EventSource reach this origin only.
ADMIN_CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; form-action 'self'; base-uri 'none'; "
             "frame-ancestors 'none'")

BAD_LOGIN = "用户名或密码错误"
LOCKED = "登录失败次数过多，请15分钟后再试"
INACTIVE = "您的账号已停用，请联系管理员"
FORBIDDEN = "您没有权限访问此页面"
UNSTORABLE = "提交的内容包含无法保存的字符（空字符 \\0），请删除后重试。"
# Why the login page is shown; the code travels in the URL, the words stay here.
LOGIN_NOTICES = {
    # A session that is gone: timed out, or ended by deactivation or a password reset.
    "expired": "登录已失效，请重新登录",
    "inactive": INACTIVE,
    "logout": "您已安全退出",
    "login": "请先登录",
}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_ip(request: web.Request) -> str:
    if request.app[CONFIG].trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "")
        if forwarded:
            return forwarded.split(",")[-1].strip()[:64]   # the address our proxy saw
    return (request.remote or "")[:64]


def is_https(request: web.Request) -> bool:
    if request.secure:
        return True
    return (request.app[CONFIG].trust_proxy
            and request.headers.get("X-Forwarded-Proto", "").lower() == "https")


def set_session_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    response.set_cookie(COOKIE, token, path="/admin", httponly=True, samesite="Lax",
                        secure=is_https(request) or None)


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(COOKIE, path="/admin")


# ---------------------------------------------------------------- login and throttling

@functools.lru_cache(maxsize=1)
def _dummy_user() -> User:
    """Verified against when the username is unknown, so that both take as long."""
    return User(username="", password_hash=api.hash_password(secrets.token_hex(16)))


async def is_locked(session, username: str, ip: str, now: datetime) -> bool:
    """5 failures for a username within 15 minutes lock it for 15 minutes from the 5th;
    20 failures from one address within 15 minutes refuse that address. A success resets."""
    last_ok = await session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.username == username, LoginAttempt.ok))
    since = now - WINDOW - LOCK
    if last_ok is not None and last_ok > since:
        since = last_ok
    failures = list(await session.scalars(
        select(LoginAttempt.at).where(LoginAttempt.username == username, ~LoginAttempt.ok,
                                      LoginAttempt.at > since).order_by(LoginAttempt.at)))
    n = USER_FAILURES
    for first, last in zip(failures, failures[n - 1:]):
        if last - first <= WINDOW and now < last + LOCK:
            return True
    from_ip = await session.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.ip == ip, ~LoginAttempt.ok, LoginAttempt.at > now - WINDOW))
    return (from_ip or 0) >= IP_FAILURES


class LoginRefused(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


async def log_in(request: web.Request, username: str, password: str) -> tuple[User, str]:
    """Check the credentials under the throttle; returns the user and a new session's token.

    Raises LoginRefused with the Chinese message. Every outcome is audited.
    """
    username = username.strip()[:64]
    ip, now = client_ip(request), utcnow()
    db = request.app[DB]
    # Every outcome is committed before the refusal is raised: the attempt must count.
    refusal = None
    async with db.session() as session, session.begin():
        if await is_locked(session, username, ip, now):
            api.audit(session, username or "-", "login.refused", username, ip=ip, reason="locked")
            refusal = LoginRefused(LOCKED, 429)
        else:
            user = await api.find_user(session, username) if username else None
            right = await asyncio.to_thread(api.verify_password, user or _dummy_user(), password)
            ok = right and user is not None and user.active
            session.add(LoginAttempt(username=username, ip=ip, at=now, ok=ok))
            if ok:
                token = await start_session(session, user, request, now)
                api.audit(session, username, "login.ok", username, ip=ip)
            else:
                reason = ("unknown user" if user is None else "wrong password" if not right
                          else "inactive")
                api.audit(session, username or "-", "login.failed", username, ip=ip, reason=reason)
                await session.flush()
                if await is_locked(session, username, ip, now):
                    api.audit(session, "system", "login.locked", username, ip=ip,
                              until=(now + LOCK).isoformat())
                    refusal = LoginRefused(LOCKED, 429)
                else:
                    # Only someone who knows the password learns that the account is deactivated.
                    refusal = LoginRefused(INACTIVE if reason == "inactive" else BAD_LOGIN, 401)
    if refusal is not None:
        raise refusal
    return user, token


async def start_session(session, user: User, request: web.Request, now: datetime) -> str:
    """A fresh session for `user`; whatever session the request came with is ended (fixation)."""
    old = request.cookies.get(COOKIE)
    if old:
        await session.execute(delete(StaffSession).where(StaffSession.id == hash_token(old)))
    # Sessions past their lifetime are swept here, so the table never outgrows a day of logins.
    await session.execute(delete(StaffSession).where(StaffSession.expires_at < now))
    token = secrets.token_urlsafe(32)
    session.add(StaffSession(
        id=hash_token(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
        created_at=now, last_seen_at=now, expires_at=now + LIFETIME, ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:256], flash=[]))
    return token


async def log_out(request: web.Request) -> None:
    db, staff = request.app[DB], request["staff_session"]
    async with db.session() as session, session.begin():
        await session.execute(delete(StaffSession).where(StaffSession.id == staff.id))
        api.audit(session, request["user"].username, "logout", request["user"].username,
                  ip=client_ip(request))


async def end_other_sessions(request: web.Request) -> None:
    """After a password change: every other browser of this account is signed out."""
    db, staff = request.app[DB], request["staff_session"]
    async with db.session() as session, session.begin():
        await session.execute(delete(StaffSession).where(
            StaffSession.user_id == staff.user_id, StaffSession.id != staff.id))


# ---------------------------------------------------------------- the guard

async def _load(request: web.Request) -> tuple[StaffSession | None, User | None, str]:
    """The request's session and user, or (None, None, why) — why is a LOGIN_NOTICES code."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None, None, "login"
    idle = timedelta(minutes=request.app[CONFIG].staff_idle_minutes)
    now = utcnow()
    async with request.app[DB].session() as session, session.begin():
        row = (await session.execute(
            select(StaffSession, User).join(User, User.id == StaffSession.user_id)
            .where(StaffSession.id == hash_token(token)))).first()
        if row is None:
            return None, None, "expired"
        staff, user = row
        if now >= staff.expires_at or now - staff.last_seen_at >= idle:
            await session.execute(delete(StaffSession).where(StaffSession.id == staff.id))
            return None, None, "expired"
        if not user.active:
            # Deactivation already ended the sessions; this is the belt to those braces.
            await api.end_sessions(session, user.id)
            api.audit(session, user.username, "session.refused", user.username, reason="inactive")
            return None, None, "inactive"
        if now - staff.last_seen_at >= TOUCH_EVERY:
            staff.last_seen_at = now
    return staff, user, ""


async def session_alive(request: web.Request) -> bool:
    """Is the request's session still good (not ended, expired or idle, the account active)?

    For long responses (the live queues' streams), asked again and again: unlike `_load` it
    does not count as activity, so an open stream never keeps an idle session alive.
    """
    staff = request["staff_session"]
    idle = timedelta(minutes=request.app[CONFIG].staff_idle_minutes)
    async with request.app[DB].session() as session:
        row = (await session.execute(
            select(StaffSession.expires_at, StaffSession.last_seen_at, User.active)
            .join(User, User.id == StaffSession.user_id)
            .where(StaffSession.id == staff.id))).first()
    now = utcnow()
    return (row is not None and row.active and now < row.expires_at
            and now - row.last_seen_at < idle)


async def _csrf_ok(request: web.Request, expected: str) -> bool:
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and request.content_type in ("application/x-www-form-urlencoded",
                                                 "multipart/form-data"):
        value = (await request.post()).get("_csrf")
        sent = value if isinstance(value, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


async def _unstorable_field(request: web.Request) -> str | None:
    """The name of a query or form field holding U+0000, which PostgreSQL text cannot store
    (asyncpg refuses it: the page would fail with "系统繁忙"). Refused for every console page
    at once rather than form by form; no one types it."""
    fields = list(request.query.items())
    if request.method not in SAFE_METHODS and request.content_type in (
            "application/x-www-form-urlencoded", "multipart/form-data"):
        fields += (await request.post()).items()
    return next((key for key, value in fields if isinstance(value, str) and "\x00" in value), None)


def _login_url(reason: str, next_path: str | None = None) -> str:
    url = f"/admin/login?m={reason}"
    if next_path:
        url += "&next=" + quote(next_path, safe="/")
    return url


def safe_next(value: str | None) -> str:
    """Only our own console pages are followed after login (no open redirect)."""
    if value and value.startswith("/admin/") and not value.startswith("/admin/login") \
            and "//" not in value and "\\" not in value:
        return value
    return "/admin/"


def _attach(request: web.Request, user: User, staff: StaffSession) -> None:
    # request["user"] and request["staff_session"] are the pages' contract: plain string keys,
    # which aiohttp allows but warns about (it would rather see RequestKey objects).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        request["user"], request["staff_session"] = user, staff


def _is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


@web.middleware
async def admin_middleware(request: web.Request, handler):
    if not _is_admin_path(request.path):
        return await handler(request)
    try:
        response = await _guard(request, handler)
    except web.HTTPForbidden as exc:     # require_unit and other object-level refusals
        response = await _refused(request, exc.reason)
    except web.HTTPException as exc:
        _harden(exc.headers)
        raise
    _harden(response.headers)
    return response


def _harden(headers) -> None:
    # security_headers (server/errors.py) adds the rest with setdefault; this one is stricter.
    headers["Content-Security-Policy"] = ADMIN_CSP
    headers.setdefault("Cache-Control", "no-store")


def _same_origin(request: web.Request) -> bool:
    """A browser names the page a POST comes from; another site's page is refused.

    This also covers the login form, which has no session and so no CSRF token yet
    (login CSRF: signing a victim into the attacker's account). No Origin header (old
    browsers, scripts, tests) leaves the decision to the CSRF token.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    hosts = {request.host}
    if request.app[CONFIG].trust_proxy and request.headers.get("X-Forwarded-Host"):
        hosts.add(request.headers["X-Forwarded-Host"].split(",")[-1].strip())
    return urlsplit(origin).netloc in hosts


async def _guard(request: web.Request, handler):
    resource = request.match_info.route.resource
    name = resource.name if resource is not None else None
    if request.method not in SAFE_METHODS and not _same_origin(request):
        log.warning("cross-site %s %s from %s refused", request.method, request.path,
                    request.headers.get("Origin"))
        return web.Response(status=403, text="请求来源不正确。", content_type="text/plain")
    if (field := await _unstorable_field(request)) is not None:
        log.warning("%s %s refused: NUL character in %s", request.method, request.path, field)
        return web.Response(status=400, text=UNSTORABLE, content_type="text/plain")
    if is_public(name):
        return await handler(request)
    staff, user, why = await _load(request)
    if staff is None:
        if request.method in ("GET", "HEAD"):
            response = web.HTTPFound(_login_url(why, request.path_qs if why == "login" else None))
            if why != "login":
                clear_session_cookie(response)
            raise response
        return web.Response(status=401, text="请先登录。", content_type="text/plain")
    _attach(request, user, staff)
    if request.method not in SAFE_METHODS and not await _csrf_ok(request, staff.csrf_token):
        async with request.app[DB].session() as session, session.begin():
            api.audit(session, user.username, "csrf.refused", request.path, method=request.method,
                      ip=client_ip(request))
        log.warning("CSRF token missing or wrong: %s %s by %s", request.method, request.path,
                    user.username)
        return await forbidden(request, "请求已失效，请刷新页面后重试")
    if request.match_info.http_exception is not None:     # 404 / 405: the router answers
        return await handler(request)
    if user.must_change_password and name not in BEFORE_PASSWORD_CHANGE:
        if request.method in ("GET", "HEAD"):
            raise web.HTTPFound("/admin/password")
        return await forbidden(request, "请先修改初始密码")
    if not may_open(user.role, name or ""):
        if name is None or name not in RULES:
            log.error("route %s (%s) has no rule in admin/permissions.py: refused", name, request.path)
        return await _refused(request, f"role {user.role} may not open {name}")
    return await handler(request)


async def _refused(request: web.Request, reason: str) -> web.Response:
    """A signed-in user refused a page or an object: audited, so that someone probing other
    units' cases or admin-only forms by editing URLs and fields is on record."""
    user = request.get("user")
    if user is None:
        return await forbidden(request)
    async with request.app[DB].session() as session, session.begin():
        api.audit(session, user.username, "access.refused", request.path, method=request.method,
                  reason=reason, ip=client_ip(request))
    log.warning("%s %s refused to %s: %s", request.method, request.path, user.username, reason)
    return await forbidden(request)


async def forbidden(request: web.Request, message: str = FORBIDDEN) -> web.Response:
    return await render(request, "forbidden.html", {"message": message}, status=403)


# ---------------------------------------------------------------- templates

def setup_templates(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, app_key=TEMPLATES, loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
                         autoescape=True, undefined=jinja2.StrictUndefined)
    app[TEMPLATES].globals.update(role_names=ROLE_NAMES)
    app[TEMPLATES].filters["when"] = _when


def _when(value: datetime | None) -> str:
    from server.db import CHINA
    return value.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if value else "—"


async def flash(request: web.Request, message: str) -> None:
    """A message for the next page this session renders (after a redirect)."""
    staff = request["staff_session"]
    staff.flash = [*staff.flash, message]
    async with request.app[DB].session() as session, session.begin():
        await session.execute(update(StaffSession).where(StaffSession.id == staff.id)
                              .values(flash=staff.flash))


async def _take_flashes(request: web.Request) -> list[str]:
    staff = request.get("staff_session")
    if staff is None or not staff.flash:
        return []
    messages, staff.flash = staff.flash, []
    async with request.app[DB].session() as session, session.begin():
        await session.execute(update(StaffSession).where(StaffSession.id == staff.id).values(flash=[]))
    return messages


async def render(request: web.Request, template: str, context: dict | None = None,
                 status: int = 200) -> web.Response:
    """A console page; every template gets user, csrf_token, nav, flashes and current."""
    user, staff = request.get("user"), request.get("staff_session")
    resource = request.match_info.route.resource
    base = {
        "user": user,
        "csrf_token": staff.csrf_token if staff else "",
        "nav": nav_for(request.app, user.role) if user and not user.must_change_password else [],
        "flashes": await _take_flashes(request),
        "current": resource.name if resource is not None else None,
    }
    base.update(context or {})
    return aiohttp_jinja2.render_template(template, request, base, app_key=TEMPLATES, status=status)
