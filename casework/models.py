"""Units, categories, cases and the event log that timeliness reports read."""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
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


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = (UniqueConstraint("parent_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id"))
    level: Mapped[int] = mapped_column(Integer)


# Case types and the start of the 12345 lifecycle; the casework issue adds the rest.
COMPLAINT = "complaint"
REPORT = "report"
SUBMITTED = "submitted"


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


class Event(Base):
    """One timestamped fact a person waited on; reports are queries over this table."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_name_at", "name", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    value_seconds: Mapped[float | None] = mapped_column(Float)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    channel: Mapped[str | None] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
