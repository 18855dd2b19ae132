"""The quarterly spot check (art. 32): a reproducible random sample of cases and conversations.

A draw takes, for one quarter (China dates), up to N cases per unit (cases submitted in the
quarter, grouped by `cases.unit_id`; undispatched ones form their own group) and up to N
conversations per channel and account (conversations with a message in the quarter): a
conversation has no unit and no account is bound to one, so the account stands in for it.

Reproducible: each group's candidates are sorted by id and sampled with
`random.Random(f"{seed}/{kind}/{group}")`, so the same seed over the same rows gives the same
items, and a group's sample does not change when another group gains or loses rows. The seed is
stored with the spot check (and printed by the CLI); without one a fresh seed is drawn.

Each item's trail (trail.py) is what the inspector reads; the finding form records 合格/有问题.
"""
from __future__ import annotations

import random
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from admin.api import audit
from bot.models import Conversation, Message
from casework.events import EVENT_NAMES
from casework.models import Case, SpotCheck, SpotCheckItem, Unit
from server.db import CHINA, utcnow

CASE, CONVERSATION = "case", "conversation"
KIND_NAMES = {CASE: "办件", CONVERSATION: "会话"}
OK, PROBLEM = "ok", "problem"
FINDING_NAMES = {OK: "合格", PROBLEM: "有问题"}
MAX_PER_UNIT = 100
MAX_COMMENT = 2000
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")


class SpotCheckError(ValueError):
    """A request the spot check cannot act on; `zh` says why, for staff."""

    def __init__(self, message: str, zh: str) -> None:
        super().__init__(message)
        self.zh = zh


def quarter_bounds(quarter: str) -> tuple[date, date]:
    """"2026Q3" → (2026-07-01, 2026-09-30), China dates, both inclusive."""
    match = _QUARTER.match(quarter.strip().upper())
    if not match:
        raise SpotCheckError(f"quarter must look like 2026Q3, not {quarter!r}",
                             "季度格式应为 2026Q3")
    year, q = int(match[1]), int(match[2])
    start = date(year, 3 * q - 2, 1)
    end = date(year + (q == 4), 1 if q == 4 else 3 * q + 1, 1) - timedelta(days=1)
    return start, end


def moments(start: date, end: date) -> tuple[datetime, datetime]:
    """The UTC instants from China midnight of `start` to China midnight after `end`."""
    return (datetime.combine(start, time(0), CHINA),
            datetime.combine(end + timedelta(days=1), time(0), CHINA))


def _sample(seed: int, kind: str, group: str, ids: list[int], n: int) -> list[int]:
    ids = sorted(ids)
    if len(ids) <= n:
        return ids
    return sorted(random.Random(f"{seed}/{kind}/{group}").sample(ids, n))


async def _case_groups(session: AsyncSession, lo: datetime, hi: datetime) -> dict[str, list[int]]:
    rows = await session.execute(select(Case.id, Case.unit_id)
                                 .where(Case.created_at >= lo, Case.created_at < hi))
    groups: dict[str, list[int]] = defaultdict(list)
    for case_id, unit_id in rows:
        groups[unit_id or ""].append(case_id)
    return groups


async def _conversation_groups(session: AsyncSession, lo: datetime,
                               hi: datetime) -> dict[str, list[int]]:
    in_quarter = exists().where(Message.conversation_id == Conversation.id,
                                Message.created_at >= lo, Message.created_at < hi)
    rows = await session.execute(select(Conversation.id, Conversation.channel, Conversation.account)
                                 .where(in_quarter))
    groups: dict[str, list[int]] = defaultdict(list)
    for conv_id, channel, account in rows:
        groups[f"{channel}/{account}"].append(conv_id)
    return groups


async def draw(session: AsyncSession, quarter: str, per_unit: int, seed: int | None = None, *,
               actor: str) -> SpotCheck:
    """Draw and store a spot check in the caller's transaction; audited `spotcheck.draw`."""
    if not 1 <= per_unit <= MAX_PER_UNIT:
        raise SpotCheckError(f"per unit must be 1–{MAX_PER_UNIT}", f"每单位抽取数量应为1至{MAX_PER_UNIT}")
    if seed is not None and not 0 <= seed < 2**31:
        raise SpotCheckError("the seed must be 0 – 2147483647", "随机种子应为0至2147483647之间的整数")
    start, end = quarter_bounds(quarter)
    seed = secrets.randbelow(2**31) if seed is None else seed
    check = SpotCheck(quarter=quarter.strip().upper(), period_start=start, period_end=end,
                      seed=seed, per_unit=per_unit, created_by=actor, created_at=utcnow())
    session.add(check)
    await session.flush()
    lo, hi = moments(start, end)
    counts = {}
    for kind, groups in ((CASE, await _case_groups(session, lo, hi)),
                         (CONVERSATION, await _conversation_groups(session, lo, hi))):
        picked = 0
        for group in sorted(groups):
            for object_id in _sample(seed, kind, group, groups[group], per_unit):
                session.add(SpotCheckItem(
                    spot_check_id=check.id, kind=kind,
                    unit_id=(group or None) if kind == CASE else None,
                    case_id=object_id if kind == CASE else None,
                    conversation_id=object_id if kind == CONVERSATION else None))
                picked += 1
        counts[kind] = picked
    audit(session, actor, "spotcheck.draw", f"spotcheck:{check.id}", quarter=check.quarter,
          seed=seed, per_unit=per_unit, cases=counts[CASE], conversations=counts[CONVERSATION])
    return check


@dataclass(frozen=True)
class Listed:
    check: SpotCheck
    total: int
    checked: int
    problems: int


async def list_checks(session: AsyncSession) -> list[Listed]:
    """Every spot check, newest first, with its progress."""
    rows = await session.execute(
        select(SpotCheckItem.spot_check_id, func.count(), func.count(SpotCheckItem.finding),
               func.count().filter(SpotCheckItem.finding == PROBLEM))
        .group_by(SpotCheckItem.spot_check_id))
    counts = {check_id: (total, checked, problems) for check_id, total, checked, problems in rows}
    checks = await session.scalars(select(SpotCheck).order_by(SpotCheck.id.desc()))
    return [Listed(c, *counts.get(c.id, (0, 0, 0))) for c in checks]


async def get_check(session: AsyncSession, check_id: int) -> SpotCheck:
    check = await session.get(SpotCheck, check_id)
    if check is None:
        raise SpotCheckError(f"no spot check {check_id}", "没有这次抽查")
    return check


@dataclass(frozen=True)
class ItemView:
    """An item as lists show it: its group (unit, or channel/account), reference and times."""
    item: SpotCheckItem
    group: str            # 人社局 (JH-RSJ), 未分派, or 会话渠道 webchat/默认
    ref: str              # the case number, or 会话 #12
    status: str           # the case's status in Chinese; the conversation's sender masked
    start: datetime | None
    end: datetime | None


def _group_of_conversation(conv: Conversation) -> str:
    return f"会话渠道 {conv.channel}/{conv.account or '默认'}"


async def items_of(session: AsyncSession, check: SpotCheck) -> list[ItemView]:
    """The items, cases first, grouped (unit, then channel/account), each in id order."""
    from casework.api import STATUS_NAMES

    items = list(await session.scalars(select(SpotCheckItem)
                                       .where(SpotCheckItem.spot_check_id == check.id)
                                       .order_by(SpotCheckItem.id)))
    units = {u.id: u.name for u in await session.scalars(select(Unit))}
    case_ids = [i.case_id for i in items if i.case_id]
    conv_ids = [i.conversation_id for i in items if i.conversation_id]
    cases = {c.id: c for c in await session.scalars(select(Case).where(Case.id.in_(case_ids)))}
    convs = {c.id: c for c in await session.scalars(
        select(Conversation).where(Conversation.id.in_(conv_ids)))}
    lo, hi = moments(check.period_start, check.period_end)
    spans = dict((cid, (first, last)) for cid, first, last in await session.execute(
        select(Message.conversation_id, func.min(Message.created_at), func.max(Message.created_at))
        .where(Message.conversation_id.in_(conv_ids), Message.created_at >= lo, Message.created_at < hi)
        .group_by(Message.conversation_id)))
    views = []
    for item in items:
        if item.kind == CASE:
            case = cases[item.case_id]
            group = (f"{units.get(item.unit_id, item.unit_id)} ({item.unit_id})" if item.unit_id
                     else "未分派")
            views.append(ItemView(item, group, case.number, STATUS_NAMES.get(case.status, case.status),
                                  case.created_at, case.closed_at or case.replied_at))
        else:
            conv = convs[item.conversation_id]
            first, last = spans.get(conv.id, (None, None))
            views.append(ItemView(item, _group_of_conversation(conv), f"会话 #{conv.id}",
                                  "", _utc(first), _utc(last)))
    views.sort(key=lambda v: (v.item.kind != CASE, v.group, v.item.id))
    return views


def _utc(moment: datetime | None) -> datetime | None:
    # Aggregates bypass the column type: SQLite gives back naive UTC (or text).
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


async def get_item(session: AsyncSession, check_id: int, item_id: int) -> SpotCheckItem:
    item = await session.get(SpotCheckItem, item_id)
    if item is None or item.spot_check_id != check_id:
        raise SpotCheckError(f"no item {item_id} in spot check {check_id}", "没有这个抽查项")
    return item


async def record_finding(session: AsyncSession, item_id: int, finding: str, comment: str, *,
                         actor: str) -> SpotCheckItem:
    """The inspector's finding on one item (a later one replaces it); audited with before/after."""
    item = await session.get(SpotCheckItem, item_id)
    if item is None:
        raise SpotCheckError(f"no spot check item {item_id}", "没有这个抽查项")
    if finding not in FINDING_NAMES:
        raise SpotCheckError(f"finding must be {OK} or {PROBLEM}", "请选择“合格”或“有问题”")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise SpotCheckError("the comment is too long", f"说明不能超过{MAX_COMMENT}字")
    if finding == PROBLEM and not comment:
        raise SpotCheckError("a problem needs a comment", "请写明发现的问题")
    before = {"finding": item.finding, "comment": item.comment}
    item.finding, item.comment = finding, comment
    item.checked_by, item.checked_at = actor, utcnow()
    audit(session, actor, "spotcheck.finding", f"spotcheck:{item.spot_check_id}/item:{item.id}",
          before=before, after={"finding": finding, "comment": comment})
    return item


# ---------------------------------------------------------------- the trail of an item

SENDERS = {"citizen": "群众", "bot": "机器人", "staff": "客服", "system": "系统"}
ATTACHMENT_KINDS = {"image": "图片", "video": "视频", "link": "链接", "location": "位置"}
# Detail keys shown on an event's line, in this order; others follow as key=value.
DETAIL_LABELS = {"unit_id": "单位", "reason": "理由", "days": "工作日", "deadline": "期限",
                 "score": "评分", "seconds": "秒"}
# A case's trail shows its conversation from a day before submission to a day after closing.
CONVERSATION_MARGIN = timedelta(days=1)


@dataclass(frozen=True)
class Line:
    at: datetime
    what: str             # 事件, 消息, 附件, 备注
    who: str
    text: str             # personal numbers masked


@dataclass(frozen=True)
class Trail:
    title: str
    facts: list[tuple[str, str]]
    lines: list[Line]


def china_time(moment: datetime | None) -> str:
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M") if moment else "—"


def _event_text(event) -> str:
    detail = dict(event.detail or {})
    shown = [f"{label} {detail.pop(key)}" for key, label in DETAIL_LABELS.items()
             if detail.get(key) not in (None, "")]
    shown += [f"{key}={value}" for key, value in detail.items() if value not in (None, "", [], {})]
    if event.value_seconds is not None:
        shown.append(f"用时 {event.value_seconds:.0f} 秒")
    return "，".join([EVENT_NAMES.get(event.name, event.name), *shown])


async def _conversation_lines(session: AsyncSession, conversation_id: int, lo: datetime | None,
                              hi: datetime | None, *, with_events: bool) -> list[Line]:
    from bot.models import ConversationNote
    from casework.models import Event
    from casework.privacy import mask_text

    def window(column):
        return [c for c in ((column >= lo) if lo else None, (column < hi) if hi else None)
                if c is not None]

    lines = []
    for m in await session.scalars(select(Message).where(
            Message.conversation_id == conversation_id, *window(Message.created_at))
            .order_by(Message.created_at, Message.id)):
        who = SENDERS.get(m.source, m.source)
        if m.source == "staff" and (m.source_ref or "").startswith("staff:"):
            who += f" {m.source_ref[len('staff:'):]}"
        text = mask_text(m.text) if m.text else f"（{m.kind or '非文字消息'}）"
        lines.append(Line(m.created_at, "消息", f"{who}（{'收' if m.direction == 'in' else '发'}）", text))
    if with_events:
        for e in await session.scalars(select(Event).where(
                Event.conversation_id == conversation_id, *window(Event.at))
                .order_by(Event.at, Event.id)):
            lines.append(Line(e.at, "事件", e.actor or "系统", mask_text(_event_text(e))))
    for n in await session.scalars(select(ConversationNote).where(
            ConversationNote.conversation_id == conversation_id, *window(ConversationNote.created_at))):
        lines.append(Line(n.created_at, "备注", n.author, mask_text(n.text)))
    return lines


async def trail(session: AsyncSession, item: SpotCheckItem) -> Trail:
    """Everything the inspector reads about an item, in time order; personal data masked."""
    return await (_case_trail(session, item.case_id) if item.kind == CASE
                  else _conversation_trail(session, item))


async def _case_trail(session: AsyncSession, case_id: int) -> Trail:
    from casework import lifecycle
    from casework.api import CASE_TYPE_NAMES, STATUS_NAMES, attachments
    from casework.privacy import mask_phone, mask_text

    case = await session.get(Case, case_id)
    unit = await session.get(Unit, case.unit_id) if case.unit_id else None
    facts = [("编号", case.number), ("类型", CASE_TYPE_NAMES.get(case.case_type, case.case_type)),
             ("状态", STATUS_NAMES.get(case.status, case.status)),
             ("承办单位", f"{unit.name} ({unit.id})" if unit else "未分派"),
             ("受理时间", china_time(case.created_at)),
             ("答复期限", case.deadline.isoformat() if case.deadline else "—"),
             ("答复时间", china_time(case.replied_at)), ("办结时间", china_time(case.closed_at)),
             ("发生地点", mask_text(case.address or case.district or "—")),
             ("联系电话", "匿名" if case.anonymous else (mask_phone(case.phone) or "未留")),
             ("诉求内容", mask_text(case.description)),
             ("答复内容", mask_text(case.reply_text or "—")),
             ("群众评价", str(case.rating) if case.rating else "—")]
    lines = [Line(e.at, "事件", e.actor or "系统", mask_text(_event_text(e)))
             for e in await lifecycle.trail(session, case.id)]
    for a in await attachments(session, case.id):
        kept = "已保存" if a.stored_path else a.fetch_error or ("未取回" if a.media_id else "")
        label = "，".join(x for x in (ATTACHMENT_KINDS.get(a.kind, a.kind), a.label, kept) if x)
        lines.append(Line(a.created_at, "附件", "群众", mask_text(label)))
    if case.conversation_id:
        end = case.closed_at + CONVERSATION_MARGIN if case.closed_at else None
        lines += await _conversation_lines(session, case.conversation_id,
                                           case.created_at - CONVERSATION_MARGIN, end,
                                           with_events=False)
    return Trail(f"办件 {case.number}", facts, _in_order(lines))


async def _conversation_trail(session: AsyncSession, item: SpotCheckItem) -> Trail:
    from casework.privacy import mask_text

    check = await session.get(SpotCheck, item.spot_check_id)
    conv = await session.get(Conversation, item.conversation_id)
    lo, hi = moments(check.period_start, check.period_end)
    cases = list(await session.scalars(select(Case.number).where(
        Case.conversation_id == conv.id, Case.created_at >= lo, Case.created_at < hi)))
    facts = [("会话", f"#{conv.id}"), ("渠道/账号", f"{conv.channel}/{conv.account or '默认'}"),
             ("群众标识", mask_text(conv.sender[:4] + "…" if len(conv.sender) > 4 else conv.sender)),
             ("开始时间", china_time(conv.created_at)), ("当前状态", "人工" if conv.state == "staff" else "机器人"),
             ("本季度办件", "、".join(cases) or "无")]
    lines = await _conversation_lines(session, conv.id, lo, hi, with_events=True)
    return Trail(f"会话 #{conv.id}", facts, _in_order(lines))


_ORDER = {"消息": 0, "附件": 1, "事件": 2, "备注": 3}


def _in_order(lines: list[Line]) -> list[Line]:
    # A reply and the event it writes share a moment: the message first, then what it caused.
    return sorted(lines, key=lambda line: (line.at, _ORDER[line.what]))
