"""Importing past cases from a message board's export, so timeliness reports see real history.

A file (CSV UTF-8 or XLSX, read by server/tables.py) has the columns of the Teddy Cup export:
留言编号, 留言用户, 留言主题, 留言时间, 留言详情, 答复意见, 答复时间 (others, such as
reply_days_derived, are ignored). Each good row becomes a closed case with the events a live case
would have had, at the historical times: case_submitted, case_replied (value: seconds from the
message to the reply) and case_closed. Nobody is told anything: the cases have no conversation.

- Times are China time (server.db.CHINA) as written, stored in UTC. A time without its hour
  (2018/4/24) is taken as 00:00 of that day: the China date, hence working-day timeliness, is right.
- The number is ZJyyyymmdd-nnnn of the China day of 留言时间, after those that day already has.
- 留言用户 is personal data (art. 27) and not needed for timeliness: it is not read at all.
- 留言编号 is kept as `external_ref` ("teddycup:24"), unique: a second import skips those rows.
- A bad row is reported with its row number (the header is row 1) and skipped; with `strict`
  any bad row refuses the whole file before anything is stored.
- Rows are stored in batches of `BATCH` per transaction; a batch that loses a case number to a
  concurrent intake is tried again.
"""
from __future__ import annotations

import time as clock
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from casework import events
from casework.api import CASE_TYPE_NAMES, case_number
from casework.calendar import deadline_for, load_calendar
from casework.lifecycle import CASE_CLOSED, CASE_REPLIED, TransitionRefused, dispatcher_unit
from casework.models import CLOSED, Case, Event, Unit
from server.db import CHINA, Database, utcnow
from server.tables import TableError, cell_text, read_records

REF, SUBJECT, SUBMITTED, DETAIL, REPLY, REPLIED = "留言编号", "留言主题", "留言时间", "留言详情", "答复意见", "答复时间"
COLUMNS = (REF, SUBJECT, SUBMITTED, DETAIL, REPLY, REPLIED)   # 留言用户 may be there; never read
BATCH = 500
ACTOR = "history-import"
REF_LENGTH = 64
# How a time may be written: 2019/4/25 9:32:09, 2019-04-08 08:37:20, 2019/4/25 9:32, 2018/4/24.
FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M",
           "%Y/%m/%d", "%Y-%m-%d")


class HistoryRejected(ValueError):
    """The file was refused whole; `problems` names each by row. Nothing was stored."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class PastCase:
    """One good row: what the case needs, nothing more."""
    row: int
    ref: str                 # external_ref, "teddycup:24"
    description: str
    submitted_at: datetime   # UTC
    reply: str
    replied_at: datetime     # UTC


@dataclass
class Summary:
    rows: int = 0                                     # data rows in the file (blank ones not counted)
    imported: int = 0
    present: int = 0                                  # skipped: imported before
    rejected: list[str] = field(default_factory=list)  # "row 7: reply before submission (…)"
    reasons: Counter = field(default_factory=Counter)  # reason → rows
    seconds: float = 0.0


def parse_time(value) -> datetime | None:
    """A cell as an aware UTC datetime, reading it as China time; None when it is not a time."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        text = " ".join(cell_text(value).split())
        for pattern in FORMATS:
            try:
                moment = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        else:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=CHINA)
    return moment.astimezone(timezone.utc)


def read_rows(path: Path | str, source: str, *, now: datetime | None = None
              ) -> tuple[list[PastCase], list[tuple[int, str, str]], int]:
    """The file's good rows, its bad ones as (row, reason, detail), and its number of data rows.
    A file that cannot be read, or lacks a column, raises HistoryRejected."""
    path, now = Path(path), now or utcnow()
    try:
        records = read_records(path, "history file")
    except TableError as exc:
        raise HistoryRejected([str(exc)]) from None
    header = [cell_text(h) for h in (records[0] if records else [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise HistoryRejected([f"row 1: missing column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)}; the columns are {', '.join(COLUMNS)}"])
    col = {name: header.index(name) for name in COLUMNS}
    good: list[PastCase] = []
    bad: list[tuple[int, str, str]] = []
    seen: dict[str, int] = {}
    rows = 0
    for number, raw in enumerate(records[1:], start=2):
        if not any(cell_text(v) for v in raw):
            continue
        rows += 1
        cell = {c: raw[i] if i < len(raw) else None for c, i in col.items()}
        problem = _check(number, cell, source, seen, now)
        if isinstance(problem, PastCase):
            good.append(problem)
            seen[problem.ref] = number
        else:
            bad.append((number, *problem))
    return good, bad, rows


def _check(number: int, cell: dict, source: str, seen: dict[str, int], now: datetime
           ) -> PastCase | tuple[str, str]:
    key = cell_text(cell[REF])
    if not key:
        return f"empty {REF}", ""
    ref = f"{source}:{key}"
    if len(ref) > REF_LENGTH:
        return f"{REF} too long", f"{ref[:20]}… is over {REF_LENGTH} characters with the source"
    if ref in seen:
        return f"{REF} repeated", f"{key} is also row {seen[ref]}"
    detail, subject, reply = (cell_text(cell[c]) for c in (DETAIL, SUBJECT, REPLY))
    if not detail:
        return f"empty {DETAIL}", ""
    if not reply:
        return f"empty {REPLY}", ""
    submitted, replied = parse_time(cell[SUBMITTED]), parse_time(cell[REPLIED])
    if submitted is None:
        return f"unparsable {SUBMITTED}", repr(cell_text(cell[SUBMITTED]))
    if replied is None:
        return f"unparsable {REPLIED}", repr(cell_text(cell[REPLIED]))
    if replied < submitted:
        return "reply before submission", f"{cell_text(cell[REPLIED])} < {cell_text(cell[SUBMITTED])}"
    if replied > now:
        return "reply in the future", cell_text(cell[REPLIED])
    description = f"{subject}\n{detail}" if subject else detail
    return PastCase(number, ref, description, submitted, reply, replied)


async def import_history(db: Database, path: Path | str, *, case_type: str = "complaint",
                         unit_id: str | None = None, source: str = "teddycup",
                         strict: bool = False, deadline_days: Mapping[str, int] | None = None,
                         batch: int = BATCH, now: datetime | None = None) -> Summary:
    """Store the file's rows as closed cases of `case_type` with `unit_id` (default: the
    dispatcher unit). Raises HistoryRejected for a file refused whole (unreadable, a column
    missing, an unknown unit or type, or any bad row with `strict`)."""
    started = clock.monotonic()
    if case_type not in CASE_TYPE_NAMES:
        raise HistoryRejected([f"unknown case type {case_type!r}; use {' or '.join(CASE_TYPE_NAMES)}"])
    source = source.strip()
    if not source or ":" in source:
        raise HistoryRejected([f"the source {source!r} must be a non-empty name without ':'"])
    good, bad, rows = read_rows(path, source, now=now)
    if strict and bad:
        raise HistoryRejected([f"row {n}: {reason}{' ' + detail if detail else ''}"
                               for n, reason, detail in bad])
    async with db.session() as session:
        if unit_id is None:
            try:
                unit_id = (await dispatcher_unit(session)).id
            except TransitionRefused as exc:
                raise HistoryRejected([f"{exc.reason}，或用 --unit 指定单位"]) from None
        elif await session.get(Unit, unit_id) is None:
            raise HistoryRejected([f"there is no unit {unit_id}"])
        calendar = await load_calendar(session)
    summary = Summary(rows=rows)
    for n, reason, detail in bad:
        summary.rejected.append(f"row {n}: {reason}{' ' + detail if detail else ''}")
        summary.reasons[reason] += 1
    for start in range(0, len(good), batch):
        chunk = good[start:start + batch]
        for attempt in range(5):
            try:
                added, present = await _store(db, chunk, case_type, unit_id, calendar, deadline_days)
                break
            except IntegrityError:
                # A live intake took a number of the same day meanwhile, or another import
                # stored a row: recount and try the batch again.
                if attempt == 4:
                    raise
        summary.imported += added
        summary.present += present
    summary.seconds = clock.monotonic() - started
    return summary


async def _store(db: Database, chunk: list[PastCase], case_type: str, unit_id: str, calendar,
                 deadline_days: Mapping[str, int] | None) -> tuple[int, int]:
    """One transaction: the batch's new rows as cases with their events; (added, already present)."""
    async with db.session() as session, session.begin():
        known = set(await session.scalars(select(Case.external_ref).where(
            Case.external_ref.in_([p.ref for p in chunk]))))
        new = [p for p in chunk if p.ref not in known]
        if not new:
            return 0, len(chunk)
        days = {p.submitted_at.astimezone(CHINA).date() for p in new}
        next_seq = dict((await session.execute(
            select(Case.day, func.max(Case.seq)).where(Case.day.in_(days)).group_by(Case.day))).all())
        cases = []
        for p in new:
            day = p.submitted_at.astimezone(CHINA).date()
            seq = next_seq[day] = next_seq.get(day, 0) + 1
            cases.append(dict(
                number=case_number(day, seq), day=day, seq=seq, case_type=case_type,
                description=p.description, status=CLOSED, conversation_id=None, unit_id=unit_id,
                created_at=p.submitted_at,
                deadline=deadline_for(case_type, p.submitted_at, calendar, deadline_days),
                replied_at=p.replied_at, closed_at=p.replied_at, reply_text=p.reply,
                external_ref=p.ref, anonymous=False))
        # Many rows per statement (executemany), then the ids by ref: an ORM flush would insert
        # and read back one row at a time.
        await session.execute(insert(Case).execution_options(render_nulls=True), cases)
        ids = dict((await session.execute(select(Case.external_ref, Case.id).where(
            Case.external_ref.in_([p.ref for p in new])))).all())
        log = _Collector()
        for p, case in zip(new, cases):
            on_time = p.replied_at.astimezone(CHINA).date() <= case["deadline"]
            case_id = ids[p.ref]
            events.record(log, events.CASE_SUBMITTED, at=p.submitted_at, case_id=case_id,
                          actor=ACTOR, case_type=case_type, imported=p.ref)
            events.record(log, CASE_REPLIED, at=p.replied_at, since=p.submitted_at,
                          case_id=case_id, actor=ACTOR, unit_id=unit_id, on_time=on_time,
                          imported=p.ref)
            events.record(log, CASE_CLOSED, at=p.replied_at, case_id=case_id, actor=ACTOR,
                          reason="imported", rating=None)
        # render_nulls: rows with a None stay in one statement instead of splitting by keys.
        await session.execute(insert(Event).execution_options(render_nulls=True), [
            {c: getattr(e, c) for c in EVENT_COLUMNS} for e in log])
    return len(new), len(chunk) - len(new)


EVENT_COLUMNS = ("name", "at", "value_seconds", "conversation_id", "case_id", "channel", "actor",
                 "detail")


class _Collector(list):
    """Takes the events `events.record` builds (it only calls `add`), to insert them in bulk."""

    add = list.append
