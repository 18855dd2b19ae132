"""What this process counts for `/metrics` (served by server/monitoring.py), in Prometheus'
text format (version 0.0.4).

Counters and the reply-latency histogram are counted where things happen: the gateway, the
hand-off, the outbox and the WeChat delivery worker call the one-line hooks below; Prometheus
sums them over instances. Queue depths are not counted here but read from the database at
scrape time (server/monitoring.py), so every instance reports the same, right, number.

The counters live in this module, as prometheus_client keeps its default registry: they belong
to the process, not to one app, and the hooks are called from code that holds no app. The module
imports nothing of govchat, so any package may call it. Tests compare before and after.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# WeChat waits 5 s for a passive reply (the budget is 4 s by default): the buckets around it.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def labels(names: Iterable[str], values: Iterable[str]) -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    return "{" + ",".join(pairs) + "}" if pairs else ""


def number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def head(name: str, kind: str, help_: str) -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]


class Counter:
    def __init__(self, name: str, help_: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}

    def inc(self, *values: str, by: float = 1) -> None:
        key = tuple(str(v) for v in values)
        self.values[key] = self.values.get(key, 0.0) + by

    def value(self, *values: str) -> float:
        return self.values.get(tuple(values), 0.0)

    def lines(self) -> list[str]:
        return head(self.name, "counter", self.help) + [
            f"{self.name}{labels(self.labels, key)} {number(v)}"
            for key, v in sorted(self.values.items())]


class Histogram:
    def __init__(self, name: str, help_: str, labels: tuple[str, ...],
                 buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.labels = name, help_, labels
        self.buckets = (*buckets, math.inf)
        self.series: dict[tuple[str, ...], list] = {}    # key → [counts per bucket, sum]

    def observe(self, seconds: float, *values: str) -> None:
        counts, _ = series = self.series.setdefault(tuple(values), [[0] * len(self.buckets), 0.0])
        for i, bound in enumerate(self.buckets):
            if seconds <= bound:
                counts[i] += 1
        series[1] += seconds

    def count(self, *values: str) -> int:
        series = self.series.get(tuple(values))
        return series[0][-1] if series else 0

    def lines(self) -> list[str]:
        out = head(self.name, "histogram", self.help)
        for key, (counts, total) in sorted(self.series.items()):
            for bound, n in zip(self.buckets, counts):
                # "5.0", as prometheus_client writes it (Prometheus 3 normalises to that form).
                le = "+Inf" if math.isinf(bound) else repr(float(bound))
                bucket = labels((*self.labels, "le"), (*key, le))
                out.append(f"{self.name}_bucket{bucket} {n}")
            out.append(f"{self.name}_sum{labels(self.labels, key)} {number(total)}")
            out.append(f"{self.name}_count{labels(self.labels, key)} {counts[-1]}")
        return out


MESSAGES_RECEIVED = Counter("govchat_messages_received_total",
                            "Citizen messages stored (a channel's retry of one is not counted again).",
                            ("channel",))
MESSAGES_SENT = Counter("govchat_messages_sent_total",
                        "Messages stored to go to citizens, by who wrote them (bot, system, staff, unit).",
                        ("channel", "source"))
REPLY_LATENCY = Histogram("govchat_reply_latency_seconds",
                          "Seconds from a citizen message to its stored answer (the bot's, or the apology).",
                          ("channel",), LATENCY_BUCKETS)
HANDOFFS = Counter("govchat_handoffs_requested_total",
                   "Conversations handed to staff, by reason (citizen_request, bot_unavailable).",
                   ("reason",))
DELIVERIES = Counter("govchat_wechat_deliveries_total",
                     "Customer-service messages finished, by outcome (delivered, undeliverable).",
                     ("outcome",))
DELIVERY_RETRIES = Counter("govchat_wechat_delivery_retries_total",
                           "Customer-service message tries that failed and will be tried again.")
PASSIVE_MISSED = Counter("govchat_wechat_passive_budget_missed_total",
                         "WeChat messages answered `success` because the bot missed the reply budget.")
COUNTED = (MESSAGES_RECEIVED, MESSAGES_SENT, REPLY_LATENCY, HANDOFFS, DELIVERIES, DELIVERY_RETRIES,
           PASSIVE_MISSED)


# ---------------------------------------------------------------- hooks (one line at each call site)

def received(channel: str) -> None:
    MESSAGES_RECEIVED.inc(channel)


def replied(channel: str, source: str, replies: int, seconds: float) -> None:
    """The gateway stored `replies` answers to one message, `seconds` after it arrived."""
    if replies:
        MESSAGES_SENT.inc(channel, source, by=replies)
        REPLY_LATENCY.observe(seconds, channel)


def sent(channel: str, source: str) -> None:
    """A message the citizen did not just ask for (staff, a unit's reply) was stored."""
    MESSAGES_SENT.inc(channel, source)


def handed_off(reason: str) -> None:
    HANDOFFS.inc(reason)


def delivery_finished(outcome: str) -> None:
    DELIVERIES.inc(outcome)


def delivery_retried() -> None:
    DELIVERY_RETRIES.inc()


def passive_missed() -> None:
    PASSIVE_MISSED.inc()


def gauge(name: str, help_: str, samples: Iterable[tuple[dict[str, str], float]]) -> list[str]:
    return head(name, "gauge", help_) + [
        f"{name}{labels(names, names.values())} {number(value)}" for names, value in samples]


def counted() -> list[str]:
    """This process's counters and histogram, in the text format."""
    return [line for metric in COUNTED for line in metric.lines()]
