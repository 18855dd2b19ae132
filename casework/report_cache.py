"""Recent reports kept in memory, so the report page answers in well under 2 s at scale.

A quarter's per-unit report over a year of traffic takes seconds to compute (docs/timeliness.md,
"Scale"); people open the page many times a day and compare a few views. A report is computed at
most once per MAX_AGE for the same window and cuts (the page says when it was computed and
offers a fresh one), concurrent requests for the same view wait for one computation instead of
each starting their own, and the server warms the page's default view in the background
(`warm`), so the first person of the day does not wait either. Per process: each server instance
keeps its own, which only costs a computation per instance.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from datetime import date, datetime

from casework.measures import period_of
from casework.report import Report, all_cuts
from server.db import CHINA, Database, utcnow

log = logging.getLogger(__name__)
MAX_AGE = 300.0          # seconds a computed report is shown before it is computed again
SIZE = 32                # views kept
DEFAULT_CUTS = ("unit", "month")      # the report page's default view: by unit, with the trend


class ReportCache:
    def __init__(self, max_age: float = MAX_AGE, size: int = SIZE) -> None:
        self.max_age, self.size = max_age, size
        self._items: OrderedDict[tuple, tuple[float, dict[str | None, Report]]] = OrderedDict()
        self._locks: dict[tuple, asyncio.Lock] = {}

    async def get(self, db: Database, first: date, last: date, cuts: Iterable[str | None], *,
                  fresh: bool = False, units: Iterable[str] | None = None) -> dict[str | None, Report]:
        units = frozenset(units) if units is not None else None
        key = (db.url, first, last, tuple(cuts), units)
        if not fresh and (hit := self._recent(key)) is not None:
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        started = time.monotonic()
        async with lock:
            hit = self._items.get(key)
            if hit is not None and hit[0] >= started:      # computed while this request waited
                return hit[1]
            if not fresh and (hit := self._recent(key)) is not None:
                return hit
            async with db.session() as session:
                reports = await all_cuts(session, first, last, key[3], now=utcnow(), units=units)
            self._items[key] = (time.monotonic(), reports)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                old, _ = self._items.popitem(last=False)
                self._locks.pop(old, None)
            return reports

    def _recent(self, key: tuple) -> dict[str | None, Report] | None:
        hit = self._items.get(key)
        if hit is None or time.monotonic() - hit[0] >= self.max_age:
            return None
        self._items.move_to_end(key)
        return hit[1]

    async def warm(self, db: Database, now: datetime | None = None) -> None:
        """Compute the page's default view (this quarter to today) afresh."""
        today = (now or utcnow()).astimezone(CHINA).date()
        await self.get(db, period_of(today, "quarter").first, today, DEFAULT_CUTS, fresh=True)


async def keep_warm(cache: ReportCache, db: Database, every: float = MAX_AGE * 0.8) -> None:
    """Background task: the default view never older than MAX_AGE when someone opens it."""
    while True:
        try:
            await cache.warm(db)
        except asyncio.CancelledError:
            raise
        except Exception:                      # a report that fails now is retried next round
            log.exception("warming the report page failed")
        await asyncio.sleep(every)
