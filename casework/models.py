"""Units, categories, cases and the event log that timeliness reports read."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint, false)
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, UTCDateTime, utcnow


class Unit(Base):
    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)     # e.g. JH-RSJ
    name: Mapped[str] = mapped_column(String(128), unique=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"))
    categories: Mapped[list] = mapped_column(JSON, default=list)       # category names it handles
    regions: Mapped[list] = mapped_column(JSON, default=list)          # districts; empty = all
    is_dispatcher: Mapped[bool] = mapped_column(default=False)
    # When the unit's staff are on duty ("08:30"–"17:30"; end before start crosses midnight);
    # None keeps casework.calendar.DutyHours' default. Hand-off waits are counted inside them.
    duty_start: Mapped[str | None] = mapped_column(String(5))
    duty_end: Mapped[str | None] = mapped_column(String(5))


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("parent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    level: Mapped[int] = mapped_column(Integer)


# Case types and the statuses of the 12345 lifecycle (casework/lifecycle.py; their Chinese names
# in casework.api.STATUS_NAMES).
COMPLAINT = "complaint"
REPORT = "report"
SUBMITTED = "submitted"      # 受理: waiting for the dispatcher
DISPATCHED = "dispatched"      # 派单: sent to a unit, which must accept or return it
RETURNED = "returned"          # 退回: misrouted, back with the dispatcher
IN_PROGRESS = "in_progress"    # 签收/办理: accepted by the unit
REPLIED = "replied"            # 答复: the reply reached the citizen, who is asked to rate it
RATED = "rated"                # 评价: rated satisfied (basically satisfied or better)
REOPENED = "reopened"          # 重新办理: rated dissatisfied, the unit works it again
CLOSED = "closed"              # 办结


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (UniqueConstraint("day", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)      # ZJ20261126-0007
    day: Mapped[date] = mapped_column(Date)                           # China date of intake
    seq: Mapped[int] = mapped_column(Integer)
    case_type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=SUBMITTED)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # What the intake form collected (art. 27: nothing more than the case needs).
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    district: Mapped[str | None] = mapped_column(String(32))          # 区/县 as routed
    address: Mapped[str | None] = mapped_column(String(200))          # where, as the citizen said it
    latitude: Mapped[float | None] = mapped_column(Float)             # a WeChat location, when sent
    longitude: Mapped[float | None] = mapped_column(Float)
    occurred: Mapped[str | None] = mapped_column(String(100))         # when, as the citizen said it
    phone: Mapped[str | None] = mapped_column(String(32))             # only with consent; masked in lists
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # 举报 without identity
    route_confidence: Mapped[float | None] = mapped_column(Float)
    deadline: Mapped[date | None] = mapped_column(Date)               # reply due (China date, working days)
    # The lifecycle (casework/lifecycle.py): when each step happened, the reply and its rating.
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())   # latest dispatch
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())      # latest reply
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reply_text: Mapped[str | None] = mapped_column(Text)
    rating: Mapped[int | None] = mapped_column(Integer)                     # 1–5, the latest
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())     # case_due_soon for this deadline
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())    # overdue, flagged for the dispatcher
    # Where an imported past case came from ("teddycup:24"): a second import skips it
    # (casework/history.py). None for cases taken in here.
    external_ref: Mapped[str | None] = mapped_column(String(64), unique=True)


class CaseAttachment(Base):
    """Evidence a citizen sent during intake: an image, video, link or location message."""

    __tablename__ = "case_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    kind: Mapped[str] = mapped_column(String(16))                     # image, video, link, location
    media_id: Mapped[str | None] = mapped_column(String(256))         # WeChat MediaId (3 days on WeChat)
    url: Mapped[str | None] = mapped_column(String(1024))             # PicUrl / link URL
    label: Mapped[str | None] = mapped_column(String(200))            # location label, link title
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # WeChat keeps a MediaId's file 3 days only: the channel fetches it into var/media/.
    stored_path: Mapped[str | None] = mapped_column(String(300))      # relative to var/media
    content_type: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    fetch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    fetch_error: Mapped[str | None] = mapped_column(String(200))     # why it could not be kept


class WorkdayOverride(Base):
    """A day the statutory calendar gets wrong for us (a local holiday, a late State Council notice)."""

    __tablename__ = "workday_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str] = mapped_column(String(100), default="")


class CaseDeadline(Base):
    """Working days a unit has to reply to a case of this type, as set on the settings page.

    A row here wins over CASE_DEADLINE_DAYS, which wins over casework.calendar's defaults.
    """

    __tablename__ = "case_deadlines"

    case_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    working_days: Mapped[int] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoutingKeyword(Base):
    """An admin-readable rule: a message containing `keyword` belongs to `category`."""

    __tablename__ = "routing_keywords"
    __table_args__ = (UniqueConstraint("keyword", "category"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    keyword: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(64))                 # a category name (classifier label)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RoutingExample(Base):
    """A message with its category: what the routing classifier is trained on."""

    __tablename__ = "routing_examples"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(64), index=True)
    source: Mapped[str] = mapped_column(String(32), default="import")  # import, dispatcher, case
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    """One timestamped fact a person waited on; reports are queries over this table."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_name_at", "name", "at"),
                      # A case's or a conversation's trail (case facts, spot checks, case pages).
                      Index("ix_events_case_id", "case_id"),
                      Index("ix_events_conversation_id", "conversation_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    value_seconds: Mapped[float | None] = mapped_column(Float)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    channel: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class ExtensionRequest(Base):
    """A unit asking for more working days; a dispatcher approves or refuses it."""

    __tablename__ = "extension_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    days: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, approved, refused
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)


class JobLease(Base):
    """Which server instance runs a background job now: claimed with a conditional UPDATE."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(48), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SpotCheck(Base):
    """A quarterly spot check (art. 32): a reproducible random sample drawn with a stored seed."""

    __tablename__ = "spot_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    quarter: Mapped[str] = mapped_column(String(7))                  # "2026Q3"
    period_start: Mapped[date] = mapped_column(Date)                 # China dates, inclusive
    period_end: Mapped[date] = mapped_column(Date)
    seed: Mapped[int] = mapped_column(Integer)
    per_unit: Mapped[int] = mapped_column(Integer)                   # items of each kind per unit
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SpotCheckItem(Base):
    """One sampled conversation or case, and the inspector's finding on it."""

    __tablename__ = "spot_check_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    spot_check_id: Mapped[int] = mapped_column(ForeignKey("spot_checks.id", ondelete="CASCADE"),
                                               index=True)
    kind: Mapped[str] = mapped_column(String(16))                    # conversation, case
    unit_id: Mapped[str | None] = mapped_column(ForeignKey("units.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    finding: Mapped[str | None] = mapped_column(String(16))          # None until checked: ok, problem
    comment: Mapped[str] = mapped_column(Text, default="")
    checked_by: Mapped[str | None] = mapped_column(String(64))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AssessmentIndicator(Base):
    """One row of the annual assessment table (art. 31): a measure, its weight, target and rule."""

    __tablename__ = "assessment_indicators"

    id: Mapped[int] = mapped_column(primary_key=True)
    measure: Mapped[str] = mapped_column(String(48))                 # a timeliness measure's key
    label: Mapped[str] = mapped_column(String(64))                   # its Chinese name in reports
    weight: Mapped[float] = mapped_column(Float)                     # points it is worth
    target: Mapped[float] = mapped_column(Float)                     # full points at or beyond it
    higher_is_better: Mapped[bool] = mapped_column(Boolean, default=True)
    position: Mapped[int] = mapped_column(Integer, default=0)        # order in the table


class CaseFact(Base):
    """One timeliness observation of a case (casework/facts.py), kept so that reports group
    rows in SQL instead of replaying every case's events: recomputed for a case whenever it has
    new events, and for all cases when the working-day calendar changes."""

    __tablename__ = "case_facts"
    __table_args__ = (Index("ix_case_facts_measure_day", "measure", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    measure: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)                          # China date it counts on
    unit_id: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(64))
    case_type: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)


class FactMark(Base):
    """How far case_facts has read the event log, and for which calendar it was computed."""

    __tablename__ = "fact_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer, default=0)
    calendar_key: Mapped[str] = mapped_column(String(64), default="")
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
