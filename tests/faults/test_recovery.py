"""The recovery behind the server-kill test, case by case and fast: a message its server left
`received` is answered once — by a retry or by the sweep, also when both try at once — and a
late WeChat reply that was stored but never queued is queued."""
from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select, update

from bot import api as bot_api
from bot.gateway import Gateway, Inbound
from bot.models import Message
from bot.rasa_client import RasaClient
from channels.wechat.delivery import enqueue_orphans
from channels.wechat.models import Delivery
from server.db import utcnow
from tests.faults.audit import audit
from tests.faults.fakes import answer_to, echo_rasa


async def gateway(db, rasa_url: str) -> Gateway:
    rasa = RasaClient(rasa_url, timeout=1.0)
    await rasa.start()
    return Gateway(db, rasa, max_chars=500, rate_limit=20)


async def left_received(db, gw: Gateway, text: str, msg_id: str, ago: timedelta) -> int:
    """A message stored as a server does first, then abandoned (the server died)."""
    inbound = Inbound(channel="wechat", account="default", sender=f"o{msg_id}", text=text,
                      external_id=msg_id, received_at=utcnow() - ago)
    conv = await bot_api.open_conversation(db, "wechat", "default", inbound.sender)
    return await gw._persist_inbound(conv, inbound)


async def replies(db, message_id: int) -> list[str]:
    async with db.session() as session:
        return list(await session.scalars(select(Message.text).where(
            Message.in_reply_to_id == message_id).order_by(Message.id)))


async def test_the_sweep_and_a_retry_answer_an_abandoned_message_once(db):
    async with echo_rasa() as (rasa, url):
        gw = await gateway(db, url)
        old = await left_received(db, gw, "早就存下的问题", "7600000000000000001", timedelta(minutes=1))
        young = await left_received(db, gw, "刚存下的问题", "7600000000000000002", timedelta(seconds=1))
        # The sweep and WeChat's retry of the old message at the same moment.
        swept, retried = await asyncio.gather(gw.recover(), gw.handle(Inbound(
            channel="wechat", account="default", sender="o7600000000000000001",
            text="早就存下的问题", external_id="7600000000000000001")))
        assert await replies(db, old) == [answer_to("早就存下的问题")]
        assert [r.text for r in retried.replies] == [answer_to("早就存下的问题")]
        # One of the two answered it; the other returned that answer.
        assert len(swept) + (not retried.duplicate) == 1
        assert await replies(db, young) == []            # its server may still be at it
        assert await gw.recover() == []                  # nothing is answered twice
        gw.stale_after = timedelta(0)                    # …and once no one is
        [(conv, outcome)] = await gw.recover(utcnow() + timedelta(seconds=30))
        assert conv.sender == "o7600000000000000002" and not outcome.duplicate
        await gw.rasa.close()
    assert await replies(db, young) == [answer_to("刚存下的问题")]
    await audit(db)


async def test_a_late_reply_stored_but_never_queued_is_queued(db):
    async with echo_rasa() as (rasa, url):
        gw = await gateway(db, url)
        for n, latency in ((1, 6000), (2, 300)):      # ms: late, and answered passively
            outcome = await gw.handle(Inbound(channel="wechat", account="default",
                                              sender=f"oOrphan{n}", text=f"问题{n}",
                                              external_id=f"760000000000000010{n}"))
            async with db.session() as session, session.begin():
                await session.execute(update(Message).where(
                    Message.id == outcome.replies[0].id).values(latency_ms=latency))
        await gw.rasa.close()
    assert await enqueue_orphans(db, budget=4.0) == 0              # a live server still may
    later = utcnow() + timedelta(seconds=30)
    assert await enqueue_orphans(db, budget=4.0, now=later) == 1
    assert await enqueue_orphans(db, budget=4.0, now=later) == 0   # queued once
    async with db.session() as session:
        [queued] = await session.scalars(select(Delivery))
    assert queued.to_user == "oOrphan1"
    found = await audit(db, deliveries_settled=False)
    assert found.answered == 2


async def test_a_burst_waits_its_turn_for_rasa_and_retries_wait_without_taking_over(db):
    """Admission control: at most max_in_flight messages with Rasa at once; the rest wait in
    memory (stored already), and a retry of a waiting message neither polls it into a second
    Rasa call nor takes it over as abandoned, however long it waits."""
    async with echo_rasa(fast=0.3) as (rasa, url):
        client = RasaClient(url, timeout=5.0)
        await client.start()
        gw = Gateway(db, client, max_chars=500, rate_limit=20, max_in_flight=2)
        gw.stale_after = timedelta(0)               # anything waiting would look abandoned
        busy = peak = 0
        send = client.send

        async def counted(*args, **kwargs):
            nonlocal busy, peak
            busy += 1
            peak = max(peak, busy)
            try:
                return await send(*args, **kwargs)
            finally:
                busy -= 1

        client.send = counted
        burst = [Inbound(channel="wechat", account="default", sender=f"o-burst-{i}",
                         text=f"问题{i}", external_id=f"78000000000000000{i:02d}") for i in range(8)]
        retry = Inbound(channel="wechat", account="default", sender="o-burst-7", text="问题7",
                        external_id="7800000000000000007")
        first = [asyncio.create_task(gw.handle(m)) for m in burst]
        for _ in range(1000):                       # the last one stored, and held by the gateway
            stored = await gw._stored(retry)
            if stored is not None and stored.id in gw._working:
                break
            await asyncio.sleep(0.01)
        outcomes = await asyncio.gather(*first, gw.handle(retry))
        assert peak == 2
        assert [o.replies[0].text for o in outcomes[:8]] == [answer_to(f"问题{i}") for i in range(8)]
        assert outcomes[8].duplicate and outcomes[8].replies[0].text == answer_to("问题7")
        assert rasa.calls["问题7"] == 1 and sum(rasa.calls.values()) == 8
        assert await gw.recover() == []
        await client.close()
