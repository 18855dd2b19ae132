"""/metrics: counters moved by real traffic through the gateway, queue depths read from the
database, the exposition as Prometheus' own parser reads it, and who may read it."""
from __future__ import annotations

import contextlib
from datetime import timedelta
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from bot import api as bot_api
from bot import handoff
from bot.models import Conversation
from casework.models import Case, CaseAttachment
from channels.wechat.models import Delivery
from server import metrics
from server.app import create_app
from server.config import Config
from server.db import utcnow
from server.monitoring import _loopback
from tests.channels.test_wechat import FakeRasa
from tests.channels.test_wechat import text_msg
from tests.channels.test_wechat_delivery import drain, eventually, late_wechat, queue_reply, worker

TOKEN = "metrics-secret-1"
# One sample line of the text format: name, optional labels, a number (Go's float syntax).
_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
                     r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
                     r'(,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})?'
                     r' (-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?|[+-]Inf|NaN)$')
_COMMENT = re.compile(r"^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+|TYPE [a-zA-Z_:][a-zA-Z0-9_:]* "
                      r"(counter|gauge|histogram))$")


async def scrape(http, **headers) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, as prometheus_client's parser reads the page."""
    resp = await http.get("/metrics", headers=headers)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextlib.asynccontextmanager
async def serve(db, tmp_path, **settings):
    """The server with a fake Rasa on loopback that answers every message and its health check."""
    rasa = FakeRasa()
    rasa.up = True

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="Hello from Rasa", status=200 if rasa.up else 503)
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    rasa_app.router.add_get("/", health)
    async with TestServer(rasa_app, host="127.0.0.1") as fake_rasa:
        config = Config(database_url=db.url, rasa_manage=False, var_dir=tmp_path, embedder="none",
                        rasa_url=str(fake_rasa.make_url("/")).rstrip("/"), **settings)
        async with TestClient(TestServer(create_app(config))) as http:
            yield http, rasa


@pytest.fixture
async def app(db, tmp_path):
    async with serve(db, tmp_path) as (http, rasa):
        yield http


async def test_a_web_chat_message_moves_the_counters_and_the_latency_histogram(app):
    before = await scrape(app)
    resp = await app.post("/api/chat", json={"sender": "web-m1", "text": "居住证怎么办理",
                                              "message_id": "m-1"})
    assert resp.status == 200 and (await resp.json())["status"] == "bot"
    # WeChat-style retry of the same message: answered from the database, counted once.
    assert (await app.post("/api/chat", json={"sender": "web-m1", "text": "居住证怎么办理",
                                               "message_id": "m-1"})).status == 200
    after = await scrape(app)
    assert value(after, "govchat_rasa_up") == 1

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)
    assert moved("govchat_messages_received_total", channel="webchat") == 1
    assert moved("govchat_messages_sent_total", channel="webchat", source="bot") == 1
    assert moved("govchat_reply_latency_seconds_count", channel="webchat") == 1
    assert moved("govchat_reply_latency_seconds_bucket", channel="webchat", le="+Inf") == 1
    # The fake Rasa answers at once: well inside the smallest bucket that matters (5 s).
    assert moved("govchat_reply_latency_seconds_bucket", channel="webchat", le="5.0") == 1
    assert 0 < moved("govchat_reply_latency_seconds_sum", channel="webchat") < 5
    assert moved("govchat_handoffs_requested_total", reason="bot_unavailable") == 0
    buckets = [value(after, "govchat_reply_latency_seconds_bucket", channel="webchat", le=le)
               for le in ("0.1", "0.25", "0.5", "1.0", "2.0", "3.0", "4.5", "5.0", "10.0", "+Inf")]
    assert buckets == sorted(buckets) and buckets[-1] == value(
        after, "govchat_reply_latency_seconds_count", channel="webchat")


async def test_rasa_down_counts_the_apology_and_the_hand_off(db, tmp_path):
    async with serve(db, tmp_path, rasa_timeout=0.2) as (http, rasa):
        rasa.delay, rasa.up = 1.0, False    # slower than the timeout: the citizen gets the apology
        before = await scrape(http)
        await http.post("/api/chat", json={"sender": "web-m2", "text": "有人吗"})
        after = await scrape(http)
    assert value(after, "govchat_rasa_up") == 0
    for name, labels in (("govchat_handoffs_requested_total", {"reason": "bot_unavailable"}),
                         ("govchat_messages_sent_total", {"channel": "webchat", "source": "system"}),
                         ("govchat_reply_latency_seconds_count", {"channel": "webchat"})):
        assert value(after, name, **labels) - value(before, name, **labels) == 1, name
    assert value(after, "govchat_handoff_waiting", claimed="no") == 1


async def test_queue_depths_are_read_from_the_database(app, db):
    samples = await scrape(app)
    assert value(samples, "govchat_database_up") == 1
    for name in ("govchat_wechat_deliveries_pending", "govchat_evidence_fetches_pending",
                 "govchat_dispatch_desk_cases", "govchat_dispatch_desk_extension_requests"):
        assert sum(v for (n, _), v in samples.items() if n == name) == 0, name
    assert value(samples, "govchat_handoff_waiting", claimed="no") == 0

    # A hand-off the citizen asked for, written as another instance would: only the database knows.
    await app.post("/api/chat", json={"sender": "web-m3", "text": "你好"})
    async with db.session() as session:
        conv_id = await session.scalar(select(Conversation.id).where(Conversation.sender == "web-m3"))
    before = value(samples, "govchat_handoffs_requested_total", reason="citizen_request")
    assert await bot_api.request_handoff(db, conv_id, bot_api.CITIZEN_REQUEST)
    samples = await scrape(app)
    assert value(samples, "govchat_handoff_waiting", claimed="no") == 1
    assert value(samples, "govchat_handoff_waiting", claimed="yes") == 0
    assert value(samples, "govchat_handoff_oldest_unclaimed_seconds") >= 0
    assert value(samples, "govchat_handoffs_requested_total", reason="citizen_request") == before + 1
    await handoff.claim(db, conv_id, "agent1")
    samples = await scrape(app)
    assert value(samples, "govchat_handoff_waiting", claimed="no") == 0
    assert value(samples, "govchat_handoff_waiting", claimed="yes") == 1

    await queue_reply(db)                       # a customer-service message waiting
    async with db.session() as session, session.begin():
        # Due in an hour: the app's own delivery worker must not take it before the scrape.
        await session.execute(update(Delivery).values(status="pending",
                                                      next_attempt_at=utcnow() + timedelta(hours=1)))
    async with db.session() as session, session.begin():
        case = Case(number="ZJ20261127-0001", day=utcnow().date(), seq=1, case_type="complaint",
                    description="路灯坏了", conversation_id=conv_id)
        session.add(case)
        await session.flush()
        session.add(CaseAttachment(case_id=case.id, kind="image", media_id="MEDIA-1"))
    samples = await scrape(app)
    assert value(samples, "govchat_wechat_deliveries_pending", status="pending") == 1
    assert value(samples, "govchat_evidence_fetches_pending") == 1
    assert value(samples, "govchat_dispatch_desk_cases") == 1


async def test_delivery_outcomes_and_retries_are_counted(db):
    delivered = metrics.DELIVERIES.value("delivered")
    undeliverable = metrics.DELIVERIES.value("undeliverable")
    retries = metrics.DELIVERY_RETRIES.value()
    async with worker(db) as (w, api):
        api.http_500 = 1                # the first try fails, the second passes
        await queue_reply(db)
        await drain(w, db)
        api.errcode = 45015             # window closed: final
        await queue_reply(db, openid="oOtherCitizen0123")
        await drain(w, db)
    assert metrics.DELIVERIES.value("delivered") == delivered + 1
    assert metrics.DELIVERIES.value("undeliverable") == undeliverable + 1
    assert metrics.DELIVERY_RETRIES.value() == retries + 1


async def test_a_late_wechat_reply_counts_the_missed_budget_and_the_delivery(db, tmp_path):
    received = metrics.MESSAGES_RECEIVED.value("wechat")
    missed = metrics.PASSIVE_MISSED.value()
    delivered = metrics.DELIVERIES.value("delivered")
    async with late_wechat(db, tmp_path) as (wechat, api):
        assert await wechat.send(text_msg("居住证怎么办理")) == "success"

        async def delivered_now():        # sent to WeChat's API and recorded
            return metrics.DELIVERIES.value("delivered") == delivered + 1
        await eventually(delivered_now)
        samples = await scrape(wechat.http)
        assert len(api.sent) == 1
    assert metrics.MESSAGES_RECEIVED.value("wechat") == received + 1
    assert metrics.PASSIVE_MISSED.value() == missed + 1
    assert value(samples, "govchat_wechat_deliveries_total", outcome="delivered") == delivered + 1
    assert value(samples, "govchat_wechat_passive_budget_missed_total") == missed + 1


async def test_the_exposition_is_strict_text_format(app):
    await app.post("/api/chat", json={"sender": "web-m4", "text": "你好"})
    text = await (await app.get("/metrics")).text()
    assert text.endswith("\n")
    typed = {}
    for line in text.splitlines():
        assert _SAMPLE.match(line) or _COMMENT.match(line), line
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in typed, f"{name} typed twice"
            typed[name] = kind
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    expected = {"govchat_messages_received": "counter", "govchat_messages_sent": "counter",
                "govchat_reply_latency_seconds": "histogram", "govchat_handoffs_requested": "counter",
                "govchat_wechat_deliveries": "counter", "govchat_wechat_delivery_retries": "counter",
                "govchat_handoff_waiting": "gauge", "govchat_wechat_deliveries_pending": "gauge",
                "govchat_evidence_fetches_pending": "gauge", "govchat_dispatch_desk_cases": "gauge",
                "govchat_rasa_up": "gauge", "govchat_kb_index_version": "gauge",
                "govchat_kb_index_entries": "gauge", "govchat_build_info": "gauge",
                "process_resident_memory_bytes": "gauge", "govchat_database_up": "gauge"}
    assert {name: families.get(name) for name in expected} == expected


async def test_labels_are_escaped():
    counter = metrics.Counter("t_total", "test", ("what",))
    counter.inc('a"b\\c\nd')
    assert counter.lines()[-1] == 't_total{what="a\\"b\\\\c\\nd"} 1'
    [family] = text_string_to_metric_families("\n".join(counter.lines()) + "\n")
    assert family.samples[0].labels == {"what": 'a"b\\c\nd'}


async def test_metrics_refused_to_a_remote_client_without_the_token(db, tmp_path):
    # Behind a trusted proxy the client is the proxy's X-Forwarded-For, not the loopback peer.
    remote = {"X-Forwarded-For": "203.0.113.7"}
    async with serve(db, tmp_path, trust_proxy=True) as (http, rasa):
        assert (await http.get("/metrics")).status == 200                      # loopback itself
        assert (await http.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})).status == 200
        resp = await http.get("/metrics", headers=remote)
        assert resp.status == 403 and "govchat_" not in await resp.text()
        # No token set: presenting one changes nothing.
        assert (await http.get("/metrics", headers={**remote, "Authorization": "Bearer "})).status == 403
    async with serve(db, tmp_path, trust_proxy=True, metrics_token=TOKEN) as (http, rasa):
        resp = await http.get("/metrics", headers=remote)
        assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
        for wrong in ("Bearer nope", f"Basic {TOKEN}", TOKEN, f"Bearer {TOKEN}x"):
            resp = await http.get("/metrics", headers={**remote, "Authorization": wrong})
            assert resp.status == 401, wrong
        samples = await scrape(http, **remote, Authorization=f"Bearer {TOKEN}")
        assert value(samples, "govchat_database_up") == 1
    # Without a trusted proxy the header is the client's to invent: the peer address decides.
    async with serve(db, tmp_path) as (http, rasa):
        assert (await http.get("/metrics", headers=remote)).status == 200


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("203.0.113.7", False), ("::ffff:10.0.0.1", False), ("fe80::1", False),
    ("", False), ("localhost", False)])
def test_loopback(address, loopback):
    assert _loopback(address) is loopback


async def test_the_scrape_answers_when_the_database_is_away(app, monkeypatch):
    from server.appkeys import DB

    def away():
        raise ConnectionRefusedError("database down")
    monkeypatch.setattr(app.server.app[DB], "session", away)
    samples = await scrape(app)
    assert value(samples, "govchat_database_up") == 0
    assert ("govchat_handoff_waiting", (("claimed", "no"),)) not in samples
    assert ("govchat_rasa_up", ()) in samples
