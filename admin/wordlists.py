"""Admin-managed word lists and their fast matching.

Two kinds (admin/models.py WORD_KINDS): `staff_caution` — advertising, personal opinion and
sensitive terms a staff reply is checked for before sending (art. 20–21) — and `harmful` —
harmful or illegal content a citizen message is flagged for, which the bot never repeats
(art. 24). Changes go through `add`, `add_many` and `remove`, each in the caller's transaction
with an audit row.

Matching: one compiled regex per kind (the words escaped, longest first, case-insensitive),
built when first needed and cached per process. A change made here drops the cache at once;
a change made by another process (the CLI, a second worker) is noticed within
`CHECK_EVERY` seconds by comparing (count, max id) — ids are never reused.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from admin.api import audit
from admin.models import WORD_KINDS, WordListEntry
from server.db import Database

STAFF_CAUTION, HARMFUL = WORD_KINDS
KIND_NAMES = {STAFF_CAUTION: "客服回复提示词", HARMFUL: "有害信息词"}
KIND_HINTS = {
    STAFF_CAUTION: "广告、个人观点、敏感表述等：客服回复含有这些词时须确认后才能发送（第二十、二十一条）",
    HARMFUL: "有害或违法信息：群众消息含有这些词时在会话接管中标记，智能助手复述时以＊遮盖（第二十四条）",
}
MAX_WORD = 100
MAX_NOTE = 200
MAX_IMPORT = 2000
CHECK_EVERY = 5.0          # seconds between staleness checks against the database
MASK = "＊"

# Neutral examples for the demo content only (server/bootstrap.py); the harmful list ships empty.
DEMO_CAUTION = (
    ("最便宜", "广告用语"),
    ("价格最低", "广告用语"),
    ("我个人认为", "个人观点"),
    ("我觉得政府", "个人观点"),
    ("保证办成", "不当承诺"),
    ("肯定能批", "不当承诺"),
    ("找关系", "不当表述"),
)


class WordError(ValueError):
    """A problem with a word-list request, in Chinese for the console."""


def clean_word(word: str) -> str:
    word = " ".join((word or "").split())
    if not word:
        raise WordError("词语不能为空")
    if len(word) > MAX_WORD:
        raise WordError(f"词语不能超过{MAX_WORD}个字符")
    return word


def check_kind(kind: str) -> str:
    if kind not in WORD_KINDS:
        raise WordError("未知的词表类型")
    return kind


# ---------------------------------------------------------------- matching

@dataclass(frozen=True)
class Matcher:
    """The compiled list of one kind; `pattern` is None for an empty list."""
    pattern: re.Pattern | None
    signature: tuple

    def find(self, text: str) -> list[str]:
        """The distinct terms found in `text`, in order of first appearance (as the list has them)."""
        if self.pattern is None or not text:
            return []
        seen: dict[str, None] = {}
        for match in self.pattern.finditer(text):
            seen.setdefault(match.group(0), None)
        return list(seen)

    def mask(self, text: str) -> str:
        if self.pattern is None or not text:
            return text
        return self.pattern.sub(lambda m: MASK * len(m.group(0)), text)

    def segments(self, text: str) -> list[tuple[str, bool]]:
        """`text` cut into (piece, is_term) for highlighting (the template escapes each piece)."""
        if self.pattern is None:
            return [(text, False)]
        out, pos = [], 0
        for match in self.pattern.finditer(text):
            if match.start() > pos:
                out.append((text[pos:match.start()], False))
            out.append((match.group(0), True))
            pos = match.end()
        if pos < len(text):
            out.append((text[pos:], False))
        return out


def compile_words(words: list[str], signature: tuple = ()) -> Matcher:
    words = sorted({w for w in words if w}, key=lambda w: (-len(w), w))
    if not words:
        return Matcher(None, signature)
    return Matcher(re.compile("|".join(map(re.escape, words)), re.IGNORECASE), signature)


_cache: dict[tuple[str, str], tuple[Matcher, float]] = {}   # (database url, kind) → (matcher, checked)


def invalidate(kind: str | None = None) -> None:
    for key in list(_cache):
        if kind is None or key[1] == kind:
            del _cache[key]


async def _signature(session: AsyncSession, kind: str) -> tuple:
    row = (await session.execute(select(func.count(), func.max(WordListEntry.id))
                                 .where(WordListEntry.kind == kind))).one()
    return tuple(row)


async def matcher(db: Database, kind: str) -> Matcher:
    """The cached matcher for `kind`, rebuilt when the list changed."""
    key, now = (str(db.url), kind), time.monotonic()
    cached = _cache.get(key)
    if cached is not None and now - cached[1] < CHECK_EVERY:
        return cached[0]
    async with db.session() as session:
        signature = await _signature(session, kind)
        if cached is not None and cached[0].signature == signature:
            _cache[key] = (cached[0], now)
            return cached[0]
        words = list(await session.scalars(select(WordListEntry.word)
                                           .where(WordListEntry.kind == kind)))
    built = compile_words(words, signature)
    _cache[key] = (built, now)
    return built


async def caution_terms(db: Database, text: str) -> list[str]:
    return (await matcher(db, STAFF_CAUTION)).find(text)


async def harmful_terms(db: Database, text: str) -> list[str]:
    return (await matcher(db, HARMFUL)).find(text)


async def mask_harmful(db: Database, text: str) -> str:
    return (await matcher(db, HARMFUL)).mask(text)


# ---------------------------------------------------------------- the lists

async def entries(session: AsyncSession, kind: str | None = None) -> list[WordListEntry]:
    query = select(WordListEntry).order_by(WordListEntry.kind, WordListEntry.word)
    if kind:
        query = query.where(WordListEntry.kind == kind)
    return list(await session.scalars(query))


async def counts(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(WordListEntry.kind, func.count()).group_by(WordListEntry.kind))
    return {kind: 0 for kind in WORD_KINDS} | {k: n for k, n in rows}


async def _exists(session: AsyncSession, kind: str, word: str) -> bool:
    return await session.scalar(select(WordListEntry.id).where(
        WordListEntry.kind == kind, WordListEntry.word == word)) is not None


async def add(session: AsyncSession, kind: str, word: str, *, actor: str,
              note: str = "") -> WordListEntry:
    kind, word, note = check_kind(kind), clean_word(word), " ".join(note.split())[:MAX_NOTE]
    if await _exists(session, kind, word):
        raise WordError(f"“{word}”已在{KIND_NAMES[kind]}中")
    entry = WordListEntry(kind=kind, word=word, note=note, created_by=actor)
    session.add(entry)
    try:
        await session.flush()
    except IntegrityError:            # added by someone else a moment ago
        raise WordError(f"“{word}”已在{KIND_NAMES[kind]}中") from None
    audit(session, actor, "words.add", f"{kind}:{word}", after={"kind": kind, "word": word,
                                                                 "note": note})
    invalidate(kind)
    return entry


async def add_many(session: AsyncSession, kind: str, lines: str, *, actor: str,
                   note: str = "") -> tuple[list[str], list[str]]:
    """Bulk import, one word per line: returns (added, skipped — blank lines not counted)."""
    kind, note = check_kind(kind), " ".join(note.split())[:MAX_NOTE]
    wanted: list[str] = []
    for line in lines.splitlines():
        if line.strip():
            wanted.append(clean_word(line))
    if len(wanted) > MAX_IMPORT:
        raise WordError(f"一次最多导入{MAX_IMPORT}个词语")
    have = set(await session.scalars(select(WordListEntry.word).where(WordListEntry.kind == kind)))
    added, skipped = [], []
    for word in wanted:
        if word in have:
            skipped.append(word)
            continue
        have.add(word)
        added.append(word)
        session.add(WordListEntry(kind=kind, word=word, note=note, created_by=actor))
    await session.flush()
    if added:
        audit(session, actor, "words.import", kind, added=added, skipped=len(skipped), note=note)
        invalidate(kind)
    return added, skipped


async def remove(session: AsyncSession, entry_id: int, *, actor: str) -> WordListEntry | None:
    entry = await session.get(WordListEntry, entry_id)
    if entry is None:
        return None
    await session.execute(delete(WordListEntry).where(WordListEntry.id == entry_id))
    audit(session, actor, "words.remove", f"{entry.kind}:{entry.word}",
          before={"kind": entry.kind, "word": entry.word, "note": entry.note,
                  "created_by": entry.created_by})
    invalidate(entry.kind)
    return entry


async def load_demo(session: AsyncSession) -> int:
    """The neutral staff_caution examples, with the demo content; the harmful list stays empty."""
    if await session.scalar(select(func.count()).select_from(WordListEntry)
                            .where(WordListEntry.kind == STAFF_CAUTION)):
        return 0
    for word, note in DEMO_CAUTION:
        session.add(WordListEntry(kind=STAFF_CAUTION, word=word, note=note, created_by="system"))
    await session.flush()
    audit(session, "system", "words.import", STAFF_CAUTION,
          added=[w for w, _ in DEMO_CAUTION], skipped=0, note="演示内容")
    invalidate(STAFF_CAUTION)
    return len(DEMO_CAUTION)
