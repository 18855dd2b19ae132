"""A year of synthetic traffic for the report benchmark, written into PostgreSQL with COPY.

`generate(url, messages=1_000_000, cases=100_000, units=200)` fills an empty, migrated database
with: a unit tree (a dispatcher, district governments, their bureaus), two-level categories,
conversations with alternating citizen and bot messages and the events the gateway writes for
them (message_received, bot_replied with its latency), hand-offs with staff first replies, and
cases that went through the 12345 lifecycle with the events casework.lifecycle writes (submitted,
dispatched, accepted, replied with on_time, rated, closed; some returned, extended, waiting for
the citizen, reopened, still open or overdue). Random but seeded: the same arguments give the
same database.

The shapes follow what the code writes (see casework/lifecycle.py, bot/gateway.py), so that the
reports read here what they would read in production; the volumes are the issue's (1 million
messages, 100,000 cases, 200 units over a year).
"""
from __future__ import annotations

import json
import random
from datetime import date, datetime, time, timedelta, timezone

import asyncpg

from casework.calendar import CHINA, WorkCalendar

UTC = timezone.utc
CHANNELS = (("wechat", "zj-gov"), ("wechat", "hz-gov"), ("webchat", ""))
DISTRICTS = ["上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区",
             "富阳区", "临安区", "桐庐县"]
BUREAUS = ["住建局", "交通局", "市场监管局", "人社局", "生态环境局", "城管局", "教育局", "卫健局",
           "公安分局", "民政局", "自然资源局", "农业农村局", "商务局", "文旅局", "应急管理局",
           "水利局", "医保局", "司法局"]
TOP_CATEGORIES = {
    "城乡建设": ["物业管理", "房屋质量", "违章建筑"], "交通运输": ["公交出行", "出租车", "道路养护"],
    "市场监管": ["消费维权", "食品安全", "价格投诉"], "劳动和社会保障": ["工资拖欠", "社保缴纳", "就业服务"],
    "环境保护": ["噪声污染", "大气污染", "水污染"], "教育文体": ["学校管理", "招生入学", "校外培训"],
    "卫生计生": ["医疗服务", "疫苗接种", "医保报销"], "商贸旅游": ["景区管理", "旅行社", "商场超市"],
}


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _moment(rng: random.Random, year: int) -> datetime:
    """A random time of the year, weighted to office hours the way citizens write."""
    day = date(year, 1, 1) + timedelta(days=rng.randrange(365))
    hour = rng.choices(range(24), weights=[1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 9, 7, 8, 10, 10, 9,
                                           8, 7, 7, 6, 5, 3, 2])[0]
    local = datetime.combine(day, time(hour, rng.randrange(60), rng.randrange(60)), CHINA)
    return local.astimezone(UTC)


def _units(count: int) -> list[tuple]:
    """(id, name, parent_id, categories, regions, is_dispatcher, duty_start, duty_end) rows."""
    rows = [("D-12345", "12345热线分派中心", None, "[]", "[]", True, None, None)]
    per_district = max(1, (count - 1 - len(DISTRICTS)) // len(DISTRICTS))
    tops = list(TOP_CATEGORIES)
    for d, district in enumerate(DISTRICTS):
        if len(rows) >= count:
            break
        parent = f"G{d:02d}"
        rows.append((parent, f"{district}人民政府", None, "[]", json.dumps([district]), False,
                     None, None))
        for b in range(per_district):
            if len(rows) >= count:
                break
            name = BUREAUS[b % len(BUREAUS)] + (f"{b // len(BUREAUS) + 1}所" if b >= len(BUREAUS) else "")
            night = b % 9 == 8          # a few units on a night shift crossing midnight
            rows.append((f"G{d:02d}-{b:03d}", f"{district}{name}", parent,
                         json.dumps([tops[b % len(tops)]]), json.dumps([district]), False,
                         "20:00" if night else None, "08:00" if night else None))
    while len(rows) < count:            # more units than the districts hold: spread the rest
        i = len(rows)
        rows.append((f"X{i:03d}", f"直属单位{i}", None, "[]", "[]", False, None, None))
    return rows


def _categories() -> list[tuple]:
    rows, next_id = [], 1
    for top, children in TOP_CATEGORIES.items():
        top_id = next_id
        rows.append((top_id, top, None, 1))
        next_id += 1
        for child in children:
            rows.append((next_id, child, top_id, 2))
            next_id += 1
    return rows


async def generate(url: str, *, messages: int = 1_000_000, cases: int = 100_000, units: int = 200,
                   year: int = 2026, seed: int = 7) -> dict[str, int]:
    """Fill the (migrated, empty) database at `url`; returns the row count per table."""
    rng = random.Random(seed)
    calendar = WorkCalendar()
    conn = await asyncpg.connect(_pg_dsn(url))
    try:
        unit_rows = _units(units)
        await conn.copy_records_to_table("units", records=unit_rows, columns=[
            "id", "name", "parent_id", "categories", "regions", "is_dispatcher", "duty_start",
            "duty_end"])
        category_rows = _categories()
        await conn.copy_records_to_table("categories", records=category_rows,
                                         columns=["id", "name", "parent_id", "level"])
        leaf_categories = [c[0] for c in category_rows if c[3] == 2]
        handling_units = [u[0] for u in unit_rows if not u[5]]

        conversations, message_rows, event_rows = [], [], []
        event_id = 0

        def event(name, at, value=None, conversation_id=None, case_id=None, channel=None,
                  actor=None, **detail):
            nonlocal event_id
            event_id += 1
            event_rows.append((event_id, name, at, value, conversation_id, case_id, channel, actor,
                               json.dumps(detail, ensure_ascii=False)))

        # Conversations: 2–8 messages each, citizen then bot, until the message budget is spent.
        message_id = 0
        conversation_id = 0
        while message_id < messages:
            conversation_id += 1
            channel, account = rng.choices(CHANNELS, weights=[6, 3, 1])[0]
            start = _moment(rng, year)
            at = start
            pairs = rng.choice((1, 1, 2, 2, 3, 4))
            handed_off = rng.random() < 0.04
            handoff_at = None
            for p in range(pairs):
                if message_id >= messages:
                    break
                message_id += 1
                inbound_id = message_id
                message_rows.append((inbound_id, conversation_id, channel, account, f"m{inbound_id}",
                                     "in", "citizen", None, "（测试消息）", "answered", None, "{}",
                                     None, None, at))
                event("message_received", at, conversation_id=conversation_id, channel=channel)
                latency = rng.lognormvariate(-1.0, 0.6)      # seconds; median ≈ 0.37 s
                replied = at + timedelta(seconds=latency)
                if message_id < messages:
                    message_id += 1
                    unanswered = rng.random() < 0.05
                    message_rows.append((message_id, conversation_id, channel, account, None, "out",
                                         "bot", "fallback" if unanswered else "answer",
                                         "（测试回复）", None,
                                         None if unanswered else f"qa:T-{rng.randrange(500):03d}@1",
                                         "{}", inbound_id, int(latency * 1000), replied))
                    event("bot_replied", replied, latency, conversation_id=conversation_id,
                          channel=channel)
                if handed_off and p == pairs - 1:
                    handoff_at = replied
                    event("handoff_requested", handoff_at, conversation_id=conversation_id,
                          channel=channel, reason="citizen_asked")
                    if rng.random() < 0.95:
                        wait = timedelta(minutes=rng.lognormvariate(2.5, 1.2))
                        event("staff_first_reply", handoff_at + wait, wait.total_seconds(),
                              conversation_id=conversation_id, channel=channel, actor="agent1")
                at = replied + timedelta(seconds=rng.randrange(10, 300))
            conversations.append((conversation_id, channel, account, f"openid-{conversation_id}",
                                  "staff" if handoff_at else "bot", "citizen_asked" if handoff_at else None,
                                  handoff_at, start, at))
        await conn.copy_records_to_table("conversations", records=conversations, columns=[
            "id", "channel", "account", "sender", "state", "handoff_reason", "handoff_at",
            "created_at", "last_message_at"])
        await conn.copy_records_to_table("messages", records=message_rows, columns=[
            "id", "conversation_id", "channel", "account", "external_id", "direction", "source",
            "kind", "text", "status", "source_ref", "meta", "in_reply_to_id", "latency_ms",
            "created_at"])
        message_count = len(message_rows)
        del message_rows

        # Cases through the lifecycle.
        case_rows, seq_by_day = [], {}
        now = datetime(year, 12, 31, 12, tzinfo=CHINA).astimezone(UTC)
        for case_id in range(1, cases + 1):
            created = _moment(rng, year)
            day = created.astimezone(CHINA).date()
            seq_by_day[day] = seq = seq_by_day.get(day, 0) + 1
            conv = rng.randint(1, conversation_id)
            unit = rng.choice(handling_units)
            case_type = "complaint" if rng.random() < 0.8 else "report"
            deadline = calendar.add_workdays(created, 5)
            status, dispatched, accepted, replied, closed, rating = "closed", None, None, None, None, None
            event("case_submitted", created, conversation_id=conv, case_id=case_id,
                  case_type=case_type, evidence=0)
            dispatched = created + timedelta(minutes=rng.randrange(1, 240))
            if rng.random() < 0.05:                       # misrouted first
                wrong = rng.choice(handling_units)
                event("case_dispatched", dispatched, conversation_id=conv, case_id=case_id,
                      actor="router", unit_id=wrong, previous_unit="D-12345",
                      deadline=deadline.isoformat(), reason="keyword")
                back = dispatched + timedelta(hours=rng.randrange(2, 40))
                event("case_returned", back, conversation_id=conv, case_id=case_id, actor="h",
                      unit_id=wrong, reason="非本单位职责", workdays_after_dispatch=1)
                dispatched = back + timedelta(minutes=rng.randrange(5, 120))
            event("case_dispatched", dispatched, conversation_id=conv, case_id=case_id,
                  actor="dispatcher", unit_id=unit, previous_unit="D-12345",
                  deadline=deadline.isoformat(), reason="")
            if dispatched > now:
                status = "dispatched"
            else:
                accepted = dispatched + timedelta(hours=rng.lognormvariate(2.0, 1.0))
                event("case_accepted", accepted, conversation_id=conv, case_id=case_id,
                      actor="h", unit_id=unit)
                if rng.random() < 0.03:
                    ask = accepted + timedelta(hours=rng.randrange(1, 24))
                    answered = ask + timedelta(hours=rng.randrange(2, 72))
                    event("case_waiting_citizen", ask, conversation_id=conv, case_id=case_id,
                          actor="h", unit_id=unit, question="请补充具体地址")
                    event("case_citizen_answered", answered, (answered - ask).total_seconds(),
                          conversation_id=conv, case_id=case_id, actor="citizen", unit_id=unit)
                if rng.random() < 0.04:
                    before = deadline
                    deadline = calendar.add_workdays(deadline, 5)
                    asked = accepted + timedelta(hours=4)
                    event("case_extension_requested", asked, conversation_id=conv,
                          case_id=case_id, actor="h", unit_id=unit, days=5, reason="需现场核查")
                    event("case_extension_approved", asked + timedelta(hours=3),
                          conversation_id=conv, case_id=case_id, actor="dispatcher", days=5,
                          deadline_before=before.isoformat(), deadline=deadline.isoformat(),
                          reason="需现场核查")
                replied = accepted + timedelta(days=rng.lognormvariate(1.2, 0.8))
                if replied > now or rng.random() < 0.03:
                    status, replied = "in_progress", None
                else:
                    on_time = replied.astimezone(CHINA).date() <= deadline
                    event("case_replied", replied, (replied - created).total_seconds(),
                          conversation_id=conv, case_id=case_id, actor="h", unit_id=unit,
                          on_time=on_time)
                    if rng.random() < 0.7:
                        rating = rng.choices((5, 4, 3, 2, 1), weights=(50, 25, 12, 8, 5))[0]
                        rated = replied + timedelta(hours=rng.randrange(1, 48))
                        event("rating_given", rated, conversation_id=conv, case_id=case_id,
                              actor="citizen", score=rating)
                        if rating <= 2:
                            event("case_reopened", rated, conversation_id=conv, case_id=case_id,
                                  actor="citizen", unit_id=unit, score=rating,
                                  deadline=deadline.isoformat(), reason="dissatisfied")
                    closed = replied + timedelta(days=3)
                    if closed > now:
                        status, closed = "replied", None
                    else:
                        event("case_closed", closed, conversation_id=conv, case_id=case_id,
                              actor="system", reason="auto", rating=rating)
            case_rows.append((case_id, f"ZJ{day:%Y%m%d}-{seq:04d}", day, seq, case_type,
                              "（测试办件）", status, conv, unit, created,
                              rng.choice(leaf_categories), False, deadline, dispatched, accepted,
                              replied, closed, rating, 0.9))
        await conn.copy_records_to_table("cases", records=case_rows, columns=[
            "id", "number", "day", "seq", "case_type", "description", "status", "conversation_id",
            "unit_id", "created_at", "category_id", "anonymous", "deadline", "dispatched_at",
            "accepted_at", "replied_at", "closed_at", "rating", "route_confidence"])
        await conn.copy_records_to_table("events", records=event_rows, columns=[
            "id", "name", "at", "value_seconds", "conversation_id", "case_id", "channel", "actor",
            "detail"])
        for table in ("conversations", "messages", "cases", "events", "categories"):
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")
        await conn.execute("ANALYZE")
        return {"units": len(unit_rows), "conversations": len(conversations),
                "messages": message_count, "cases": len(case_rows), "events": len(event_rows)}
    finally:
        await conn.close()
