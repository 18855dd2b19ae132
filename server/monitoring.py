"""`GET /metrics` for Prometheus: loopback, or a bearer token (GOVCHAT_METRICS_TOKEN).

This process's counters (server/metrics.py), then what is read when Prometheus scrapes: queue
depths from the database — COUNTs over the queues, so every instance reports the same number
however many there are — Rasa's health from the supervisor, the Q&A index's version, the process.
If the database is away the scrape still answers, with govchat_database_up 0.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import platform
import time
from collections.abc import Iterator

from aiohttp import web
from sqlalchemy import func, select

from admin.auth import client_ip
from bot.models import STAFF, Conversation
from casework.api import PENDING as EXTENSION_PENDING, evidence_pending
from casework.models import RETURNED, SUBMITTED, Case, ExtensionRequest
from channels.wechat.models import PENDING, SENDING, Delivery
from server.appkeys import CONFIG, DB, KB, RASA, SUPERVISOR
from server.db import utcnow
from server.metrics import CONTENT_TYPE, counted, gauge, head, number

log = logging.getLogger(__name__)


def _age(since, now) -> float:
    return max(0.0, (now - since).total_seconds()) if since is not None else 0.0


async def _queues(db) -> list[str]:
    """Queue depths, each a COUNT the database answers from the table (indexed where it is big)."""
    now = utcnow()
    async with db.session() as session:
        handoffs = (await session.execute(
            select(Conversation.assigned_to.is_(None), func.count(), func.min(Conversation.handoff_at))
            .where(Conversation.state == STAFF).group_by(Conversation.assigned_to.is_(None)))).all()
        deliveries = (await session.execute(
            select(Delivery.status, func.count(), func.min(Delivery.created_at))
            .where(Delivery.status.in_((PENDING, SENDING))).group_by(Delivery.status))).all()
        evidence = await evidence_pending(session)
        desk = await session.scalar(select(func.count()).select_from(Case).where(
            Case.status.in_((SUBMITTED, RETURNED))))
        extensions = await session.scalar(select(func.count()).select_from(ExtensionRequest).where(
            ExtensionRequest.status == EXTENSION_PENDING))
    waiting = {bool(unclaimed): (n, oldest) for unclaimed, n, oldest in handoffs}
    pending = {status: (n, oldest) for status, n, oldest in deliveries}
    oldest_delivery = min((o for _, o in pending.values() if o is not None), default=None)
    return [
        *gauge("govchat_handoff_waiting", "Conversations with staff, by whether someone has claimed them.",
                [({"claimed": "no"}, waiting.get(True, (0, None))[0]),
                 ({"claimed": "yes"}, waiting.get(False, (0, None))[0])]),
        *gauge("govchat_handoff_oldest_unclaimed_seconds",
                "Seconds the longest-waiting unclaimed hand-off has waited (0: none).",
                [({}, _age(waiting.get(True, (0, None))[1], now))]),
        *gauge("govchat_wechat_deliveries_pending",
                "Customer-service messages not sent yet: pending (waiting or backing off) or sending.",
                [({"status": s}, pending.get(s, (0, None))[0]) for s in (PENDING, SENDING)]),
        *gauge("govchat_wechat_delivery_oldest_pending_seconds",
                "Age of the oldest customer-service message not sent yet (0: none).",
                [({}, _age(oldest_delivery, now))]),
        *gauge("govchat_evidence_fetches_pending",
                "Case images and videos still to be fetched from WeChat (kept there 3 days only).",
                [({}, evidence or 0)]),
        *gauge("govchat_dispatch_desk_cases", "Cases on the dispatcher's desk (submitted or returned).",
                [({}, desk or 0)]),
        *gauge("govchat_dispatch_desk_extension_requests",
                "Extension requests waiting for the dispatcher.", [({}, extensions or 0)]),
    ]


async def _rasa(app: web.Application) -> list[str]:
    state = await app[RASA].ping()
    supervisor = app.get(SUPERVISOR)
    lines = gauge("govchat_rasa_up", "1 when Rasa answers HTTP, else 0.", [({}, state == "ok")])
    if supervisor is not None:
        if state == "ok":
            supervisor.mark_serving()
        states = ("stopped", "starting", "running", "restarting", "failed")
        lines += gauge("govchat_rasa_process_state", "The supervised Rasa process's state (one is 1).",
                        [({"state": s}, supervisor.state == s) for s in states])
        lines += head("govchat_rasa_restarts_total", "counter",
                       "Times the supervisor restarted Rasa after it exited.")
        lines.append(f"govchat_rasa_restarts_total {supervisor.restarts}")
    return lines


def _knowledge_base(app: web.Application) -> list[str]:
    kb = app[KB]
    newest = max((qa.version_id for qa in kb.index.entries.values()), default=0)
    return [*gauge("govchat_kb_index_entries", "Published Q&A entries in this instance's index.",
                    [({}, kb.size)]),
            *gauge("govchat_kb_index_version",
                    "Newest published version id in this instance's index; instances that differ "
                    "for long serve different answers.", [({}, newest)])]


def _process() -> Iterator[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("govchat")
    except PackageNotFoundError:
        ours = "unknown"
    yield from gauge("govchat_build_info", "The server's version and Python (always 1).",
                      [({"version": ours, "python": platform.python_version()}, 1)])
    times = os.times()
    yield from head("process_cpu_seconds_total", "counter", "CPU seconds, user and system.")
    yield f"process_cpu_seconds_total {number(times.user + times.system)}"
    try:     # Linux: what prometheus_client's process collector reads
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        yield from gauge("process_resident_memory_bytes", "Resident memory.", [({}, rss)])
        yield from gauge("process_open_fds", "Open file descriptors.",
                          [({}, len(os.listdir("/proc/self/fd")))])
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        yield from gauge("process_start_time_seconds", "Start time, seconds since the epoch.",
                          [({}, boot + ticks / os.sysconf("SC_CLK_TCK"))])
    except (OSError, ValueError, StopIteration):
        pass


async def exposition(app: web.Application) -> str:
    lines = counted()
    started = time.monotonic()
    queues, rasa = await asyncio.gather(_queues(app[DB]), _rasa(app), return_exceptions=True)
    if isinstance(queues, BaseException):     # the scrape still answers: say the database is away
        log.warning("metrics: queue depths unavailable: %s", queues)
        queues = []
    lines += gauge("govchat_database_up", "1 when the queue depths could be read, else 0.",
                    [({}, bool(queues))])
    lines += queues
    if isinstance(rasa, BaseException):
        log.warning("metrics: Rasa's state unavailable: %s", rasa)
        rasa = gauge("govchat_rasa_up", "1 when Rasa answers HTTP, else 0.", [({}, 0)])
    lines += rasa
    lines += _knowledge_base(app)
    lines += _process()
    lines += gauge("govchat_metrics_scrape_seconds", "Seconds this scrape took to read.",
                    [({}, round(time.monotonic() - started, 4))])
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- access

def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def refusal(request: web.Request) -> web.Response | None:
    """None when the caller may read the metrics: from loopback (the client's address, behind a
    trusted proxy), or with `Authorization: Bearer $GOVCHAT_METRICS_TOKEN`. Else 401 or 403."""
    token = request.app[CONFIG].metrics_token
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return None
    if _loopback(client_ip(request)):
        return None
    if token:
        return web.Response(status=401, text="metrics need a bearer token\n",
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    return web.Response(status=403, text="metrics are served to loopback only\n")


async def metrics(request: web.Request) -> web.Response:
    refused = refusal(request)
    if refused is not None:
        return refused
    return web.Response(body=(await exposition(request.app)).encode(),
                        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics, name="metrics")
