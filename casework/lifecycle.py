"""The 12345 closed loop: one function per transition of a case.

submitted → dispatched → in_progress (accepted) or returned (misrouted, within 2 working days)
→ [extension requested → approved or refused] → replied → rated (satisfied) or reopened
(dissatisfied: the same unit works it again) → closed; a reply left unrated is closed by the
job in casework/jobs.py.

Each transition runs in one transaction: it reads the case (locked on PostgreSQL), refuses with
`TransitionRefused` when the case's status or unit does not allow it, changes the case and
records one event naming who (`actor`), when (`now`) and why. What the citizen must hear goes
through the outbox after the commit (house convention 3). A unit handler's `unit_id` is checked
against the case; whether the user may act at all is the consoles' business.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.outbox import Outbox
from casework import events
from casework.api import STATUS_NAMES
from casework.events import (CASE_ACCEPTED, CASE_CLOSED, CASE_DISPATCHED, CASE_REOPENED,
                             CASE_REPLIED, CASE_RETURNED, EXTENSION_APPROVED, EXTENSION_REFUSED,
                             EXTENSION_REQUESTED)
from casework.calendar import china_date, deadline_for, load_calendar
from casework.models import (CLOSED, DISPATCHED, IN_PROGRESS, RATED, REOPENED, REPLIED, RETURNED,
                             SUBMITTED, Case, Event, ExtensionRequest, Unit)
from server.db import Database

# Event names of the lifecycle (reports query by these; rating_given is events.RATING_GIVEN).

RETURN_WINDOW = 2                    # working days after dispatch a unit may return a case
WORKING = (IN_PROGRESS, REOPENED)    # the unit is working the case: it may extend or reply
DISSATISFIED = 2                     # ratings at or below this reopen the case
RATING_QUESTION = "请对本次办理结果评价：非常满意、满意、基本满意、不满意、非常不满意"
PENDING, APPROVED, REFUSED = "pending", "approved", "refused"


class TransitionRefused(Exception):
    """The case cannot make this step now; `reason` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _case(session: AsyncSession, number: str) -> Case:
    number = number.strip().upper()
    # Take the row's write lock before reading it. On PostgreSQL FOR UPDATE would do; SQLite has
    # no row locks, and a transaction that read first and then writes fails (its snapshot is
    # stale) when another transition committed in between. A no-op UPDATE as the first
    # statement queues the two transitions instead, on both backends.
    await session.execute(update(Case).where(Case.number == number).values(number=Case.number))
    case = await session.scalar(select(Case).where(Case.number == number))
    if case is None:
        raise TransitionRefused(f"没有编号为 {number} 的办件")
    return case


def _require(case: Case, allowed: tuple[str, ...], doing: str) -> None:
    """Refused in the words staff read on the desks (Chinese, like the rest of the consoles)."""
    if case.status not in allowed:
        now_name = STATUS_NAMES.get(case.status, case.status)
        allowed_names = "或".join(f"“{STATUS_NAMES.get(a, a)}”" for a in allowed)
        raise TransitionRefused(f"办件 {case.number} 当前为“{now_name}”，只有{allowed_names}时才能{doing}")


def _own(case: Case, unit_id: str | None) -> None:
    if not unit_id or case.unit_id != unit_id:
        raise TransitionRefused(f"办件 {case.number} 由 {case.unit_id or '（无）'} 承办，"
                                f"不是 {unit_id or '（无）'}：只有承办单位可以操作")


def _reason(reason: str | None, doing: str) -> str:
    if not reason or not reason.strip():
        raise TransitionRefused(f"{doing}需要填写理由")
    return reason.strip()


def _record(session: AsyncSession, name: str, case: Case, actor: str, now: datetime, **detail):
    events.record(session, name, at=now, case_id=case.id, conversation_id=case.conversation_id,
                  actor=actor, **detail)


def _new_deadline(case: Case, deadline: date | None) -> None:
    """A new deadline gets its own reminder and, when missed, its own escalation."""
    case.deadline, case.reminded_at, case.escalated_at = deadline, None, None


async def tell(db: Database, outbox: Outbox | None, case: Case, *texts: str) -> None:
    """Store and send what the citizen must hear, after the transition committed."""
    if case.conversation_id is None:
        return
    if outbox is None:
        from server.outbox import build_outbox   # server/ wires the channels; imported late
        outbox = build_outbox(db)
    for text in texts:
        await outbox.send(case.conversation_id, text, source="unit", kind="case",
                          source_ref=f"case:{case.number}")


def closed_text(case: Case) -> str:
    return f"您的办件 {case.number} 已办结，感谢您的支持。"


async def dispatcher_unit(session: AsyncSession) -> Unit:
    unit = await session.scalar(select(Unit).where(Unit.is_dispatcher.is_(True)).order_by(Unit.id))
    if unit is None:
        raise TransitionRefused("尚未设置分派中心：请先导入单位（govchat units import）")
    return unit


async def dispatch(db: Database, number: str, unit_id: str, *, actor: str, now: datetime,
                   reason: str | None = None,
                   deadline_days: Mapping[str, int] | None = None) -> Case:
    """Send a submitted case to a unit, or reassign a returned one to another unit (with a
    reason). The deadline counts from submission (calendar.deadline_for) unless already set."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _require(case, (SUBMITTED, RETURNED), "派单")
        unit = await session.get(Unit, unit_id)
        if unit is None:
            raise TransitionRefused(f"没有编号为 {unit_id} 的单位")
        if case.status == RETURNED:
            reason = _reason(reason, "重新派单")
            returned_by = await session.scalar(
                select(Event.detail).where(Event.case_id == case.id, Event.name == CASE_RETURNED)
                .order_by(Event.at.desc(), Event.id.desc()).limit(1))
            if returned_by and returned_by.get("unit_id") == unit_id:
                raise TransitionRefused(f"{unit_id} 已将办件 {case.number} 作为非本单位事项退回："
                                        "请派给其他单位")
        if case.deadline is None:
            calendar = await load_calendar(session)
            case.deadline = deadline_for(case.case_type, case.created_at, calendar, deadline_days)
        previous = case.unit_id
        case.status, case.unit_id, case.dispatched_at = DISPATCHED, unit_id, now
        _record(session, CASE_DISPATCHED, case, actor, now, unit_id=unit_id, previous_unit=previous,
                deadline=case.deadline.isoformat(), reason=reason)
    return case


async def accept(db: Database, number: str, *, unit_id: str, actor: str, now: datetime) -> Case:
    """签收: the unit takes the case on; it is in progress from now."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _own(case, unit_id)
        _require(case, (DISPATCHED,), "签收")
        case.status, case.accepted_at = IN_PROGRESS, now
        _record(session, CASE_ACCEPTED, case, actor, now, unit_id=unit_id)
    return case


async def return_misrouted(db: Database, number: str, *, unit_id: str, reason: str, actor: str,
                           now: datetime) -> Case:
    """退回: not this unit's business; back to the dispatcher within 2 working days of dispatch."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _own(case, unit_id)
        _require(case, (DISPATCHED, IN_PROGRESS), "退回")
        reason = _reason(reason, "退回")
        calendar = await load_calendar(session)
        elapsed = calendar.workdays_between(case.dispatched_at, now)
        if elapsed > RETURN_WINDOW:
            raise TransitionRefused(
                f"办件 {case.number} 派单已 {elapsed} 个工作日，只能在派单后 {RETURN_WINDOW} 个工作日内"
                "退回；请联系分派中心")
        case.status, case.unit_id = RETURNED, (await dispatcher_unit(session)).id
        case.accepted_at = None
        _record(session, CASE_RETURNED, case, actor, now, unit_id=unit_id, reason=reason,
                workdays_after_dispatch=elapsed)
    return case


async def request_extension(db: Database, number: str, *, unit_id: str, days: int, reason: str,
                            actor: str, now: datetime) -> ExtensionRequest:
    """The unit asks for `days` more working days; a dispatcher decides."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _own(case, unit_id)
        _require(case, WORKING, "延期")
        reason = _reason(reason, "申请延期")
        if days is None or days < 1:
            raise TransitionRefused(f"延期至少1个工作日，不能是 {days}")
        if await _pending(session, case) is not None:
            raise TransitionRefused(f"办件 {case.number} 已有一个延期申请在等待分派中心审批")
        request = ExtensionRequest(case_id=case.id, days=days, reason=reason, requested_by=actor,
                                   requested_at=now, status=PENDING)
        session.add(request)
        _record(session, EXTENSION_REQUESTED, case, actor, now, unit_id=unit_id, days=days,
                reason=reason)
    return request


async def _pending(session: AsyncSession, case: Case) -> ExtensionRequest | None:
    return await session.scalar(select(ExtensionRequest).where(
        ExtensionRequest.case_id == case.id, ExtensionRequest.status == PENDING).with_for_update())


async def _decide(session: AsyncSession, number: str, decision: str, actor: str, now: datetime,
                  reason: str | None) -> tuple[Case, ExtensionRequest]:
    case = await _case(session, number)
    _require(case, WORKING, "延期")
    request = await _pending(session, case)
    if request is None:
        raise TransitionRefused(f"办件 {case.number} 没有待审批的延期申请")
    request.status, request.decided_by, request.decided_at = decision, actor, now
    request.decision_reason = reason
    return case, request


async def approve_extension(db: Database, number: str, *, actor: str, now: datetime,
                            reason: str | None = None, outbox: Outbox | None = None) -> Case:
    """The deadline moves by the requested number of working days; the citizen is told."""
    async with db.session() as session, session.begin():
        case, request = await _decide(session, number, APPROVED, actor, now, reason)
        calendar = await load_calendar(session)
        before = case.deadline
        _new_deadline(case, calendar.add_workdays(before, request.days))
        _record(session, EXTENSION_APPROVED, case, actor, now, days=request.days,
                deadline_before=before.isoformat(), deadline=case.deadline.isoformat(),
                reason=reason or request.reason)
    await tell(db, outbox, case, f"您的办件 {case.number} 经批准延期办理，预计答复日期调整为 "
                                  f"{case.deadline:%Y-%m-%d}。")
    return case


async def refuse_extension(db: Database, number: str, *, actor: str, now: datetime,
                           reason: str) -> Case:
    async with db.session() as session, session.begin():
        reason = _reason(reason, "不批准延期")
        case, request = await _decide(session, number, REFUSED, actor, now, reason)
        _record(session, EXTENSION_REFUSED, case, actor, now, days=request.days, reason=reason)
    return case


async def reply(db: Database, number: str, *, unit_id: str, text: str, actor: str, now: datetime,
                outbox: Outbox | None = None) -> Case:
    """答复: the unit's reply is stored on the case and sent to the citizen, who is then asked
    to rate it."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _own(case, unit_id)
        _require(case, WORKING, "答复")
        if not text or not text.strip():
            raise TransitionRefused("答复内容不能为空")
        text = text.strip()
        case.status, case.reply_text, case.replied_at, case.rating = REPLIED, text, now, None
        _record(session, CASE_REPLIED, case, actor, now, unit_id=unit_id,
                on_time=case.deadline is None or china_date(now) <= case.deadline)
        unit = await session.get(Unit, unit_id)
    await tell(db, outbox, case, f"您的办件 {case.number} 已由{unit.name if unit else unit_id}答复：\n{text}",
                RATING_QUESTION)
    return case


async def awaiting_rating(session: AsyncSession, conversation_id: int) -> Case | None:
    """The latest replied, unrated case of this conversation: where a rating now belongs."""
    return await session.scalar(select(Case).where(
        Case.conversation_id == conversation_id, Case.status == REPLIED)
        .order_by(Case.replied_at.desc(), Case.id.desc()).limit(1))


async def rate(db: Database, number: str, score: int, *, actor: str, now: datetime,
               deadline_days: Mapping[str, int] | None = None) -> Case:
    """评价 1–5. Dissatisfied (1–2) reopens the case with the same unit and a new deadline."""
    if score not in range(1, 6):
        raise TransitionRefused(f"评价应为1到5分，不能是 {score}")
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _require(case, (REPLIED,), "评价")
        case.rating = score
        events.record(session, events.RATING_GIVEN, at=now, case_id=case.id,
                      conversation_id=case.conversation_id, actor=actor, score=score)
        if score > DISSATISFIED:
            case.status = RATED
        else:
            calendar = await load_calendar(session)
            case.status = REOPENED
            _new_deadline(case, deadline_for(case.case_type, now, calendar, deadline_days))
            _record(session, CASE_REOPENED, case, actor, now, unit_id=case.unit_id, score=score,
                    deadline=case.deadline.isoformat(), reason="dissatisfied")
    return case


async def close(db: Database, number: str, *, actor: str, now: datetime,
                reason: str | None = None, outbox: Outbox | None = None) -> Case:
    """办结: after the reply, rated or not (the job closes unrated ones with reason "auto")."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _require(case, (REPLIED, RATED), "办结")
        case.status, case.closed_at = CLOSED, now
        _record(session, CASE_CLOSED, case, actor, now, reason=reason, rating=case.rating)
    await tell(db, outbox, case, closed_text(case))
    return case


# Queries for the staff's lists (the CLI now, the consoles later).

async def find_cases(session: AsyncSession, *, status: str | None = None, unit_id: str | None = None,
                     overdue_on: date | None = None) -> list[Case]:
    """Cases newest first; `overdue_on`: only those still with a unit past their deadline."""
    query = select(Case).order_by(Case.created_at.desc(), Case.id.desc())
    if status:
        query = query.where(Case.status == status)
    if unit_id:
        query = query.where(Case.unit_id == unit_id)
    if overdue_on:
        query = query.where(Case.status.in_((DISPATCHED, *WORKING)), Case.deadline < overdue_on)
    return list(await session.scalars(query))


async def trail(session: AsyncSession, case_id: int) -> list[Event]:
    """Every event of a case, in order: who did what, when and why."""
    return list(await session.scalars(
        select(Event).where(Event.case_id == case_id).order_by(Event.at, Event.id)))


# Waiting for the citizen (补充材料): the clock of every working-time measure stops meanwhile
# (casework/timeliness.py subtracts these intervals). The status does not change.

WAITING_TEXT = "关于您的办件 {number}，承办单位需要您补充以下情况：\n{question}\n请直接回复本消息。"


async def waiting_since(session: AsyncSession, case: Case) -> datetime | None:
    """When the case began waiting for the citizen, or None when it is not waiting."""
    latest = (await session.execute(
        select(Event.name, Event.at).where(
            Event.case_id == case.id,
            Event.name.in_((events.CASE_WAITING_CITIZEN, events.CASE_CITIZEN_ANSWERED)))
        .order_by(Event.at.desc(), Event.id.desc()).limit(1))).first()
    return latest.at if latest and latest.name == events.CASE_WAITING_CITIZEN else None


async def await_citizen(db: Database, number: str, actor: str, question: str, now: datetime, *,
                        outbox: Outbox | None = None) -> Case:
    """The unit asks the citizen a question; the case waits for the answer, status unchanged."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        _require(case, (DISPATCHED, *WORKING), "向群众询问")
        if not question or not question.strip():
            raise TransitionRefused("询问内容不能为空")
        if await waiting_since(session, case) is not None:
            raise TransitionRefused(f"办件 {case.number} 已在等待群众答复")
        question = question.strip()
        _record(session, events.CASE_WAITING_CITIZEN, case, actor, now, unit_id=case.unit_id,
                question=question)
    await tell(db, outbox, case, WAITING_TEXT.format(number=case.number, question=question))
    return case


async def citizen_answered(db: Database, number: str, now: datetime, *,
                           actor: str = "citizen") -> Case:
    """The citizen answered: the clock runs again (value: seconds the case waited)."""
    async with db.session() as session, session.begin():
        case = await _case(session, number)
        since = await waiting_since(session, case)
        if since is None:
            raise TransitionRefused(f"办件 {case.number} 没有在等待群众答复")
        events.record(session, events.CASE_CITIZEN_ANSWERED, at=now, since=since, case_id=case.id,
                      conversation_id=case.conversation_id, actor=actor, unit_id=case.unit_id)
    return case
