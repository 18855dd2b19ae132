"""The accounts page (admins) and `govchat users deactivate|activate|list`."""
from __future__ import annotations

import re

from sqlalchemy import select

from admin.api import verify_password
from admin.models import AuditEntry, StaffSession, User
from tests.admin.conftest import UNIT, add_user, login, signed_in
from tests.server.test_cli import govchat


async def user_named(db, username: str) -> User:
    async with db.session() as session:
        return await session.scalar(select(User).where(User.username == username))


async def entries(db, action: str) -> list[AuditEntry]:
    async with db.session() as session:
        return list(await session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def one_time_password(page: str) -> str:
    return re.search(r'<code class="password">([^<]+)</code>', page).group(1)


async def test_an_admin_creates_an_account_and_sees_its_password_once(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    await add_user(db, "unit.seed", "unit_handler")          # creates the unit JH-RSJ
    resp = await admin.post("/admin/users", data={
        "_csrf": csrf, "username": "zhao", "display_name": "赵敏", "role": "unit_handler",
        "unit_id": UNIT})
    page = await resp.text()
    assert resp.status == 200 and "账号已创建" in page
    password = one_time_password(page)
    user = await user_named(db, "zhao")
    assert user.unit_id == UNIT and user.must_change_password and verify_password(user, password)
    assert password not in await (await admin.get("/admin/users")).text()
    [created] = [e for e in await entries(db, "user.create") if e.target == "zhao"]
    assert created.actor == "boss"

    newcomer = await make_client()
    resp = await login(newcomer, "zhao", password)
    assert resp.headers["Location"] == "/admin/password"


async def test_bad_account_requests_are_refused_in_chinese(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    cases = [
        ({"username": "zhao", "role": "unit_handler", "unit_id": ""}, "承办人账号必须选择所属单位"),
        ({"username": "zhao", "role": "unit_handler", "unit_id": "NOPE"}, "没有编号为 NOPE 的单位"),
        ({"username": "bad name", "role": "agent"}, "用户名须为"),
        ({"username": "boss", "role": "agent"}, "已被使用"),
    ]
    for form, message in cases:
        resp = await admin.post("/admin/users", data={"_csrf": csrf, **form})
        assert resp.status == 400 and message in await resp.text(), form
    assert await user_named(db, "zhao") is None


async def test_deactivate_and_reactivate_are_audited_with_before_and_after(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    staff, _ = await signed_in(make_client, db, "li.na")
    target = await user_named(db, "li.na")
    resp = await admin.post(f"/admin/users/{target.id}/deactivate", data={"_csrf": csrf})
    page = await resp.text()
    assert "账号 li.na 已停用" in page and 'class="inactive"' in page
    [entry] = await entries(db, "user.deactivate")
    assert (entry.actor, entry.target, entry.detail) == (
        "boss", "li.na", {"before": {"active": True}, "after": {"active": False}, "sessions_ended": 1})
    resp = await admin.post(f"/admin/users/{target.id}/activate", data={"_csrf": csrf})
    assert "账号 li.na 已启用" in await resp.text()
    assert (await user_named(db, "li.na")).active
    [entry] = await entries(db, "user.activate")
    assert entry.detail["after"] == {"active": True}


async def test_an_admin_cannot_deactivate_themselves_or_the_last_admin(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    me = await user_named(db, "boss")
    resp = await admin.post(f"/admin/users/{me.id}/deactivate", data={"_csrf": csrf})
    assert resp.status == 400 and "不能停用自己的账号" in await resp.text()
    # The only other admin can be deactivated by this one only while two are active.
    await add_user(db, "deputy", "admin")
    deputy = await user_named(db, "deputy")
    assert (await admin.post(f"/admin/users/{deputy.id}/deactivate", data={"_csrf": csrf})).status == 200
    result = govchat(db.url, "users", "deactivate", "boss")
    assert result.returncode == 2 and "last active admin" in result.stderr
    assert (await user_named(db, "boss")).active
    assert (await admin.post("/admin/users/12345/deactivate", data={"_csrf": csrf})).status == 404


async def test_a_password_reset_is_one_time_and_ends_the_sessions(make_client, db):
    admin, csrf = await signed_in(make_client, db, "boss", "admin")
    staff, _ = await signed_in(make_client, db, "li.na")
    target = await user_named(db, "li.na")
    resp = await admin.post(f"/admin/users/{target.id}/reset-password", data={"_csrf": csrf})
    page = await resp.text()
    assert "密码已重置" in page
    password = one_time_password(page)
    assert (await staff.get("/admin/", allow_redirects=False)).status == 302
    resp = await login(staff, "li.na", password)
    assert resp.headers["Location"] == "/admin/password"
    [entry] = await entries(db, "user.password_reset")
    assert entry.actor == "boss" and entry.detail["sessions_ended"] == 1


async def test_the_accounts_page_shows_role_unit_state_and_last_login(make_client, db):
    await add_user(db, "zhao", "unit_handler", display_name="赵敏")
    admin, _ = await signed_in(make_client, db, "boss", "admin")
    page = await (await admin.get("/admin/users")).text()
    row = re.search(r'<tr data-username="zhao">(.*?)</tr>', page, re.S).group(1)
    assert "赵敏" in row and "承办人" in row and "单位JH-RSJ" in row and "有效" in row
    assert "—" in row                                          # never logged in
    boss_row = re.search(r'<tr data-username="boss">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", boss_row)


async def test_cli_deactivate_ends_sessions_and_list_shows_the_state(make_client, db):
    staff, _ = await signed_in(make_client, db, "li.na")
    result = govchat(db.url, "users", "deactivate", "li.na")
    assert result.returncode == 0, result.stderr
    async with db.session() as session:
        assert await session.scalar(select(StaffSession)) is None
    assert (await staff.get("/admin/", allow_redirects=False)).status == 302
    listing = govchat(db.url, "users", "list").stdout
    assert re.search(r"li\.na\s+agent\s+-\s+no\s+\d{4}-", listing), listing
    assert govchat(db.url, "users", "activate", "li.na").returncode == 0
    assert (await user_named(db, "li.na")).active
    missing = govchat(db.url, "users", "deactivate", "nobody")
    assert missing.returncode == 2 and "no account named 'nobody'" in missing.stderr
