"""What the rest of govchat may ask of casework: directory, cases, events."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from difflib import SequenceMatcher
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from casework import events
# The directory's files, CSV or XLSX, checked whole before anything is stored.
from casework.directory import DirectoryRejected, import_categories, import_units  # noqa: F401
from casework.events import CASE_RETURNED
from casework.models import (COMPLAINT, DISPATCHED, IN_PROGRESS, REOPENED, REPORT, RETURNED, SUBMITTED,
                             Case, CaseAttachment, Category, Event, ExtensionRequest, Unit)
from server.db import CHINA, Database

DEMO = Path(__file__).resolve().parent / "demo"
CASE_TYPE_NAMES = {COMPLAINT: "投诉", REPORT: "举报"}
# Every case status (casework/models.py) with the name citizens and staff see.
STATUS_NAMES = {"submitted": "已受理，等待派单", "dispatched": "已派单", "in_progress": "办理中",
                "returned": "已退回，等待重新派单", "replied": "已答复", "rated": "已评价",
                "closed": "已办结", "reopened": "重新办理"}


# Not replied to yet: a reply deadline runs.
OPEN = (SUBMITTED, DISPATCHED, RETURNED, IN_PROGRESS, REOPENED)
PENDING = "pending"          # an extension request not decided yet


class CaseNotFound(LookupError):
    pass


def case_number(day, seq: int) -> str:
    return f"ZJ{day:%Y%m%d}-{seq:04d}"


# A second submission this close to an earlier one by the same citizen is the same case.
DUPLICATE_WINDOW = timedelta(hours=24)
DUPLICATE_SIMILARITY = 0.75


@dataclass(frozen=True)
class Evidence:
    """An image, video, link or location the citizen sent with the case."""
    kind: str
    message_id: int | None = None
    media_id: str | None = None
    url: str | None = None
    label: str | None = None


@dataclass
class Intake:
    """What the intake form collected; nothing more than the case needs (art. 27)."""
    case_type: str
    description: str
    conversation_id: int | None = None
    place: str | None = None
    occurred: str | None = None
    phone: str | None = None
    anonymous: bool = False
    latitude: float | None = None
    longitude: float | None = None
    evidence: list[Evidence] = field(default_factory=list)
    # Where it goes, decided by routing before submission (None: the dispatcher decides).
    unit_id: str | None = None
    category_id: int | None = None
    district: str | None = None
    route_confidence: float | None = None
    deadline: date | None = None


@dataclass(frozen=True)
class Submitted:
    case: Case
    linked: bool = False        # near-identical to a recent case: added to it, not duplicated


def similar(a: str, b: str) -> bool:
    a, b = a.strip(), b.strip()
    if not a or not b:
        return False
    return a in b or b in a or SequenceMatcher(None, a, b).ratio() >= DUPLICATE_SIMILARITY


async def submit_case(db: Database, intake: Intake, *, now: datetime) -> Submitted:
    """Register a case with the next number of its China-time day, in its own transaction.

    "Tell us once": the same citizen submitting a near-identical case within 24 hours gets the
    earlier case back (`linked`), with the new evidence attached and the resubmission recorded.
    Two intakes racing for a number: the unique (day, seq) makes the loser start again.
    """
    if intake.case_type not in CASE_TYPE_NAMES:
        raise ValueError(f"unknown case type {intake.case_type!r}")
    earlier = await _recent_duplicate(db, intake, now)
    if earlier is not None:
        async with db.session() as session, session.begin():
            _attach(session, earlier.id, intake.evidence, now)
            events.record(session, events.CASE_LINKED, at=now, case_id=earlier.id,
                          conversation_id=intake.conversation_id, description=intake.description)
        return Submitted(earlier, linked=True)
    day = now.astimezone(CHINA).date()
    for _ in range(5):
        try:
            async with db.session() as session, session.begin():
                seq = (await session.scalar(select(func.max(Case.seq)).where(Case.day == day)) or 0) + 1
                case = Case(
                    number=case_number(day, seq), day=day, seq=seq, case_type=intake.case_type,
                    description=intake.description, conversation_id=intake.conversation_id,
                    created_at=now, address=intake.place, occurred=intake.occurred,
                    phone=intake.phone, anonymous=intake.anonymous, latitude=intake.latitude,
                    longitude=intake.longitude, unit_id=intake.unit_id,
                    category_id=intake.category_id, district=intake.district,
                    route_confidence=intake.route_confidence, deadline=intake.deadline)
                session.add(case)
                await session.flush()
                _attach(session, case.id, intake.evidence, now)
                events.record(session, events.CASE_SUBMITTED, at=now, case_id=case.id,
                              conversation_id=intake.conversation_id, case_type=intake.case_type,
                              evidence=len(intake.evidence))
            return Submitted(case)
        except IntegrityError:
            continue
    raise RuntimeError("could not allocate a case number after 5 tries")


async def _recent_duplicate(db: Database, intake: Intake, now: datetime) -> Case | None:
    if intake.conversation_id is None:
        return None
    async with db.session() as session:
        recent = await session.scalars(select(Case).where(
            Case.conversation_id == intake.conversation_id, Case.case_type == intake.case_type,
            Case.created_at >= now - DUPLICATE_WINDOW).order_by(Case.id.desc()))
        return next((c for c in recent if similar(c.description, intake.description)), None)


def _attach(session: AsyncSession, case_id: int, evidence: list[Evidence], now: datetime) -> None:
    session.add_all(CaseAttachment(case_id=case_id, message_id=e.message_id, kind=e.kind,
                                   media_id=e.media_id, url=e.url, label=e.label, created_at=now)
                    for e in evidence)


async def attachments(session: AsyncSession, case_id: int) -> list[CaseAttachment]:
    return list(await session.scalars(select(CaseAttachment).where(
        CaseAttachment.case_id == case_id).order_by(CaseAttachment.id)))


async def last_case_at(session: AsyncSession, conversation_id: int) -> datetime | None:
    """When this conversation last submitted a case: evidence before it belongs to that case."""
    return await session.scalar(select(func.max(Case.created_at)).where(
        Case.conversation_id == conversation_id))


async def find_case(session: AsyncSession, number: str,
                    conversation_id: int | None = None) -> Case:
    """The case with this number; with `conversation_id`, only if that conversation submitted
    it — a citizen sees their own cases, anyone else is told there is no such case."""
    case = await session.scalar(select(Case).where(Case.number == number.strip().upper()))
    if case is None or (conversation_id is not None and case.conversation_id != conversation_id):
        raise CaseNotFound(number)
    return case


async def cases_of(session: AsyncSession, conversation_id: int, limit: int = 5) -> list[Case]:
    """The cases this conversation submitted, newest first."""
    return list(await session.scalars(select(Case).where(Case.conversation_id == conversation_id)
                                      .order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)))


async def unit_name(session: AsyncSession, unit_id: str | None) -> str | None:
    unit = await session.get(Unit, unit_id) if unit_id else None
    return unit.name if unit else None


async def count_units(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Unit)) or 0


# Evidence files: fetched from the channel that received them, a few tries spread over hours
# (WeChat keeps them 3 days): try n waits FETCH_BACKOFF[n] after the case was submitted.
FETCH_BACKOFF = [timedelta(0), timedelta(minutes=1), timedelta(minutes=10), timedelta(hours=1),
                 timedelta(hours=6)]
FETCH_ATTEMPTS = len(FETCH_BACKOFF)


@dataclass(frozen=True)
class ToFetch:
    attachment_id: int
    case_id: int
    media_id: str
    kind: str
    conversation_id: int | None
    attempts: int


# Image and video evidence with a MediaId whose file is not kept yet, and tries left.
EVIDENCE_TO_KEEP = (CaseAttachment.media_id.is_not(None), CaseAttachment.stored_path.is_(None),
                    CaseAttachment.fetch_error.is_(None), CaseAttachment.kind.in_(("image", "video")),
                    CaseAttachment.fetch_attempts < FETCH_ATTEMPTS)


async def evidence_pending(session: AsyncSession) -> int:
    """How many evidence files are still to be fetched (due now or waiting for their retry)."""
    return await session.scalar(select(func.count()).select_from(CaseAttachment)
                                .where(*EVIDENCE_TO_KEEP)) or 0


async def evidence_to_fetch(session: AsyncSession, now: datetime, limit: int = 10) -> list[ToFetch]:
    """Evidence still to keep (EVIDENCE_TO_KEEP) whose next try is due, oldest first."""
    rows = await session.execute(
        select(CaseAttachment, Case.conversation_id).join(Case, Case.id == CaseAttachment.case_id)
        .where(*EVIDENCE_TO_KEEP).order_by(CaseAttachment.id).limit(limit * 5))
    due = [ToFetch(a.id, a.case_id, a.media_id, a.kind, conv, a.fetch_attempts)
           for a, conv in rows if a.created_at + FETCH_BACKOFF[a.fetch_attempts] <= now]
    return due[:limit]


async def claim_fetch(session: AsyncSession, item: ToFetch) -> bool:
    """Count one attempt; False when another worker took this attempt first."""
    result = await session.execute(update(CaseAttachment).where(
        CaseAttachment.id == item.attachment_id, CaseAttachment.fetch_attempts == item.attempts,
        CaseAttachment.stored_path.is_(None)).values(fetch_attempts=item.attempts + 1))
    return result.rowcount == 1


async def evidence_stored(session: AsyncSession, attachment_id: int, *, path: str,
                          content_type: str, size: int) -> None:
    await session.execute(update(CaseAttachment).where(CaseAttachment.id == attachment_id).values(
        stored_path=path, content_type=content_type, size=size, fetch_error=None))


async def evidence_lost(session: AsyncSession, attachment_id: int, reason: str) -> None:
    """The file cannot be had (expired, unknown id): recorded so staff know, not tried again."""
    await session.execute(update(CaseAttachment).where(CaseAttachment.id == attachment_id)
                          .values(fetch_error=reason[:200]))


# ---------------------------------------------------------------- the desks' reads (admin/case_pages.py)

# A case as the desks list it: the case, its category's name and its unit's name.
Listed = tuple[Case, "str | None", "str | None"]


def _listed():
    return (select(Case, Category.name, Unit.name)
            .outerjoin(Category, Category.id == Case.category_id)
            .outerjoin(Unit, Unit.id == Case.unit_id))


async def unit_desk_cases(session: AsyncSession, unit_id: str | None, *, status: str = "",
                          overdue_on: date | None = None, limit: int = 50,
                          offset: int = 0) -> tuple[int, list[Listed]]:
    """(how many match, one page of them) for 本单位办件: `unit_id` None is every unit's;
    `overdue_on` keeps open cases whose deadline is before that day. Open cases first by
    deadline, then the rest newest first."""
    filters = []
    if unit_id is not None:
        filters.append(Case.unit_id == unit_id)
    if status:
        filters.append(Case.status == status)
    if overdue_on is not None:
        filters += [Case.status.in_(OPEN), Case.deadline < overdue_on]
    total = await session.scalar(select(func.count()).select_from(Case).where(*filters)) or 0
    rows = await session.execute(
        _listed().where(*filters)
        .order_by(Case.status.notin_(OPEN), Case.deadline.is_(None), Case.deadline,
                  Case.created_at.desc(), Case.id.desc())
        .limit(limit).offset(offset))
    return total, [tuple(row) for row in rows]


@dataclass(frozen=True)
class Returned:
    """A case sent back to the dispatcher: which unit returned it and why (the last return)."""
    listed: Listed
    by: str | None
    reason: str


@dataclass(frozen=True)
class DispatchQueue:
    submitted: list[Listed]          # waiting for a unit, routing confident or not scored
    low: list[Listed]                # routing confidence below the threshold
    escalated: list[Listed]          # overdue and escalated by the case job, still open
    returned: list[Returned]
    extensions: list[tuple[ExtensionRequest, Case]]   # pending, oldest first


async def dispatch_queue(session: AsyncSession, threshold: float) -> DispatchQueue:
    """分派中心's five queues."""
    low = Case.route_confidence < threshold

    async def listed(query) -> list[Listed]:
        return [tuple(row) for row in await session.execute(query)]

    returned = []
    for row in await listed(_listed().where(Case.status == RETURNED).order_by(Case.created_at)):
        last = await session.scalar(
            select(Event.detail).where(Event.case_id == row[0].id, Event.name == CASE_RETURNED)
            .order_by(Event.at.desc(), Event.id.desc()).limit(1)) or {}
        returned.append(Returned(row, last.get("unit_id"), last.get("reason") or ""))
    return DispatchQueue(
        submitted=await listed(_listed().where(
            Case.status == SUBMITTED, Case.route_confidence.is_(None) | ~low).order_by(Case.created_at)),
        low=await listed(_listed().where(Case.status.in_((SUBMITTED, DISPATCHED)), low)
                         .order_by(Case.created_at)),
        escalated=await listed(_listed().where(Case.escalated_at.is_not(None), Case.status.in_(OPEN))
                               .order_by(Case.deadline)),
        returned=returned,
        extensions=[tuple(row) for row in await session.execute(
            select(ExtensionRequest, Case).join(Case, Case.id == ExtensionRequest.case_id)
            .where(ExtensionRequest.status == PENDING).order_by(ExtensionRequest.requested_at))])


async def pending_extension(session: AsyncSession, case_id: int) -> ExtensionRequest | None:
    return await session.scalar(select(ExtensionRequest).where(
        ExtensionRequest.case_id == case_id, ExtensionRequest.status == PENDING))


async def case_names(session: AsyncSession, case: Case) -> tuple[str | None, str | None]:
    """(category name, unit name) of a case."""
    category = await session.get(Category, case.category_id) if case.category_id else None
    return category.name if category else None, await unit_name(session, case.unit_id)


async def units(session: AsyncSession, *, handling: bool = False) -> list[Unit]:
    """The directory's units; `handling`: those a case can be dispatched to (not the centre)."""
    query = select(Unit).order_by(Unit.id)
    return list(await session.scalars(query.where(~Unit.is_dispatcher) if handling else query))


async def desk_state(session: AsyncSession, unit_id: str | None = None) -> tuple[tuple, dict]:
    """(fingerprint, counts) of a desk's cases — one unit's, or every case for the dispatcher —
    for the live queues: the fingerprint changes with any case event or case moving in or out;
    the counts are what the page may show."""
    scope = [Case.unit_id == unit_id] if unit_id is not None else []
    last_event = await session.scalar(
        select(func.max(Event.id)).join(Case, Case.id == Event.case_id).where(*scope))
    total, open_ = (await session.execute(
        select(func.count(), func.count().filter(Case.status.in_(OPEN)))
        .select_from(Case).where(*scope))).one()
    counts = {"total": total, "open": open_}
    if unit_id is None:
        counts["extensions"] = await session.scalar(
            select(func.count()).select_from(ExtensionRequest)
            .where(ExtensionRequest.status == PENDING)) or 0
        counts["waiting"] = await session.scalar(
            select(func.count()).select_from(Case)
            .where(Case.status.in_((SUBMITTED, RETURNED)))) or 0
    last_case = await session.scalar(select(func.max(Case.id)).where(*scope))
    extension = await session.scalar(select(func.max(ExtensionRequest.id)).join(
        Case, Case.id == ExtensionRequest.case_id).where(*scope))
    return (last_event, last_case, extension, *counts.values()), counts
