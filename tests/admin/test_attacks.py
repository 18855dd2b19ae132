"""Attacks on the consoles beyond tests/admin/test_auth.py (CSRF on logout, a planted session
cookie, the lockout) and test_permissions.py (each role refused each route): CSRF on real state
changes, privilege escalation by tampering with URLs and form fields, lockout evasion — each
refused, nothing changed, and on record in the audit log."""
from __future__ import annotations

from sqlalchemy import func, select

from admin.models import AuditEntry, LoginAttempt, StaffSession, User
from casework.models import Unit
from tests.admin.conftest import PASSWORD, UNIT, add_user, csrf_of, login, signed_in
from tests.admin.test_case_pages import OTHER, a_case, case_named


async def audits(db, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


async def users(db) -> dict[str, tuple[str, bool]]:
    async with db.session() as session:
        return {u.username: (u.role, u.active) for u in await session.scalars(select(User))}


async def test_csrf_on_real_state_changes_is_refused_audited_and_changes_nothing(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    other, other_csrf = await signed_in(make_client, db, "boss2", "admin")
    before = await users(db)
    form = {"username": "mallory", "role": "admin", "display_name": "", "unit_id": ""}
    for token in (None, "", csrf[:-2] + "xx", other_csrf):     # none, empty, forged, another session's
        data = form if token is None else {**form, "_csrf": token}
        resp = await admin.post("/admin/users", data=data, allow_redirects=False)
        assert resp.status == 403 and "请求已失效" in await resp.text(), token
    # A header token from another session does not pass either.
    resp = await admin.post("/admin/users", data=form, headers={"X-CSRF-Token": other_csrf})
    assert resp.status == 403
    assert await users(db) == before
    refused = await audits(db, "csrf.refused")
    assert [(a.actor, a.target, a.detail["method"]) for a in refused] == [
        ("boss", "/admin/users", "POST")] * 5
    # The real token still works: the refusals were not a broken form.
    resp = await admin.post("/admin/users", data={**form, "_csrf": csrf})
    assert resp.status == 200 and (await users(db))["mallory"] == ("admin", True)
    assert other is not admin


async def test_a_session_token_is_new_at_every_login_and_the_csrf_token_with_it(make_client, db):
    """Fixation, the other way round from test_auth's planted cookie: what an attacker saw of a
    session (its cookie, its CSRF token) is worthless after the user signs in again."""
    await add_user(db, "li.na")
    client = await make_client()
    await login(client, "li.na")
    cookie1 = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))["govchat_staff"].value
    csrf1 = await csrf_of(client)
    await login(client, "li.na")
    cookie2 = client.session.cookie_jar.filter_cookies(client.make_url("/admin/"))["govchat_staff"].value
    csrf2 = await csrf_of(client)
    assert cookie1 != cookie2 and csrf1 != csrf2
    resp = await client.post("/admin/logout", data={"_csrf": csrf1}, allow_redirects=False)
    assert resp.status == 403
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(StaffSession)) == 1


async def test_an_agent_cannot_reach_admin_forms_by_posting_to_them(make_client, db):
    target = await add_user(db, "victim", "reviewer")
    agent, csrf = await signed_in(make_client, db, "agent.li", "agent")
    before = await users(db)
    attempts = [
        ("/admin/users", {"username": "agent2", "role": "admin"}),          # make an admin
        (f"/admin/users/{target.id}/reset-password", {}),
        (f"/admin/users/{target.id}/deactivate", {}),
        ("/admin/settings/units", {"id": "EVIL", "name": "假单位"}),
        ("/admin/settings/categories", {"name": "假分类", "parent_id": ""}),
        ("/admin/settings/wechat", {"name": "evil", "app_id": "wx1", "token": "abc123"}),
    ]
    for path, data in attempts:
        resp = await agent.post(path, data={"_csrf": csrf, **data}, allow_redirects=False)
        assert resp.status == 403 and "您没有权限访问此页面" in await resp.text(), path
    assert await users(db) == before
    async with db.session() as session:
        assert await session.get(Unit, "EVIL") is None
    refused = await audits(db, "access.refused")
    assert [(a.actor, a.target, a.detail["method"]) for a in refused] == [
        ("agent.li", path, "POST") for path, _ in attempts]
    assert "role agent" in refused[0].detail["reason"]


async def test_role_and_unit_fields_in_a_users_own_forms_are_ignored(make_client, db):
    agent, csrf = await signed_in(make_client, db, "agent.li", "agent")
    resp = await agent.post("/admin/password", allow_redirects=False, data={
        "_csrf": csrf, "current": PASSWORD, "new": "New-password-99", "again": "New-password-99",
        "role": "admin", "unit_id": UNIT, "active": "1", "username": "boss"})
    assert resp.status == 303
    assert (await users(db))["agent.li"] == ("agent", True)
    async with db.session() as session:
        me = await session.scalar(select(User).where(User.username == "agent.li"))
    assert me.unit_id is None
    assert (await agent.get("/admin/users")).status == 403


async def test_a_unit_handler_tampering_with_case_numbers_and_unit_fields(make_client, db):
    mine = await a_case(db, UNIT, seq=1)
    theirs = await a_case(db, OTHER, seq=2)
    handler, csrf = await signed_in(make_client, db, "zhao", "unit_handler")

    # Another unit's case by its number in the URL: refused and on record.
    resp = await handler.post(f"/admin/cases/{theirs.number}/accept", data={"_csrf": csrf})
    assert resp.status == 403
    # A dispatcher's step on their own case, with a unit_id field naming another unit.
    resp = await handler.post(f"/admin/cases/{mine.number}/reassign",
                              data={"_csrf": csrf, "unit_id": OTHER, "reason": "x"})
    assert resp.status == 403
    # Their own step with a unit_id field: the field is ignored, the case stays theirs.
    resp = await handler.post(f"/admin/cases/{mine.number}/accept",
                              data={"_csrf": csrf, "unit_id": OTHER}, allow_redirects=False)
    assert resp.status == 303
    assert (await case_named(db, theirs.number)).status == "dispatched"
    case = await case_named(db, mine.number)
    assert (case.status, case.unit_id) == ("in_progress", UNIT)
    refused = await audits(db, "access.refused")
    assert [(a.actor, a.target) for a in refused] == [
        ("zhao", f"/admin/cases/{theirs.number}/accept"), ("zhao", f"/admin/cases/{mine.number}/reassign")]
    assert refused[0].detail["reason"] == "not this unit's"


async def test_an_admin_cannot_create_an_unknown_role_or_a_handler_of_a_unit_that_does_not_exist(
        make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    before = await users(db)
    for role, unit in (("root", ""), ("superadmin", ""), ("unit_handler", "NO-SUCH-UNIT")):
        resp = await admin.post("/admin/users", data={"_csrf": csrf, "username": "x.y", "role": role,
                                                      "unit_id": unit, "display_name": ""})
        assert resp.status == 400, role
    assert await users(db) == before


async def test_the_lockout_is_not_evaded_by_spoofed_addresses_or_username_variants(make_client, db):
    await add_user(db, "li.na")
    client = await make_client()          # trust_proxy is off: X-Forwarded-For means nothing
    for n in range(20):
        await client.post("/admin/login", data={"username": f"guess{n}", "password": "Wrong-1"},
                          headers={"X-Forwarded-For": f"10.0.0.{n}"}, allow_redirects=False)
    resp = await client.post("/admin/login", data={"username": "li.na", "password": PASSWORD},
                             headers={"X-Forwarded-For": "10.9.9.9"}, allow_redirects=False)
    assert resp.status == 429
    async with db.session() as session:
        ips = set(await session.scalars(select(LoginAttempt.ip)))
    assert len(ips) == 1 and not next(iter(ips)).startswith("10.")

    # The username lock: five failures, then the right password under other spellings.
    other = await make_client()
    await add_user(db, "wang")
    async with db.session() as session, session.begin():     # forget the address's failures
        for attempt in await session.scalars(select(LoginAttempt)):
            await session.delete(attempt)
    for n in range(5):
        await login(other, "wang", f"Wrong-password-{n}")
    for variant in ("wang", " wang ", "WANG", "wang\t"):
        resp = await login(other, variant)
        assert resp.status in (401, 429) and resp.status != 303, variant
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(StaffSession)) == 0
    assert len(await audits(db, "login.locked")) >= 1
