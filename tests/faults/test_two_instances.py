"""Two server instances on one PostgreSQL: the background work each of them runs — the case job
(escalation, auto-close and the message it sends), the WeChat delivery worker and the evidence
fetcher — happens once, not twice, although both try at the same moments.

Already covered elsewhere: WeChat retries and late replies over two instances
(tests/channels/test_wechat_instances.py), two case-job runs racing on one database
(tests/casework/test_jobs.py), two delivery workers draining one queue
(tests/channels/test_wechat_delivery.py). Added here: whole apps with all their loops running,
and the evidence fetcher, which no test ran twice.
"""
from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from casework import api as casework_api
from casework import jobs
from casework.lifecycle import closed_text
from casework.models import Case, Event
from server.app import create_app
from server.config import Config
from tests.casework.test_jobs import dispatched, replied
from tests.casework.test_lifecycle import china
from tests.channels import fake_wechat_api
from tests.channels.test_wechat_media import APP_ID, JPEG, SECRET, attachments, complaint_with
from tests.conftest import free_port
from tests.faults.audit import audit


async def test_background_jobs_of_two_instances_run_once(db, tmp_path, monkeypatch):
    if db.dialect != "postgresql":
        pytest.skip("several instances share a database only on PostgreSQL")
    overdue = await dispatched(db, "oOverdue")                      # due 13 Oct 2026: long past
    answered = await replied(db, china(2026, 10, 2, 9), "oReplied")  # never rated: to be closed
    evidence_case = await complaint_with(db, "M-PHOTO")

    # Who tried: both instances must really compete, or "once" proves nothing.
    lease_tries, fetch_claims = Counter(), Counter()
    claim_lease, claim_fetch = jobs.claim, casework_api.claim_fetch

    async def counted_lease(db_, name, holder, now, *args, **kwargs):
        won = await claim_lease(db_, name, holder, now, *args, **kwargs)
        lease_tries[holder] += 1
        return won

    async def counted_fetch(session, item):
        won = await claim_fetch(session, item)
        fetch_claims[won] += 1
        return won
    monkeypatch.setattr(jobs, "claim", counted_lease)
    monkeypatch.setattr(casework_api, "claim_fetch", counted_fetch)

    async with fake_wechat_api.serve({APP_ID: SECRET}) as (api, api_base):
        api.media["M-PHOTO"] = (JPEG, "image/jpeg")
        api.delay = 0.05            # so that two senders would overlap
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=f"http://127.0.0.1:{free_port()}", wechat_app_id=APP_ID,
                        wechat_app_secret=SECRET, wechat_token="t", wechat_api_base=api_base,
                        wechat_delivery_poll=0.05, wechat_delivery_backoff=0.05,
                        case_job_interval=1.0)
        async with TestServer(create_app(config), host="127.0.0.1"), \
                TestServer(create_app(config), host="127.0.0.1"):
            await asyncio.sleep(3.5)        # each instance runs the case job ~4 times

    assert len(lease_tries) == 2 and all(n >= 2 for n in lease_tries.values()), lease_tries
    assert fetch_claims[True] == 1 and api.media_calls == 1, (fetch_claims, api.media_calls)
    async with db.session() as session:
        events = Counter((e.name, e.case_id) for e in await session.scalars(
            select(Event).where(Event.actor == "system")))
        closed = await session.get(Case, answered.id)
    assert events[("case_overdue", overdue.id)] == 1
    assert events[("case_closed", answered.id)] == 1 and closed.status == "closed"
    assert max(events.values()) == 1, events
    # The unit's reply and the request to rate it (queued before the instances started), then
    # the closing notice: once each, in order.
    to_replied = [s["content"] for s in api.sent if s["touser"] == "oReplied"]
    assert len(to_replied) == len(set(to_replied)) == 3, to_replied
    assert to_replied[-1] == closed_text(closed)
    kept = (await attachments(db))["M-PHOTO"]
    assert (tmp_path / "media" / kept.stored_path).read_bytes() == JPEG
    assert kept.stored_path.startswith(f"{evidence_case}/")
    found = await audit(db)
    assert found.delivered == len(api.sent) and found.undeliverable == 0
