"""Signing in and out, lockout, forced password change, session rules, CSRF, cookie flags."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from admin.auth import COOKIE, hash_token
from admin.models import AuditEntry, LoginAttempt, StaffSession, User
from server.db import utcnow
from tests.admin.conftest import PASSWORD, add_user, csrf_of, login, signed_in


async def audits(db, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


async def sessions_of(db, username: str) -> list[StaffSession]:
    async with db.session() as session:
        return list(await session.scalars(select(StaffSession).join(User).where(User.username == username)))


def session_cookie(resp) -> str:
    [header] = [h for h in resp.headers.getall("Set-Cookie") if h.startswith(COOKIE + "=")]
    return header


async def test_login_opens_the_home_page_and_logout_ends_the_session(client, db):
    await add_user(db, "li.na", "agent", display_name="李娜")
    resp = await client.get("/admin/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin/login?m=login&next=/admin/"

    resp = await login(client, "li.na")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/"
    token = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    [row] = await sessions_of(db, "li.na")
    assert row.id == hash_token(token) and token not in (row.id, row.csrf_token)

    resp = await client.get("/admin/")
    page = await resp.text()
    assert resp.status == 200 and "李娜" in page and "客服" in page and "退出登录" in page

    csrf = await csrf_of(client)
    resp = await client.post("/admin/logout", data={"_csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/login?m=logout"
    assert await sessions_of(db, "li.na") == []
    resp = await client.get("/admin/", allow_redirects=False)
    assert resp.status == 302
    assert "您已安全退出" in await (await client.get("/admin/login?m=logout")).text()
    assert [a.target for a in await audits(db, "login.ok")] == ["li.na"]
    assert [a.actor for a in await audits(db, "logout")] == ["li.na"]


async def test_unknown_user_and_wrong_password_get_the_same_words(client, db):
    await add_user(db, "li.na")
    wrong = await login(client, "li.na", "Wrong-password-1")
    unknown = await login(client, "nobody", PASSWORD)
    assert wrong.status == unknown.status == 401
    for resp in (wrong, unknown):
        assert "用户名或密码错误" in await resp.text()
        assert COOKIE not in resp.cookies
    assert [(a.target, a.detail["reason"]) for a in await audits(db, "login.failed")] == [
        ("li.na", "wrong password"), ("nobody", "unknown user")]


async def test_five_failures_lock_the_username_for_15_minutes(client, db):
    await add_user(db, "li.na")
    for attempt in range(1, 6):
        resp = await login(client, "li.na", f"Wrong-password-{attempt}")
        expected = "登录失败次数过多，请15分钟后再试" if attempt == 5 else "用户名或密码错误"
        assert expected in await resp.text(), attempt
    resp = await login(client, "li.na")                 # the right password, while locked
    assert resp.status == 429 and "登录失败次数过多" in await resp.text()
    [locked] = await audits(db, "login.locked")
    assert locked.target == "li.na" and locked.actor == "system"
    assert len(await audits(db, "login.refused")) == 1
    assert await sessions_of(db, "li.na") == []

    # 15 minutes later the lock is over; the failures stay on record.
    async with db.session() as session, session.begin():
        for attempt in await session.scalars(select(LoginAttempt)):
            attempt.at -= timedelta(minutes=16)
    resp = await login(client, "li.na")
    assert resp.status == 303
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(LoginAttempt)) == 6


async def test_twenty_failures_from_one_address_refuse_it(client, db):
    await add_user(db, "li.na")
    for n in range(20):
        await login(client, f"guess{n}", "Wrong-password-1")
    resp = await login(client, "li.na")
    assert resp.status == 429 and "登录失败次数过多" in await resp.text()


async def test_a_one_time_password_must_be_changed_before_anything_else(client, db):
    await add_user(db, "li.na", "admin", must_change=True)
    resp = await login(client, "li.na")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/password"
    for path in ("/admin/", "/admin/users"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/admin/password", path
    csrf = await csrf_of(client)
    resp = await client.post("/admin/users", data={"_csrf": csrf, "username": "x"})
    assert resp.status == 403

    async def change(current, new, again):
        return await client.post("/admin/password", allow_redirects=False, data={
            "_csrf": csrf, "current": current, "new": new, "again": again})

    assert "当前密码不正确" in await (await change("Wrong-password-1", "New-password-99", "New-password-99")).text()
    assert "两次输入的新密码不一致" in await (await change(PASSWORD, "New-password-99", "New-password-98")).text()
    assert "至少需要10个字符" in await (await change(PASSWORD, "short1", "short1")).text()
    assert "字母和数字" in await (await change(PASSWORD, "onlyletterslong", "onlyletterslong")).text()
    resp = await change(PASSWORD, "New-password-99", "New-password-99")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/"
    page = await (await client.get("/admin/")).text()
    assert "密码已修改" in page
    assert "密码已修改" not in await (await client.get("/admin/")).text()   # shown once
    assert (await client.get("/admin/users")).status == 200
    [entry] = await audits(db, "password.change")
    assert entry.detail == {"before": {"must_change_password": True},
                            "after": {"must_change_password": False}}


async def test_a_cookie_from_before_login_is_never_promoted(make_client, db):
    await add_user(db, "li.na")
    await add_user(db, "wang")
    client = await make_client()
    planted = "attacker-chosen-value"
    client.session.cookie_jar.update_cookies({COOKIE: planted}, client.make_url("/admin/"))
    resp = await login(client, "li.na")
    assert session_cookie(resp).split(";")[0] != f"{COOKIE}={planted}"
    async with db.session() as session:
        assert await session.get(StaffSession, hash_token(planted)) is None

    # Signing in again over a live session replaces it: the old token opens nothing.
    old = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    await login(client, "wang")
    new = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))[COOKIE].value
    assert new != old and await sessions_of(db, "li.na") == []
    other = await make_client()
    other.session.cookie_jar.update_cookies({COOKIE: old}, other.make_url("/admin/"))
    assert (await other.get("/admin/", allow_redirects=False)).status == 302


async def test_state_changes_without_the_csrf_token_are_refused_and_audited(make_client, db):
    client, csrf = await signed_in(make_client, db, "li.na")
    missing = await client.post("/admin/logout", allow_redirects=False)
    wrong = await client.post("/admin/logout", data={"_csrf": csrf[:-1] + "x"}, allow_redirects=False)
    assert missing.status == wrong.status == 403
    assert "请求已失效" in await wrong.text()
    assert len(await sessions_of(db, "li.na")) == 1
    refused = await audits(db, "csrf.refused")
    assert [(a.actor, a.target, a.detail["method"]) for a in refused] == [
        ("li.na", "/admin/logout", "POST")] * 2
    # fetch() sends it as a header (admin.js).
    resp = await client.post("/admin/logout", headers={"X-CSRF-Token": csrf}, allow_redirects=False)
    assert resp.status == 303 and await sessions_of(db, "li.na") == []


async def test_an_idle_session_ends(make_client, db):
    client, _ = await signed_in(make_client, db, "li.na")
    async with db.session() as session, session.begin():
        await session.execute(update(StaffSession).values(last_seen_at=utcnow() - timedelta(minutes=31)))
    resp = await client.get("/admin/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin/login?m=expired"
    assert await sessions_of(db, "li.na") == []
    assert "登录已失效" in await (await client.get("/admin/login?m=expired")).text()


async def test_a_session_ends_after_12_hours_however_busy(make_client, db):
    client, _ = await signed_in(make_client, db, "li.na")
    async with db.session() as session, session.begin():
        await session.execute(update(StaffSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert (await client.get("/admin/", allow_redirects=False)).status == 302
    assert await sessions_of(db, "li.na") == []


async def test_a_login_sweeps_away_sessions_past_their_lifetime(make_client, db):
    await signed_in(make_client, db, "li.na")           # a browser never seen again
    async with db.session() as session, session.begin():
        await session.execute(update(StaffSession).values(expires_at=utcnow() - timedelta(hours=1)))
    await signed_in(make_client, db, "wang")
    assert await sessions_of(db, "li.na") == [] and len(await sessions_of(db, "wang")) == 1


async def test_a_recent_session_is_kept_alive_by_use(make_client, db):
    client, _ = await signed_in(make_client, db, "li.na")
    async with db.session() as session, session.begin():
        await session.execute(update(StaffSession).values(last_seen_at=utcnow() - timedelta(minutes=29)))
    assert (await client.get("/admin/")).status == 200
    [row] = await sessions_of(db, "li.na")
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)


async def test_deactivation_ends_an_open_session_at_its_next_request(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    staff, staff_csrf = await signed_in(make_client, db, "li.na")
    user_id = (await sessions_of(db, "li.na"))[0].user_id
    resp = await admin.post(f"/admin/users/{user_id}/deactivate", data={"_csrf": csrf},
                            allow_redirects=False)
    assert resp.status == 303
    assert await sessions_of(db, "li.na") == []
    resp = await staff.get("/admin/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin/login?m=expired"
    resp = await staff.post("/admin/logout", data={"_csrf": staff_csrf}, allow_redirects=False)
    assert resp.status == 401
    resp = await login(staff, "li.na")
    assert resp.status == 401 and "您的账号已停用" in await resp.text()


async def test_an_inactive_account_with_a_live_session_is_refused(make_client, db):
    """Belt and braces: should a session survive deactivation, the user row still says no."""
    client, _ = await signed_in(make_client, db, "li.na")
    async with db.session() as session, session.begin():
        await session.execute(update(User).where(User.username == "li.na").values(active=False))
    resp = await client.get("/admin/", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/admin/login?m=inactive"
    assert await sessions_of(db, "li.na") == []
    assert len(await audits(db, "session.refused")) == 1


async def test_the_session_cookie_is_httponly_lax_and_scoped_to_admin(make_client, db):
    await add_user(db, "li.na")
    plain = await make_client()
    header = session_cookie(await login(plain, "li.na")).lower()
    assert "httponly" in header and "samesite=lax" in header and "path=/admin" in header
    assert "secure" not in header
    # A forwarded https is believed only when we were told a proxy is in front.
    spoofed = await plain.post("/admin/login", data={"username": "li.na", "password": PASSWORD},
                               headers={"X-Forwarded-Proto": "https"}, allow_redirects=False)
    assert "secure" not in session_cookie(spoofed).lower()
    proxied = await make_client(trust_proxy=True)
    resp = await proxied.post("/admin/login", data={"username": "li.na", "password": PASSWORD},
                              headers={"X-Forwarded-Proto": "https"}, allow_redirects=False)
    assert "secure" in session_cookie(resp).lower()


async def test_admin_pages_send_a_strict_content_security_policy(make_client, db):
    client, _ = await signed_in(make_client, db, "li.na")
    for path in ("/admin/", "/admin/login"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Cache-Control"] == "no-store"
    assert (await client.get("/admin/static/admin.css")).status == 200


async def test_pages_escape_what_people_typed(make_client, db):
    await add_user(db, "li.na", display_name="<script>alert(1)</script>")
    client, _ = await signed_in(make_client, db, "boss", "admin")
    page = await (await client.get("/admin/users")).text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    anonymous = await make_client()
    resp = await login(anonymous, '"><script>alert(2)</script>', "x")
    assert "<script>alert(2)" not in await resp.text()


async def test_after_login_only_console_pages_are_followed(client, db):
    await add_user(db, "li.na")
    for target, landing in (("/admin/password", "/admin/password"), ("https://evil.example/", "/admin/"),
                            ("//evil.example/admin/", "/admin/"), ("/admin/login", "/admin/")):
        resp = await client.post("/admin/login", allow_redirects=False, data={
            "username": "li.na", "password": PASSWORD, "next": target})
        assert resp.headers["Location"] == landing, target


async def test_a_post_from_another_site_is_refused_even_at_login(client, db):
    await add_user(db, "li.na")
    form = {"username": "li.na", "password": PASSWORD}
    resp = await client.post("/admin/login", data=form, headers={"Origin": "https://evil.example"},
                             allow_redirects=False)
    assert resp.status == 403 and await sessions_of(db, "li.na") == []
    own = f"http://{client.host}:{client.port}"
    resp = await client.post("/admin/login", data=form, headers={"Origin": own}, allow_redirects=False)
    assert resp.status == 303
