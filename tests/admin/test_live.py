"""The live queues' event streams (admin/live.py) and the audit of evidence views — over HTTP,
on SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from admin import api as accounts
from admin import live
from admin.models import User
from tests.admin.conftest import UNIT, add_user, login, signed_in
from tests.admin.test_case_pages import OTHER, a_case, audits, evidence_of
from tests.admin.test_inbox import handed_off, site, staff  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Check every 50 ms instead of 2 s."""
    monkeypatch.setattr(live, "CHECK_EVERY", 0.05)


async def next_event(resp, timeout: float) -> tuple[str, dict] | None:
    """The next named event of the stream (comments and `retry:` skipped); None when nothing
    came within `timeout`; ("eof", {}) when the server closed the stream."""
    name, data = None, {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            line = await asyncio.wait_for(resp.content.readline(),
                                          max(0.01, deadline - loop.time()))
        except asyncio.TimeoutError:
            return None
        if not line:
            return ("eof", {})
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: "):])
        elif line == "" and name:
            return name, data


async def changed_counts(resp, timeout: float = 5) -> dict:
    event = await next_event(resp, timeout)
    assert event is not None and event[0] == "changed", event
    assert len(event[1]["at"]) == 8                 # HH:MM:SS, China time
    return event[1]["counts"]


async def settled_counts(resp) -> dict:
    """The counts of the last `changed` once the stream is quiet (a hand-off and the citizen's
    message after it may be seen as one change or two)."""
    counts = await changed_counts(resp)
    while (event := await next_event(resp, 0.3)) is not None:
        assert event[0] == "changed", event
        counts = event[1]["counts"]
    return counts


async def test_the_inbox_stream_says_changed_after_a_new_handoff_and_not_before(site, db, staff):
    agent = await staff("li.na")
    resp = await agent.get("/admin/inbox/live")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    assert await next_event(resp, 5) == ("ready", {"counts": {"waiting": 0, "unclaimed": 0,
                                                              "mine": 0}})
    await agent.get("/admin/inbox")                 # nothing changed: nothing is sent
    assert await next_event(resp, 0.5) is None
    conv_id = await handed_off(db, site, "web-live", "我要找人工")
    assert await settled_counts(resp) == {"waiting": 1, "unclaimed": 1, "mine": 0}
    await agent.post(f"/admin/inbox/{conv_id}/claim")
    assert await changed_counts(resp) == {"waiting": 1, "unclaimed": 0, "mine": 1}
    resp.close()


async def test_a_unit_handlers_stream_ignores_another_units_cases(make_client, db):
    await a_case(db, UNIT, seq=1)
    client, _ = await signed_in(make_client, db, "zhao", "unit_handler")
    resp = await client.get("/admin/cases/live")
    assert resp.status == 200
    assert await next_event(resp, 5) == ("ready", {"counts": {"total": 1, "open": 1}})
    await a_case(db, OTHER, seq=2)                  # another unit's new case
    assert await next_event(resp, 0.5) is None
    await a_case(db, UNIT, seq=3)                   # one of ours
    assert await changed_counts(resp) == {"total": 2, "open": 2}
    resp.close()


async def test_the_dispatch_stream_counts_every_units_cases(make_client, db):
    client, _ = await signed_in(make_client, db, "fen", "dispatcher")
    resp = await client.get("/admin/dispatch/live")
    assert await next_event(resp, 5) == ("ready", {"counts": {"total": 0, "open": 0,
                                                              "extensions": 0, "waiting": 0}})
    await a_case(db, None, status="submitted", seq=1)
    assert await changed_counts(resp) == {"total": 1, "open": 1, "extensions": 0, "waiting": 1}
    resp.close()
    handler, _ = await signed_in(make_client, db, "zhao", "unit_handler")
    assert (await handler.get("/admin/dispatch/live")).status == 403


async def test_the_stream_ends_when_the_account_is_deactivated(make_client, db):
    client, _ = await signed_in(make_client, db, "zhao", "unit_handler")
    resp = await client.get("/admin/cases/live")
    assert (await next_event(resp, 5))[0] == "ready"
    await add_user(db, "boss", "admin")
    async with db.session() as session, session.begin():
        zhao = await session.scalar(select(User).where(User.username == "zhao"))
        await accounts.set_active(session, zhao, False, actor="boss")
    assert await next_event(resp, 5) == ("ended", {})
    assert await next_event(resp, 5) == ("eof", {})
    # The browser's reconnection is sent to the login page.
    again = await client.get("/admin/cases/live", allow_redirects=False)
    assert again.status == 302 and again.headers["Location"].startswith("/admin/login")


async def test_the_stream_ends_at_its_life_cap_and_sends_heartbeats(make_client, db, monkeypatch):
    monkeypatch.setattr(live, "HEARTBEAT_EVERY", 0.1)
    monkeypatch.setattr(live, "MAX_LIFE", 0.5)
    client, _ = await signed_in(make_client, db, "zhao", "unit_handler")
    resp = await client.get("/admin/cases/live")
    body = (await asyncio.wait_for(resp.read(), 5)).decode()
    assert body.startswith("retry: 5000\n\nevent: ready\n")
    assert ": heartbeat\n\n" in body and "event: changed" not in body


async def test_each_view_of_an_evidence_file_is_audited(make_client, db, tmp_path):
    case = await a_case(db, UNIT)
    kept, lost, _, _ = await evidence_of(db, case, tmp_path)
    await add_user(db, "zhao", "unit_handler")
    client = await make_client(var_dir=tmp_path)
    assert (await login(client, "zhao")).status == 303
    for _ in range(2):
        assert (await client.get(f"/admin/cases/{case.number}/evidence/{kept.id}")).status == 200
    assert (await client.get(f"/admin/cases/{case.number}/evidence/{lost.id}")).status == 404
    views = await audits(db, "case.evidence_view")
    assert [(v.actor, v.target, v.detail["attachment_id"], v.detail["kind"]) for v in views] == [
        ("zhao", case.number, kept.id, "image")] * 2
    # Another unit's handler is refused before anything is read or recorded.
    other, _ = await signed_in(make_client, db, "qian", "unit_handler", unit_id=OTHER)
    assert (await other.get(f"/admin/cases/{case.number}/evidence/{kept.id}")).status == 403
    assert len(await audits(db, "case.evidence_view")) == 2
