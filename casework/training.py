"""What routing learns from: example messages (files or dispatchers' corrections) and keyword rules.

An examples file is CSV or XLSX with the columns `message, category` (the header is row 1); it
is checked whole, and importing it replaces the earlier imported examples, keeping the ones
other sources (dispatcher corrections, closed cases) added.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from casework.directory import DirectoryRejected
from casework.models import RoutingExample, RoutingKeyword
from casework.routing import Router, example_rows, train
from server.db import Database, utcnow
from server.tables import TableError, cell_text, read_records

log = logging.getLogger(__name__)

DEMO_EXAMPLES = Path(__file__).resolve().parent / "demo" / "routing_examples.csv"
IMPORT = "import"
MAX_CATEGORY = 64
MAX_KEYWORD = 64


def read_examples(path: Path | str) -> list[tuple[str, str]]:
    """(message, category) rows of an examples file; any problem rejects the whole file."""
    path = Path(path)
    try:
        records = [[cell_text(v) for v in row] for row in read_records(path, "routing examples file")]
    except TableError as exc:
        raise DirectoryRejected([str(exc)]) from None
    header = [h.strip().lower() for h in (records[0] if records else [])]
    missing = [c for c in ("message", "category") if c not in header]
    if missing:
        raise DirectoryRejected([f"row 1: missing column {', '.join(missing)}; "
                                 "the columns are message, category"])
    m, c = header.index("message"), header.index("category")
    rows, problems = [], []
    for number, raw in enumerate(records[1:], start=2):
        if not any(raw):
            continue
        message = raw[m] if m < len(raw) else ""
        category = raw[c] if c < len(raw) else ""
        if not message:
            problems.append(f"row {number}: the message is empty")
        if not category:
            problems.append(f"row {number}: the category is empty")
        elif len(category) > MAX_CATEGORY:
            problems.append(f"row {number}: the category is longer than {MAX_CATEGORY} characters")
        if message and category:
            rows.append((message, category))
    if not problems and len({c for _, c in rows}) < 2:
        problems.append(f"{path.name}: examples of at least two categories are needed, "
                        f"found {len({c for _, c in rows})}")
    if problems:
        raise DirectoryRejected(problems)
    return rows


async def replace_examples(session: AsyncSession, rows: list[tuple[str, str]], source: str = IMPORT) -> int:
    """The `source` examples become `rows`; examples from other sources stay."""
    await session.execute(delete(RoutingExample).where(RoutingExample.source == source))
    session.add_all(RoutingExample(text=t, category=c, source=source) for t, c in rows)
    await session.flush()
    return len(rows)


async def count_examples(session: AsyncSession, source: str | None = None) -> int:
    """All stored examples, or those of one `source`."""
    query = select(func.count()).select_from(RoutingExample)
    if source is not None:
        query = query.where(RoutingExample.source == source)
    return await session.scalar(query) or 0


# Keyword rules -------------------------------------------------------------------------------

async def add_keyword(session: AsyncSession, keyword: str, category: str, note: str = "") -> RoutingKeyword:
    keyword, category = keyword.strip(), category.strip()
    if not keyword or not category:
        raise ValueError("a keyword rule needs a keyword and a category")
    if len(keyword) > MAX_KEYWORD or len(category) > MAX_CATEGORY:
        raise ValueError(f"keyword and category are at most {MAX_KEYWORD} characters")
    rule = await session.scalar(select(RoutingKeyword).where(
        RoutingKeyword.keyword == keyword, RoutingKeyword.category == category))
    if rule is None:
        rule = RoutingKeyword(keyword=keyword, category=category, note=note, enabled=True)
        session.add(rule)
    else:
        rule.enabled, rule.note = True, note or rule.note
    await session.flush()
    return rule


async def list_keywords(session: AsyncSession) -> list[RoutingKeyword]:
    return list(await session.scalars(select(RoutingKeyword).order_by(RoutingKeyword.keyword)))


async def remove_keyword(session: AsyncSession, keyword: str, category: str | None = None) -> int:
    """Delete the rules for `keyword` (only the one to `category` when given); how many went."""
    query = delete(RoutingKeyword).where(RoutingKeyword.keyword == keyword.strip())
    if category:
        query = query.where(RoutingKeyword.category == category.strip())
    return (await session.execute(query)).rowcount or 0


async def set_keyword_enabled(session: AsyncSession, rule_id: int, enabled: bool) -> RoutingKeyword | None:
    rule = await session.get(RoutingKeyword, rule_id)
    if rule is not None:
        rule.enabled = enabled
        await session.flush()
    return rule


async def remove_keyword_rule(session: AsyncSession, rule_id: int) -> RoutingKeyword | None:
    """Delete one rule by id; the rule as it was, or None."""
    rule = await session.get(RoutingKeyword, rule_id)
    if rule is not None:
        await session.delete(rule)
        await session.flush()
    return rule


# Examples one at a time (the settings page) --------------------------------------------------

ADMIN = "admin"          # the source of an example typed on the settings page
PAGE_SIZE = 100


async def list_examples(session: AsyncSession, category: str | None = None, *,
                        limit: int = PAGE_SIZE, offset: int = 0) -> list[RoutingExample]:
    query = select(RoutingExample).order_by(RoutingExample.id.desc()).limit(limit).offset(offset)
    if category:
        query = query.where(RoutingExample.category == category)
    return list(await session.scalars(query))


async def example_counts(session: AsyncSession) -> dict[str, int]:
    """Examples per category, most first."""
    rows = await session.execute(select(RoutingExample.category, func.count())
                                 .group_by(RoutingExample.category))
    return dict(sorted(((c, n) for c, n in rows), key=lambda x: (-x[1], x[0])))


async def add_example(session: AsyncSession, text: str, category: str, source: str = ADMIN) -> RoutingExample:
    text, category = (text or "").strip(), (category or "").strip()
    if not text or not category:
        raise ValueError("an example needs a message and a category")
    if len(category) > MAX_CATEGORY:
        raise ValueError(f"the category is at most {MAX_CATEGORY} characters")
    example = RoutingExample(text=text, category=category, source=source)
    session.add(example)
    await session.flush()
    return example


async def remove_example(session: AsyncSession, example_id: int) -> RoutingExample | None:
    example = await session.get(RoutingExample, example_id)
    if example is not None:
        await session.delete(example)
        await session.flush()
    return example


# Retraining from the settings page -----------------------------------------------------------

@dataclass
class Retraining:
    """The settings page's 重新训练: one run at a time, in the background, its state kept for
    the page (训练中 / 已完成 with time and sample count / 失败 with the reason)."""

    running: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    samples: int | None = None
    macro_f1: float | None = None
    error: str | None = None
    task: asyncio.Task | None = field(default=None, repr=False)

    def start(self, router: Router, db: Database) -> bool:
        """Begin retraining `router` from the examples stored in `db`; False when a run is going on."""
        if self.running:
            return False
        self.running, self.started_at, self.error = True, utcnow(), None
        self.task = asyncio.create_task(self._run(router, db), name="route-retrain")
        return True

    async def _run(self, router: Router, db: Database) -> None:
        try:
            await router.refresh()          # the directory's category tree groups the labels
            async with db.session() as session:
                rows = await example_rows(session)
            if len({c for _, c in rows}) < 2:
                raise ValueError("至少需要两个分类的示例")
            # routing.train fits, saves and reloads in worker threads: the event loop stays free.
            model = await train(router, rows, cv=True)
            self.samples, self.macro_f1 = sum(model.counts.values()), model.cv_macro_f1
        except Exception as exc:    # shown on the page; the served model stays as it was
            log.exception("retraining the routing model failed")
            self.error = str(exc) or type(exc).__name__
        finally:
            self.running, self.finished_at = False, utcnow()
