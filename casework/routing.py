"""Routing a complaint or report: its text (and district) → category, responsible unit, confidence.

How it decides (docs/routing.md): with no trained model, the directory matcher (the message
against each category's names, description, units and keywords) gives the probabilities; once
a model is trained on routing examples (logistic regression over sentence embeddings), the two
are averaged. An enabled keyword rule an admin wrote adds to its class's probability (and
decides alone while no model is trained). Below the
calibrated confidence (routing.json, `bench/route_eval.py --write`) the case goes to the
dispatcher, with the guess and alternatives shown. The unit is the most specific one handling
the category (or one of its ancestors in the category tree) in the district: deepest in the
unit tree, a district unit before a city-wide one; none → the dispatcher.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from sqlalchemy import select

from casework.models import Category, RoutingExample, RoutingKeyword, Unit
from casework.route_model import (MODEL_FILE, DirectoryMatcher, Model, Settings, category_texts, fit_model,
                                  load_model, load_settings, save_model)
from server.db import Database

log = logging.getLogger(__name__)


# Places --------------------------------------------------------------------------------------

_DISTRICT = re.compile(r"[\u4e00-\u9fff]{2}(?:区|县)")
_STREET = re.compile(r"[\u4e00-\u9fff]{2}(?:街道|镇|乡)")
# Words ending in 区 that are not districts: 小区, 社区, 园区, 景区 …
_NOT_DISTRICT = set("小社园景校城市郊山片辖街营厂矿库灾专分学病军新")


def detect_place(text: str, districts: list[str], streets: dict[str, str]) -> tuple[str | None, str | None]:
    """(district, street) named in the text: known streets and districts first, then …区/…县/…街道."""
    found = sorted((text.find(s), s) for s in streets if s in text)
    if found:
        street = found[0][1]
        return streets[street], street
    found = sorted((text.find(d), -len(d), d) for d in districts if d in text)
    if found:
        return found[0][2], None
    for m in _DISTRICT.finditer(text):
        if m.group()[-2] not in _NOT_DISTRICT:
            return m.group(), None
    m = _STREET.search(text)
    return None, m.group() if m else None


# The directory: units, category tree, keyword rules --------------------------------------------

@dataclass(frozen=True)
class UnitInfo:
    id: str
    name: str
    parent_id: str | None
    categories: tuple[str, ...]
    regions: tuple[str, ...]
    is_dispatcher: bool = False


@dataclass
class Directory:
    units: list[UnitInfo] = field(default_factory=list)
    parents: dict[str, str] = field(default_factory=dict)     # category name → parent's name
    keywords: list[tuple[str, str]] = field(default_factory=list)   # (keyword, category), enabled
    descriptions: dict[str, str] = field(default_factory=dict)      # category name → a sentence

    def __post_init__(self) -> None:
        self._by_id = {u.id: u for u in self.units}
        self.districts = sorted({r for u in self.units for r in u.regions}, key=len, reverse=True)
        self.streets: dict[str, str] = {}
        for u in self.units:
            m = re.search(r"[\u4e00-\u9fff]{2}街道", u.name.split("区", 1)[-1])
            if m and len(u.regions) == 1:
                self.streets[m.group()] = u.regions[0]

    def ancestors(self, category: str) -> list[str]:
        """The category and its ancestors, most specific first."""
        chain = [category]
        while chain[-1] in self.parents and len(chain) < 10:
            chain.append(self.parents[chain[-1]])
        return chain

    def group(self, category: str) -> str:
        return self.ancestors(category)[-1]

    def depth(self, unit: UnitInfo) -> int:
        n = 0
        while unit.parent_id in self._by_id and n < 20:
            unit, n = self._by_id[unit.parent_id], n + 1
        return n

    @property
    def dispatcher(self) -> str | None:
        return next((u.id for u in self.units if u.is_dispatcher), None)

    def unit_for(self, category: str, district: str | None, street: str | None = None) -> str | None:
        """The most specific unit handling `category` in `district`; None when no unit does."""
        chain = self.ancestors(category)
        scored = []
        for u in self.units:
            if u.is_dispatcher or (u.regions and district not in u.regions):
                continue
            match = next((len(chain) - i for i, c in enumerate(chain) if c in u.categories), 0)
            if match:
                scored.append(((self.depth(u), bool(u.regions), match), u))
        if not scored:
            return None
        best = max(k for k, _ in scored)
        tied = [u for k, u in scored if k == best]
        if street and len(tied) > 1:
            tied = [u for u in tied if street in u.name] or tied
        if len(tied) == 1:
            return tied[0].id
        # Equally specific units (two street offices of one district): their common parent decides.
        candidates = {u.id for _, u in scored}
        parent = tied[0].parent_id
        while parent and parent not in candidates:
            parent = self._by_id[parent].parent_id if parent in self._by_id else None
        return parent if parent and all(self._under(u, parent) for u in tied) else None

    def _under(self, unit: UnitInfo, ancestor: str) -> bool:
        while unit.parent_id:
            if unit.parent_id == ancestor:
                return True
            if unit.parent_id not in self._by_id:
                return False
            unit = self._by_id[unit.parent_id]
        return False

    def keyword_rule(self, text: str) -> tuple[str, str] | None:
        """(keyword, category) of the longest enabled keyword in the text; None when none or when
        equally long keywords disagree."""
        low = text.lower()
        hits = [(len(k), k, c) for k, c in self.keywords if k and k.lower() in low]
        if not hits:
            return None
        longest = max(n for n, _, _ in hits)
        top = {(k, c) for n, k, c in hits if n == longest}
        return next(iter(top)) if len({c for _, c in top}) == 1 else None


async def load_directory(session) -> Directory:
    units = [UnitInfo(u.id, u.name, u.parent_id, tuple(u.categories or ()), tuple(u.regions or ()),
                      bool(u.is_dispatcher)) for u in await session.scalars(select(Unit).order_by(Unit.id))]
    cats = list(await session.scalars(select(Category)))
    by_id = {c.id: c for c in cats}
    parents = {c.name: by_id[c.parent_id].name for c in sorted(cats, key=lambda c: -c.level)
               if c.parent_id in by_id}
    keywords = [(k.keyword, k.category) for k in await session.scalars(
        select(RoutingKeyword).where(RoutingKeyword.enabled.is_(True)).order_by(RoutingKeyword.id))]
    return Directory(units, parents, keywords)


async def example_rows(session) -> list[tuple[str, str]]:
    return [(e.text, e.category) for e in await session.scalars(select(RoutingExample).order_by(RoutingExample.id))]


# The router ----------------------------------------------------------------------------------

@dataclass
class Route:
    category: str | None
    unit_id: str | None
    confidence: float
    district: str | None = None
    alternatives: list[tuple[str, float, str | None]] = field(default_factory=list)
    reason: str = ""
    group: str | None = None        # the category's first-level class

    def as_json(self) -> dict:
        return {"category": self.category, "unit_id": self.unit_id, "confidence": round(self.confidence, 3),
                "district": self.district, "group": self.group,
                "alternatives": [{"category": c, "confidence": round(p, 3), "unit_id": u}
                                 for c, p, u in self.alternatives],
                "reason": self.reason}


class Router:
    """The served router: the trained model from `model_dir`, the directory from the database.

    `embedder_source()` may hand over an embedder already loaded (the Q&A base's), so the server
    holds one copy of the model; when it gives none or another backend, the router loads its own.
    """

    def __init__(self, db: Database | None, model_dir: Path, *, settings: Settings | None = None,
                 embedder_source: Callable[[], object] = lambda: None,
                 directory: Directory | None = None) -> None:
        self._db = db
        self.model_dir = model_dir
        self.settings = settings or load_settings()
        self.check_every = self.settings.check_every
        self._embedder_source = embedder_source
        self._embedder = None
        self.directory = directory or Directory()
        self.model: Model | None = None
        self._matcher: tuple[tuple, DirectoryMatcher, Directory] | None = None   # key, matcher, of
        self._model_mtime: int | None = None
        self._checked = 0.0

    # Embeddings -------------------------------------------------------------------------------
    def embedder(self, name: str):
        if self._embedder is None or self._embedder.name != name:
            shared = self._embedder_source()
            if shared is not None and shared.name == name:
                self._embedder = shared
            else:
                from knowledge_base.embeddings import make_embedder
                self._embedder = make_embedder(name)
        return self._embedder

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder(self.settings.embedder).queries(texts)

    def matcher(self) -> DirectoryMatcher | None:
        """The zero-shot matcher of the current directory (rebuilt when the directory changes);
        None when the directory has fewer than two categories."""
        if self._matcher is not None and self._matcher[2] is self.directory:
            return self._matcher[1]
        texts, names = category_texts(self.directory, self.settings.category_descriptions)
        key = (tuple(sorted(texts.items())), tuple(sorted((k, tuple(v)) for k, v in names.items())))
        if len(texts) < 2:
            return None
        if self._matcher is None or self._matcher[0] != key:
            s = self.settings
            self._matcher = key, DirectoryMatcher(texts, names, self.embedder(s.embedder).passages,
                                                  s.lexical_weight, s.temperature), self.directory
        self._matcher = self._matcher[0], self._matcher[1], self.directory
        return self._matcher[1]

    # Keeping up with the database and the model file ----------------------------------------
    def reload_model(self) -> bool:
        """Load the model file when it changed since the last load; True when it did."""
        path = self.model_dir / MODEL_FILE
        try:
            mtime = path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if mtime == self._model_mtime:
            return False
        try:
            model = load_model(self.model_dir)
        except Exception:   # damaged or from an incompatible version: retrain rather than stop
            log.exception("could not read the routing model %s", path)
            self._model_mtime = mtime       # said once, not at every check
            return False
        self.model, self._model_mtime = model, mtime
        if self.model.embedder:
            self.embedder(self.model.embedder)      # load it now, not at the first message
        log.info("routing model loaded: %s examples, trained %s", self.model.stamp, self.model.trained_at)
        return True

    async def refresh(self) -> None:
        async with self._db.session() as session:
            self.directory = await load_directory(session)
        await asyncio.get_running_loop().run_in_executor(None, self.reload_model)
        self._checked = time.monotonic()

    async def start(self) -> None:
        """At server start: the stored model, or one trained now when there is none yet."""
        await self.refresh()
        if self.model is None:
            async with self._db.session() as session:
                rows = await example_rows(session)
            if len({c for _, c in rows}) >= 2:
                try:
                    await train(self, rows, cv=False)
                except Exception:   # serve without a model (rules and dispatcher) rather than not at all
                    log.exception("could not train the routing model from %d stored examples", len(rows))

    async def route(self, text: str, district: str | None = None) -> Route:
        if self._db is not None and time.monotonic() - self._checked >= self.check_every:
            try:
                await self.refresh()
            except Exception:   # the database may be away a moment: route with what is loaded
                log.exception("could not refresh the routing directory or model")
                self._checked = time.monotonic()
        return await asyncio.get_running_loop().run_in_executor(None, self.classify, text, district)

    # The decision ---------------------------------------------------------------------------
    def _probabilities(self, text: str) -> tuple[list[tuple[str, float]], list[tuple[str, float]], float, str]:
        """(label, probability) and (first-level class, probability), most likely first; the
        threshold that applies; the source named in the reason. The trained model and the
        directory matcher are averaged (`directory_weight`) when the model's labels are directory
        categories; the matcher alone serves while no model is trained."""
        d, s, model = self.directory, self.settings, self.model
        matcher = self.matcher() if model is None or s.directory_weight > 0 else None
        if model is None and d.keyword_rule(text):
            matcher = None      # before any model is trained, an admin's matching rule decides alone
        if model is not None and matcher is not None and not set(model.classifier.classes) <= set(matcher.classes):
            matcher = None      # labels the directory does not know: the classifier alone
        if model is None and matcher is None:
            return [], [], s.threshold, "分类模型"
        vectors = None
        if model is not None and model.classifier.needs_vectors:
            vectors = self.embedder(model.embedder).queries([text])
        label_p: dict[str, float] = {}
        group_p: dict[str, float] = {}
        weight = 1.0 if model is None else s.directory_weight
        if matcher is not None:
            if vectors is None or model.embedder != s.embedder:
                vectors_m = self.embedder(s.embedder).queries([text])
            else:
                vectors_m = vectors
            for c, q in zip(matcher.classes, matcher.proba([text], vectors_m)[0]):
                label_p[c] = label_p.get(c, 0.0) + weight * float(q)
                group_p[d.group(c)] = group_p.get(d.group(c), 0.0) + weight * float(q)
        if model is not None:
            p = model.classifier.proba([text], vectors)[0]
            for c, q in zip(model.classifier.classes, p):
                label_p[c] = label_p.get(c, 0.0) + (1 - weight) * float(q)
            if model.groups is not None:
                pairs = zip(model.groups.classes, model.groups.proba([text], vectors)[0])
            else:
                pairs = ((d.group(c), q) for c, q in zip(model.classifier.classes, p))
            for g, q in pairs:
                group_p[g] = group_p.get(g, 0.0) + (1 - weight) * float(q)
        source = "目录匹配" if model is None else "分类模型加目录匹配" if matcher is not None else "分类模型"
        return (sorted(label_p.items(), key=lambda x: -x[1]), sorted(group_p.items(), key=lambda x: -x[1]),
                s.zero_shot_threshold if model is None else s.threshold, source)

    def classify(self, text: str, district: str | None = None) -> Route:
        d = self.directory
        found, street = detect_place(text, d.districts, d.streets)
        district = (district or "").strip() or found
        probs, groups, threshold, source = self._probabilities(text)
        # Each class's most likely label: the guess, and one alternative per other class.
        best = [(next((c for c, _ in probs if d.group(c) == g), g), q) for g, q in groups]

        def unit(category: str) -> str | None:
            return d.unit_for(category, district, street)

        rule = d.keyword_rule(text)
        if rule and best:
            # A rule adds `keyword_boost` to its class's probability (measured better than
            # deciding: docs/routing.md); a confident classifier can still overrule it.
            keyword, ruled = rule
            boosted = dict(groups)
            boosted[d.group(ruled)] = boosted.get(d.group(ruled), 0.0) + self.settings.keyword_boost
            total = sum(boosted.values())
            leaf = {g: c for (c, _), (g, _) in zip(best, groups)}
            leaf[d.group(ruled)] = ruled
            best = [(leaf[g], boosted[g] / total) for g in sorted(boosted, key=lambda g: -boosted[g])]
            category, confidence = best[0]
            reason = (f"{source}加关键词规则（含“{keyword}”→{ruled}）：{category}"
                      f"（{d.group(category)}，置信度{confidence:.2f}）")
        elif rule:      # no model yet: the rule decides
            keyword, category = rule
            confidence, reason = 1.0, f"关键词规则：含“{keyword}”→{category}"
        elif best:
            category, confidence = best[0]
            reason = f"{source}：{category}（{d.group(category)}，置信度{confidence:.2f}）"
        else:
            category, confidence, reason = None, 0.0, "尚无分类模型，也没有匹配的关键词规则"
        alternatives = [(c, q, unit(c)) for c, q in best if c != category][:3]
        unit_id = unit(category) if category else None
        if category and confidence < threshold:
            unit_id, reason = d.dispatcher, reason + f"；低于阈值{threshold:.2f}，转分派中心"
        elif category and unit_id is None:
            unit_id, reason = d.dispatcher, reason + f"；{district or '全市'}没有承办“{category}”的单位，转分派中心"
        elif not category:
            unit_id = d.dispatcher
        return Route(category, unit_id, confidence, district, alternatives, reason,
                     d.group(category) if category else None)


async def train(router: Router, rows: list[tuple[str, str]], cv: bool = True) -> Model:
    """Fit on `rows` in a worker thread, store the model, and serve it at once."""
    loop = asyncio.get_running_loop()
    model = await loop.run_in_executor(None, fit_model, rows, router.embed, router.settings, cv,
                                       router.directory.group)
    await loop.run_in_executor(None, save_model, model, router.model_dir)
    await loop.run_in_executor(None, router.reload_model)
    return model
