"""Logging: text for a person at a terminal, or one JSON object per line for a log collector
(GOVCHAT_LOG_FORMAT=json), personal data masked in both (art. 27).

Masked in every line: mobile and ID-card numbers (casework.privacy.mask_text) and WeChat openids
(first 6 characters and "…"). What a citizen wrote is never logged at INFO or above: extra
fields named like a message body are kept at DEBUG only.

Each HTTP request gets a request id (the caller's `X-Request-Id` when it is sane, else a new
one), sent back in the response and carried into every line logged while serving it — also by
tasks the request started, such as the gateway finishing a WeChat reply after the budget.
`bind()` adds fields such as the conversation id for the rest of the current task.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import datetime, timezone

from aiohttp import web

from casework.privacy import mask_text

_CONTEXT: contextvars.ContextVar[dict] = contextvars.ContextVar("govchat_log_context", default={})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# A WeChat openid: 28 characters of base64url starting with "o" (oLVPpjqs9BhvzwPj5A-vTYAX3GLc).
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")
# Extra fields that hold a person's identifier: shortened like an openid wherever they appear.
IDENTIFIERS = ("openid", "sender", "to_user", "from_user")
# Extra fields that hold what a citizen wrote: only at DEBUG.
BODIES = ("text", "body", "message_text", "content")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def short_id(value: str) -> str:
    """An identifier shortened so it can be told apart in a log but not used: `oCitiz…`."""
    value = str(value)
    return value if len(value) <= 8 else value[:6] + "…"


def mask(text: str) -> str:
    return _OPENID.sub(lambda m: short_id(m.group()), mask_text(text))


def bind(**fields) -> None:
    """Log these fields (conversation_id=…, channel=…) with every line of the current task."""
    _CONTEXT.set({**_CONTEXT.get(), **fields})


def current() -> dict:
    return dict(_CONTEXT.get())


def _fields(record: logging.LogRecord) -> dict:
    """The record's context and extra fields, masked; bodies dropped above DEBUG."""
    fields = {**_CONTEXT.get(), **{k: v for k, v in vars(record).items() if k not in _STANDARD}}
    out = {}
    for key, value in fields.items():
        if key in BODIES and record.levelno > logging.DEBUG:
            continue
        if key in IDENTIFIERS and value is not None:
            value = short_id(value)
        elif isinstance(value, str):
            value = mask(value)
        elif not isinstance(value, (int, float, bool, type(None))):
            value = mask(str(value))
        out[key] = value
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "level": record.levelname, "logger": record.name,
                "message": mask(record.getMessage())}
        line.update({k: v for k, v in _fields(record).items() if k not in line})
        if record.exc_info:
            line["exception"] = mask(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The usual one-line text, masked, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = mask(super().format(record))
        request_id = _CONTEXT.get().get("request_id")
        return f"{text} [{request_id}]" if request_id else text


def setup(level: str, fmt: str = "text") -> None:
    """Log to stderr in the chosen format: one handler of ours on the root logger (a second call
    replaces it; handlers others put there, such as pytest's, stay)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.name = "govchat"
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == "govchat"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("aiohttp.access", "alembic", "rasa_sdk"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # One line per request, with its status and duration: for collectors, not for a terminal.
    ACCESS.setLevel(logging.INFO if fmt == "json" else logging.WARNING)


ACCESS = logging.getLogger("govchat.access")


@web.middleware
async def request_id(request: web.Request, handler):
    """Outermost middleware: the request id in and out, and the access line."""
    given = request.headers.get("X-Request-Id", "")
    rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
    token = _CONTEXT.set({**_CONTEXT.get(), "request_id": rid})
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        exc.headers["X-Request-Id"] = rid
        status = exc.status
        raise
    finally:
        # request.path only: a query may carry a token (the action endpoint's).
        ACCESS.info("%s %s %s", request.method, request.path, status,
                    extra={"status": status,
                           "latency_ms": round((time.perf_counter() - started) * 1000, 1)})
        _CONTEXT.reset(token)
    if not response.prepared:      # a stream has sent its headers already
        response.headers["X-Request-Id"] = rid
    return response
