"""Report benchmark (issue 7): a year of traffic for 200 units in PostgreSQL, then the reports.

    .venv/bin/python bench/report_bench.py [--messages 1000000 --cases 100000 --units 200]
                                           [--database rb_full] [--reuse] [--runs 3]

Creates (or with --reuse keeps) the database, fills it with bench/report_data.py (seeded), and
prints a table: the one-time build of the case facts (casework/facts.py), an incremental
refresh after new events, the quarterly per-unit report and other cuts through
casework.report, and the report page rendered over HTTP on loopback for a signed-in admin
(the consoles as server/app.py assembles them). Targets: quarterly per-unit report ≤ 10 s, page
≤ 2 s. Results are recorded in docs/timeliness.md.
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiohttp import web                                              # noqa: E402
from aiohttp.test_utils import TestClient, TestServer               # noqa: E402
from sqlalchemy import func, select                                  # noqa: E402

from admin.api import create_user                                    # noqa: E402
from admin.auth import admin_middleware                              # noqa: E402
from admin.models import User                                        # noqa: E402
from admin.routes import setup_routes                                # noqa: E402
from bench.report_data import generate                               # noqa: E402
from casework import events, facts                                   # noqa: E402
from casework.calendar import load_calendar                          # noqa: E402
from casework.models import Case                                     # noqa: E402
from casework.report import timeliness_report                        # noqa: E402
from server import migrate                                           # noqa: E402
from server.appkeys import CONFIG, DB                                # noqa: E402
from server.config import Config                                     # noqa: E402
from server.db import Database                                       # noqa: E402
from server.errors import error_middleware, security_headers         # noqa: E402

NOW = datetime(2026, 12, 31, 12, tzinfo=timezone.utc)
Q3 = (date(2026, 7, 1), date(2026, 9, 30))
PASSWORD = "Bench-report-2026"


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True,
                   capture_output=True)


async def _timed(work, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


async def _report(db: Database, by: str | None, first: date, last: date):
    async with db.session() as session:
        return await timeliness_report(session, first, last, by, now=NOW)


async def _page(db: Database, runs: int) -> tuple[float, float] | None:
    """The report page for Q3 per unit: computed afresh (重新统计), and as most views find it
    (the same view within 5 minutes, or the default view the server keeps warm)."""
    app = web.Application(middlewares=[security_headers, error_middleware, admin_middleware])
    app[CONFIG] = Config(database_url=db.url, rasa_manage=False, embedder="none")
    app[DB] = db
    setup_routes(app)
    if "report-timeliness" not in {r.name for r in app.router.resources() if r.name}:
        return None                        # the page is not built in this checkout
    async with db.session() as session, session.begin():
        if await session.scalar(select(User).where(User.username == "bench-admin")) is None:
            await create_user(session, username="bench-admin", role="admin", actor="bench",
                              password=PASSWORD)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/admin/login", data={"username": "bench-admin",
                                                       "password": PASSWORD})
        assert resp.status == 200, await resp.text()
        url = f"/admin/reports?from={Q3[0]}&to={Q3[1]}&by=unit"

        def get(fresh: bool):
            async def fetch():
                r = await client.get(url + ("&fresh=1" if fresh else ""))
                assert r.status == 200, (r.status, (await r.text())[:300])
                return await r.text()
            return fetch

        cold, _ = await _timed(get(True), runs)
        warm, _ = await _timed(get(False), runs)
        return cold, warm


async def main(args) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{args.database}"
    rows: list[tuple[str, str]] = []
    if not args.reuse:
        _psql(f"DROP DATABASE IF EXISTS {args.database}")
        _psql(f"CREATE DATABASE {args.database}")
        await asyncio.to_thread(migrate.upgrade, url)
        t = time.perf_counter()
        counts = await generate(url, messages=args.messages, cases=args.cases, units=args.units)
        rows.append(("generate (COPY) " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
                     f"{time.perf_counter() - t:.1f} s"))
    else:
        await asyncio.to_thread(migrate.upgrade, url)
    db = Database(url)
    try:
        async with db.session() as session:
            calendar = await load_calendar(session)
        async with db.session() as session, session.begin():
            t = time.perf_counter()
            n = await facts.rebuild(session, calendar, now=NOW)
        rows.append((f"case facts, built once ({n:,} cases)", f"{time.perf_counter() - t:.1f} s"))

        # An incremental refresh: 200 cases get a new event, as an hour of work would.
        async with db.session() as session, session.begin():
            ids = list(await session.scalars(select(Case.id).order_by(Case.id).limit(200)))
            for case_id in ids:
                events.record(session, events.CASE_DUE_SOON, at=NOW, case_id=case_id)
        async with db.session() as session:
            t = time.perf_counter()
            n = await facts.refresh_apart(session, calendar, now=NOW + timedelta(hours=1))
        rows.append((f"case facts, incremental ({n:,} cases with new events)",
                     f"{time.perf_counter() - t:.2f} s"))

        for label, by, window in (("quarterly report per unit (Q3)", "unit", Q3),
                                  ("quarterly report per category", "category", Q3),
                                  ("quarterly report per channel", "channel", Q3),
                                  ("year by month", "month", (date(2026, 1, 1), date(2026, 12, 31))),
                                  ("year per unit", "unit", (date(2026, 1, 1), date(2026, 12, 31)))):
            seconds, report = await _timed(lambda: _report(db, by, *window), args.runs)
            rows.append((f"{label}: {len(report.rows)} rows", f"{seconds:.2f} s"))
        page = await _page(db, args.runs)
        if page is None:
            rows.append(("report page /admin/reports", "(page not built)"))
        else:
            rows.append(("report page, Q3 per unit + monthly trend, computed afresh", f"{page[0]:.2f} s"))
            rows.append(("report page, Q3 per unit, as cached (within 5 min / kept warm)",
                         f"{page[1]:.2f} s"))
        async with db.session() as session:
            size = await session.scalar(select(func.pg_database_size(args.database)))
        rows.append(("database size", f"{size / 2**20:,.0f} MiB"))
    finally:
        await db.dispose()
    width = max(len(r[0]) for r in rows)
    print(f"\n{'step'.ljust(width)} | median of {args.runs}")
    print(f"{'-' * width}-|-----------")
    for name, value in rows:
        print(f"{name.ljust(width)} | {value}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--database", default="report_bench")
    parser.add_argument("--reuse", action="store_true", help="keep the database already filled")
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
