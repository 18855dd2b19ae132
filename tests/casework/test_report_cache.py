"""The report pages' cache: one computation per view and age, fresh on request, none doubled."""
import asyncio
from datetime import date

from casework import lifecycle, report_cache
from casework.report_cache import ReportCache
from tests.casework.test_timeliness import china, directory, dispatched

FIRST, LAST = date(2026, 10, 1), date(2026, 12, 31)


async def _replied_case(db, sender: str) -> None:
    number = await dispatched(db, sender, china(2026, 11, 2, 10), "JH-CGJ")
    await lifecycle.accept(db, number, unit_id="JH-CGJ", actor="cgj", now=china(2026, 11, 2, 11))
    await lifecycle.reply(db, number, unit_id="JH-CGJ", text="已处理", actor="cgj", now=china(2026, 11, 4, 9))


async def test_a_view_is_computed_once_until_it_is_old_or_asked_fresh(db, monkeypatch):
    await directory(db)
    await _replied_case(db, "o-1")
    calls = []
    real = report_cache.all_cuts

    async def counting(*args, **kwargs):
        calls.append(args[1:3])
        return await real(*args, **kwargs)

    monkeypatch.setattr(report_cache, "all_cuts", counting)
    cache = ReportCache(max_age=60)
    first = await cache.get(db, FIRST, LAST, ["unit"])
    await _replied_case(db, "o-2")                         # new work: not seen until recomputed
    assert await cache.get(db, FIRST, LAST, ["unit"]) is first and len(calls) == 1
    assert first["unit"].total.values["replies"] == 1
    fresh = await cache.get(db, FIRST, LAST, ["unit"], fresh=True)
    assert fresh["unit"].total.values["replies"] == 2 and len(calls) == 2
    await cache.get(db, FIRST, LAST, ["month"])            # another view: its own computation
    assert len(calls) == 3
    old = ReportCache(max_age=0)
    await old.get(db, FIRST, LAST, ["unit"])
    await old.get(db, FIRST, LAST, ["unit"])
    assert len(calls) == 5                                  # too old at once: computed each time


async def test_concurrent_requests_for_one_view_share_one_computation(db, monkeypatch):
    await directory(db)
    await _replied_case(db, "o-1")
    calls = []
    real = report_cache.all_cuts

    async def slow(*args, **kwargs):
        calls.append(1)
        await asyncio.sleep(0.2)
        return await real(*args, **kwargs)

    monkeypatch.setattr(report_cache, "all_cuts", slow)
    cache = ReportCache()
    results = await asyncio.gather(*[cache.get(db, FIRST, LAST, ["unit"]) for _ in range(5)])
    assert len(calls) == 1 and all(r is results[0] for r in results)
