"""Taking a case from the intake form: route it, give it its working-day deadline, submit it,
and dispatch it to the responsible unit when routing is confident (else the dispatcher's desk).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import select

from casework import api, lifecycle
from casework.calendar import deadline_for, load_calendar
from casework.models import Case, Category, Unit
from casework.routing import Route, Router
from server.db import Database

log = logging.getLogger(__name__)
ROUTER_ACTOR = "router"


@dataclass(frozen=True)
class Taken:
    case: Case
    linked: bool                 # added to the citizen's recent near-identical case
    unit_name: str | None        # who handles it (the dispatcher's name when not yet dispatched)
    deadline: date | None
    dispatched: bool


async def take_case(db: Database, intake: api.Intake, *, router: Router | None, now: datetime,
                    deadline_days: Mapping[str, int] | None = None) -> Taken:
    route = await _route(router, intake)
    async with db.session() as session:
        calendar = await load_calendar(session)
        category_id = await _category_id(session, route.category) if route and route.category else None
        dispatcher = await session.scalar(select(Unit.id).where(Unit.is_dispatcher.is_(True)))
    intake = replace(intake, category_id=category_id,
                     district=route.district if route else None,
                     route_confidence=route.confidence if route else None,
                     unit_id=dispatcher,
                     deadline=deadline_for(intake.case_type, now, calendar, deadline_days))
    submitted = await api.submit_case(db, intake, now=now)
    case = submitted.case
    dispatched = False
    if (not submitted.linked and route and route.unit_id and route.unit_id != dispatcher):
        try:
            case = await lifecycle.dispatch(db, case.number, route.unit_id, actor=ROUTER_ACTOR,
                                            now=now, reason=route.reason,
                                            deadline_days=deadline_days)
            dispatched = True
        except lifecycle.TransitionRefused as exc:     # the dispatcher's desk takes it
            log.warning("case %s not dispatched automatically: %s", case.number, exc)
    async with db.session() as session:
        unit_name = await api.unit_name(session, case.unit_id)
    return Taken(case, submitted.linked, unit_name, case.deadline, dispatched)


async def _route(router: Router | None, intake: api.Intake) -> Route | None:
    if router is None:
        return None
    try:
        return await router.route(" ".join(filter(None, [intake.description, intake.place])))
    except Exception:       # routing is advice: the dispatcher routes by hand when it fails
        log.exception("routing failed; the case goes to the dispatcher")
        return None


async def _category_id(session, name: str) -> int | None:
    """The category of that name, the most specific one when the tree repeats a name."""
    return await session.scalar(select(Category.id).where(Category.name == name)
                                .order_by(Category.level.desc(), Category.id).limit(1))
