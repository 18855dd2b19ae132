"""What the rest of govchat may ask of the Q&A base.

Consoles, Rasa actions and the CLI call these; none of them touches the kb_* tables directly.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import date
from pathlib import Path

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from knowledge_base import workflow
from knowledge_base.models import PUBLISHED, Entry, Version
from knowledge_base.embeddings import Embedder, make_embedder
# The file format lives in files.py; callers reach it through this module.
from knowledge_base.files import COLUMNS, ImportRejected, Row, read_table, write_table  # noqa: F401
from knowledge_base.search import Decision, PublishedQA, QAIndex
from knowledge_base.settings import SearchSettings
from knowledge_base.vectors import VectorStore
from server.db import Database

log = logging.getLogger(__name__)
DEMO_QA = Path(__file__).resolve().parent / "demo" / "qa.csv"


async def export_rows(session: AsyncSession) -> list[Row]:
    """The latest version of every entry (published or not), in the order entries were first
    imported, as import reads it: exporting an imported file gives the same file."""
    latest = (
        select(Version.entry_id, func.max(Version.number).label("number"))
        .group_by(Version.entry_id).subquery()
    )
    stmt = (
        select(Entry.external_id, Version)
        .join(Version, Version.entry_id == Entry.id)
        .join(latest, (latest.c.entry_id == Version.entry_id) & (latest.c.number == Version.number))
        .order_by(Entry.id)
    )
    return [Row(ext_id, v.question, tuple(v.similar_questions), v.answer, v.category, v.unit,
                tuple(v.tags or ()), v.valid_from, v.valid_to, v.notice_until)
            for ext_id, v in (await session.execute(stmt)).all()]


async def import_rows(session: AsyncSession, rows: list[Row], actor: str, publish: bool) -> int:
    """Add each row as a new version of its entry (creating the entry on first sight).

    With `publish`, the new version replaces the published one at once, recorded as approved
    by `actor`. Runs inside the caller's transaction; the caller writes the audit row.
    """
    for row in rows:
        version = await workflow.new_version(
            session, row.id, actor, question=row.question, similar_questions=list(row.similar_questions),
            answer=row.answer, category=row.category, unit=row.unit, tags=list(row.tags),
            valid_from=row.valid_from, valid_to=row.valid_to, notice_until=row.notice_until)
        if publish:
            await workflow.publish(session, version, actor)
    return len(rows)


async def published(session: AsyncSession, today: date | None = None) -> list[PublishedQA]:
    """Every version citizens may be served today."""
    today = today or date.today()
    stmt = (
        select(Entry.external_id, Version)
        .join(Version, Version.entry_id == Entry.id)
        .where(Version.status == PUBLISHED)
        .where(or_(Version.valid_from.is_(None), Version.valid_from <= today))
        .where(or_(Version.valid_to.is_(None), Version.valid_to >= today))
        .order_by(Entry.external_id)
    )
    return [
        PublishedQA(ext_id, v.id, v.number, v.question, tuple(v.similar_questions), v.answer,
                    v.category, v.unit, tuple(v.tags or ()), v.notice_until)
        for ext_id, v in (await session.execute(stmt)).all()
    ]


async def stamp(session: AsyncSession) -> tuple:
    """Changes whenever what citizens may be served changes (publish, retire, rollback, a new day)."""
    count, newest = (await session.execute(
        select(func.count(), func.max(Version.id)).where(Version.status == PUBLISHED))).one()
    return count, newest, date.today()


async def count_entries(session: AsyncSession) -> int:
    return await session.scalar(select(func.count()).select_from(Entry)) or 0


class KnowledgeBase:
    """The served Q&A base: the published entries and their search index.

    `index_dir` keeps the question embeddings between builds and restarts (vectors.py), so a
    publish or a restart embeds only new questions.
    """

    def __init__(self, db: Database, settings: SearchSettings | None = None,
                 index_dir: Path | None = None) -> None:
        self._db = db
        self.settings = settings or SearchSettings()
        self._index_dir = index_dir
        self._embedder: Embedder | None = None
        self._vectors: VectorStore | None = None
        self._index = QAIndex([])
        self._stamp: tuple | None = None
        self.last_embedded = 0       # questions the last build had to embed (the rest were stored)

    def _build(self, entries: list[PublishedQA], current: tuple, progress=None) -> QAIndex:
        vectors = None
        if self.settings.backend != "none" and entries:
            if self._embedder is None:
                self._embedder = make_embedder(self.settings.backend)
            # Read from disk at each build rather than kept: the index holds its own copy, and a
            # second one would double the largest part of the memory. Without a directory (tests,
            # one-off commands) the store lives in memory between builds.
            store = self._vectors or VectorStore(self._index_dir, self._embedder.name)
            if self._index_dir is None:
                self._vectors = store
            texts = [q for qa in entries for q in qa.questions]
            vectors, new = store.vectors(texts, self._embedder.passages, progress)
            store.keep_only(texts)
            if new or store.stamp != str(current):
                store.save(str(current))
            self.last_embedded = new
            log.info("Q&A index: %d questions, %d newly embedded", len(texts), new)
        index = QAIndex(entries, embedder=self._embedder, dense_weight=self.settings.dense_weight,
                        answer_weight=self.settings.answer_weight, thresholds=self.settings.thresholds,
                        vectors=vectors)
        if entries:     # the first search initialises the model's and faiss's lazy parts (~1 s)
            index.search(entries[0].question, 1)
        return index

    async def refresh(self, progress=None) -> None:
        """Rebuild the index from the published versions. `progress(done, total)` is told how
        embedding goes (called from a worker thread)."""
        async with self._db.session() as session:
            current = await stamp(session)
            entries = await published(session)
        # Loading a model and embedding questions is CPU work: keep the event loop serving.
        self._index = await asyncio.get_running_loop().run_in_executor(
            None, self._build, entries, current, progress)
        self._stamp = current

    async def refresh_if_changed(self) -> bool:
        """Rebuild when the published base changed, by this server or any other."""
        async with self._db.session() as session:
            current = await stamp(session)
        if current == self._stamp:
            return False
        await self.refresh()
        return True

    async def watch(self, interval: float) -> None:
        """Keep the index in step with the database until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                if await self.refresh_if_changed():
                    log.info("Q&A base changed: index rebuilt, %d published entries", self.size)
            except Exception:  # the database may be away for a moment; try again next time
                log.exception("could not check the Q&A base for changes")

    @property
    def index(self) -> QAIndex:
        return self._index

    @property
    def size(self) -> int:
        return len(self._index)

    def decide(self, query: str) -> Decision:
        return self._index.decide(query)

    def search(self, query: str, k: int = 5) -> dict:
        """What `govchat kb search` prints and `/api/kb/search` returns."""
        decision, hits = self._index.lookup(query, k)
        return {"query": query, "decision": decision.kind,
                "hits": [{"id": h.qa.entry_id, "question": h.qa.question, "score": h.score} for h in hits]}

    def get(self, entry_id: str) -> PublishedQA | None:
        return self._index.entries.get(entry_id)
