"""Logs: one JSON object a line when asked, personal data masked in every format, the request id
in and out and on every line logged while serving the request."""
from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from server import logs
from server.config import ConfigError, load_config
from tests.server.test_metrics import serve

PHONE, ID_NUMBER = "13812345678", "330102199001011234"
OPENID = "oLVPpjqs9BhvzwPj5A-vTYAX3GLc"      # the shape of a real openid: 28 characters


@pytest.fixture
def captured():
    """Every record of every logger at INFO and above (as production logs), formatted as
    GOVCHAT_LOG_FORMAT=json formats it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    access = logs.ACCESS.level
    logs.ACCESS.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(level)
    logs.ACCESS.setLevel(access)


def test_a_json_line_has_the_fields_and_no_personal_data(captured):
    log = logging.getLogger("govchat.test")
    log.setLevel(logging.DEBUG)
    said = f"我的电话{PHONE}，身份证{ID_NUMBER}"
    log.info("citizen %s wrote about case %s: %s", OPENID, "ZJ20261127-0001", said,
             extra={"conversation_id": 7, "case_no": "ZJ20261127-0001", "channel": "wechat",
                    "latency_ms": 812, "openid": OPENID, "text": said})
    log.debug("the message itself", extra={"text": said})
    try:
        raise ValueError(f"bad input {PHONE}")
    except ValueError:
        log.exception("failed for %s", OPENID)
    info, debug, error = captured()[-3:]
    raw = json.dumps([info, debug, error], ensure_ascii=False)
    for secret in (PHONE, ID_NUMBER, OPENID):
        assert secret not in raw
    assert info["level"] == "INFO" and info["logger"] == "govchat.test"
    at = datetime.fromisoformat(info["time"].replace("Z", "+00:00"))
    assert at.utcoffset() == timedelta(0) and abs(datetime.now(timezone.utc) - at) < timedelta(minutes=1)
    assert info["message"] == ("citizen oLVPpj… wrote about case ZJ20261127-0001: "
                               "我的电话138****5678，身份证330102********1234")
    assert (info["conversation_id"], info["case_no"], info["channel"], info["latency_ms"],
            info["openid"]) == (7, "ZJ20261127-0001", "wechat", 812, "oLVPpj…")
    assert "text" not in info                           # what a citizen wrote: DEBUG only
    assert debug["text"] == "我的电话138****5678，身份证330102********1234"
    assert error["level"] == "ERROR" and "ValueError: bad input 138****5678" in error["exception"]


def test_text_lines_are_masked_too():
    formatter = logs.TextFormatter()
    record = logging.makeLogRecord({"name": "x", "levelname": "WARNING", "levelno": 30,
                                    "msg": "to %s: %s", "args": (OPENID, PHONE)})
    line = formatter.format(record)
    assert line.endswith("WARNING x: to oLVPpj…: 138****5678")


def test_identifiers_and_mask():
    assert logs.short_id(OPENID) == "oLVPpj…" and logs.short_id("web-1") == "web-1"
    # Not an openid: other words starting with "o", shorter ids.
    assert logs.mask("oCitizen0123456789 outstanding_requests") == "oCitizen0123456789 outstanding_requests"
    assert logs.mask(f"[{OPENID}]") == "[oLVPpj…]"


async def test_a_message_with_personal_data_through_the_app(db, tmp_path, captured):
    said = f"我的手机{PHONE}，身份证号{ID_NUMBER}，我的微信是{OPENID}"
    async with serve(db, tmp_path, rasa_timeout=0.2) as (http, rasa):
        rasa.delay = 1.0            # Rasa times out: the gateway logs a warning for the conversation
        resp = await http.post("/api/chat", json={"sender": OPENID, "text": said},
                               headers={"X-Request-Id": "req-42"})
        assert resp.status == 200 and resp.headers["X-Request-Id"] == "req-42"
    lines = captured()
    raw = json.dumps(lines, ensure_ascii=False)
    for secret in (PHONE, ID_NUMBER, OPENID, "我的手机"):
        assert secret not in raw
    [warning] = [line for line in lines if line["logger"] == "bot.gateway"]
    assert warning["level"] == "WARNING" and warning["request_id"] == "req-42"
    assert warning["channel"] == "webchat" and isinstance(warning["conversation_id"], int)
    [access] = [line for line in lines if line["logger"] == "govchat.access"
                and line["message"] == "POST /api/chat 200"]
    assert access["request_id"] == "req-42" and access["status"] == 200
    assert access["latency_ms"] >= 200             # it waited for Rasa's timeout


async def test_request_ids(db, tmp_path):
    async with serve(db, tmp_path) as (http, rasa):
        made = (await http.get("/healthz")).headers["X-Request-Id"]
        assert len(made) == 32 and int(made, 16) >= 0
        other = (await http.get("/healthz")).headers["X-Request-Id"]
        assert other != made
        for bad in ("a b", "x" * 65, "<script>", "ü"):
            got = (await http.get("/healthz", headers={"X-Request-Id": bad})).headers["X-Request-Id"]
            assert got != bad and len(got) == 32
        resp = await http.get("/nothing-here", headers={"X-Request-Id": "abc.1-2"})
        assert resp.status == 404 and resp.headers["X-Request-Id"] == "abc.1-2"


def test_log_format_setting():
    assert load_config({}).log_format == "text"
    assert load_config({"GOVCHAT_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigError, match="GOVCHAT_LOG_FORMAT must be text or json"):
        load_config({"GOVCHAT_LOG_FORMAT": "xml"})
    assert load_config({"GOVCHAT_METRICS_TOKEN": "s3cret"}).metrics_token == "s3cret"
    assert "s3cret" not in repr(load_config({"GOVCHAT_METRICS_TOKEN": "s3cret"}))


def test_setup_replaces_only_its_own_handler():
    root = logging.getLogger()
    others = [h for h in root.handlers if h.name != "govchat"]
    level = root.level
    try:
        logs.setup("INFO", "json")
        logs.setup("WARNING", "json")
        ours = [h for h in root.handlers if h.name == "govchat"]
        assert len(ours) == 1 and isinstance(ours[0].formatter, logs.JsonFormatter)
        assert [h for h in root.handlers if h.name != "govchat"] == others
        assert root.level == logging.WARNING and logs.ACCESS.level == logging.INFO
    finally:
        for h in [h for h in root.handlers if h.name == "govchat"]:
            root.removeHandler(h)
        root.setLevel(level)
        logs.ACCESS.setLevel(logging.NOTSET)
