"""The case job: reminders before a deadline, escalation when it is missed, and closing replies
the citizen did not rate.

It runs every minute in every server instance, but one run at a time across them: a run first
claims the `job_leases` row with a conditional UPDATE (the same on SQLite and PostgreSQL; a
lease lapses after LEASE if its holder died). Every action is also idempotent on its own: it is
a conditional UPDATE of the case (`reminded_at IS NULL`, `escalated_at IS NULL`, `status =
'replied'`) and its event is recorded in the same transaction only when that UPDATE changed the
row, so two runs that overlap anyway record each event once. All state is in the database, so a
restart loses nothing. `run_once(db, now)` is one run, for tests and for the loop below.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.outbox import Outbox
from casework import events
from casework.calendar import china_date, load_calendar
from casework.events import CASE_CLOSED, CASE_DUE_SOON, CASE_OVERDUE
from casework.lifecycle import closed_text, tell
from casework.models import CLOSED, DISPATCHED, IN_PROGRESS, REOPENED, REPLIED, Case, JobLease
from server.appkeys import CONFIG, DB
from server.config import Config
from server.db import Database, utcnow

log = logging.getLogger(__name__)

JOB = "case-sweep"
LEASE = timedelta(minutes=5)
SYSTEM = "system"                              # the actor of what the job does
WAITING_FOR_UNIT = (DISPATCHED, IN_PROGRESS, REOPENED)


@dataclass
class Sweep:
    """What one run did (case numbers); `ran` is False when another instance held the lease."""
    ran: bool = True
    reminded: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def new_holder() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


async def claim(db: Database, name: str, holder: str, now: datetime, ttl: timedelta = LEASE) -> bool:
    """Take the lease `name` until now + ttl if it is free, lapsed, or already ours."""
    async with db.session() as session:
        known = await session.get(JobLease, name)
    if known is None:
        try:
            async with db.session() as session, session.begin():
                session.add(JobLease(name=name, holder="", expires_at=now))
        except IntegrityError:          # another instance created it a moment ago
            pass
    async with db.session() as session, session.begin():
        result = await session.execute(
            update(JobLease)
            .where(JobLease.name == name, or_(JobLease.expires_at <= now, JobLease.holder == holder))
            .values(holder=holder, expires_at=now + ttl)
            .execution_options(synchronize_session=False))
        return result.rowcount == 1


async def release(db: Database, name: str, holder: str, now: datetime) -> None:
    async with db.session() as session, session.begin():
        await session.execute(
            update(JobLease).where(JobLease.name == name, JobLease.holder == holder)
            .values(expires_at=now).execution_options(synchronize_session=False))


async def _once(db: Database, case: Case, condition, values: dict, event: str, now: datetime,
                **detail) -> bool:
    """Change the case only if `condition` still holds, and record `event` only if it did."""
    async with db.session() as session, session.begin():
        result = await session.execute(
            update(Case).where(Case.id == case.id, condition).values(**values)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            return False
        events.record(session, event, at=now, case_id=case.id,
                      conversation_id=case.conversation_id, actor=SYSTEM, **detail)
        return True


async def run_once(db: Database, now: datetime, *, autoclose_days: int = 3,
                   holder: str | None = None, outbox: Outbox | None = None) -> Sweep:
    holder = holder or new_holder()
    if not await claim(db, JOB, holder, now):
        return Sweep(ran=False)
    try:
        return await sweep(db, now, autoclose_days, outbox)
    finally:
        await release(db, JOB, holder, now)


async def sweep(db: Database, now: datetime, autoclose_days: int = 3,
                outbox: Outbox | None = None) -> Sweep:
    """One pass over the cases, without the lease (run_once takes it first)."""
    async with db.session() as session:
        calendar = await load_calendar(session)
        waiting = list(await session.scalars(select(Case).where(
            Case.status.in_(WAITING_FOR_UNIT), Case.deadline.is_not(None),
            or_(Case.reminded_at.is_(None), Case.escalated_at.is_(None))).order_by(Case.id)))
        replied = list(await session.scalars(
            select(Case).where(Case.status == REPLIED).order_by(Case.id)))
    done = Sweep()
    today = china_date(now)
    next_workday = calendar.add_workdays(today, 1)
    for case in waiting:
        # The same deadline and still with the unit: a decision meanwhile changes nothing here.
        unchanged = (Case.deadline == case.deadline) & Case.status.in_(WAITING_FOR_UNIT)
        if case.deadline < today and case.escalated_at is None:
            if await _once(db, case, unchanged & Case.escalated_at.is_(None), {"escalated_at": now},
                           CASE_OVERDUE, now, unit_id=case.unit_id, deadline=case.deadline.isoformat(),
                           workdays_overdue=calendar.workdays_between(case.deadline, today)):
                done.escalated.append(case.number)
        elif today <= case.deadline <= next_workday and case.reminded_at is None:
            if await _once(db, case, unchanged & Case.reminded_at.is_(None), {"reminded_at": now},
                           CASE_DUE_SOON, now, unit_id=case.unit_id, deadline=case.deadline.isoformat()):
                done.reminded.append(case.number)
    for case in replied:
        if today <= calendar.add_workdays(case.replied_at, autoclose_days):
            continue
        if await _once(db, case, (Case.status == REPLIED) & (Case.replied_at == case.replied_at),
                       {"status": CLOSED, "closed_at": now}, CASE_CLOSED, now, reason="auto",
                       rating=None):
            done.closed.append(case.number)
            await tell(db, outbox, case, closed_text(case))
    return done


async def _loop(db: Database, config: Config) -> None:
    holder = new_holder()
    while True:
        try:
            await run_once(db, utcnow(), autoclose_days=config.case_autoclose_days, holder=holder)
        except Exception:           # logged; the next run tries again
            log.exception("case job run failed")
        await asyncio.sleep(config.case_job_interval)


async def job_context(app: web.Application) -> AsyncIterator[None]:
    """The case job runs as long as the app (server/app.py cleanup_ctx)."""
    task = asyncio.create_task(_loop(app[DB], app[CONFIG]), name="case-jobs")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
