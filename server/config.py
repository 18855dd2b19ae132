"""Configuration from environment variables, checked once at start-up.

Every variable is listed in the README's configuration table; keep the two in step.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


def _number(env: dict[str, str], name: str, default, cast=int, minimum=0):
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = cast(raw)
    except ValueError:
        kind = "a whole number" if cast is int else "a number"
        raise ConfigError(f"{name} must be {kind}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Config:
    database_url: str
    # Both loopbacks by default: art. 11 asks for IPv6 beside IPv4.
    hosts: tuple[str, ...] = ("127.0.0.1", "::1")
    port: int = 8080
    var_dir: Path = field(default=ROOT / "var")
    # Rasa runs beside the server as a supervised child process.
    rasa_url: str = "http://127.0.0.1:5005"
    rasa_port: int = 5005
    rasa_manage: bool = True          # start and supervise Rasa from `govchat run`
    rasa_venv: Path = field(default=ROOT / ".venv-rasa")
    model_dir: Path = field(default=ROOT / "var" / "models")   # trained models, by content hash
    rasa_timeout: float = 8.0         # seconds to wait for Rasa before apologising
    # Rasa calls our action endpoint with this token; a managed Rasa gets a fresh one per run.
    action_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    # Citizen input limits.
    max_message_chars: int = 500
    rate_limit_per_minute: int = 20
    # Messages with Rasa at once per server; more wait their turn (bot/gateway.py).
    max_in_flight: int = 8
    log_level: str = "INFO"
    log_format: str = "text"          # text | json (one object per line, server/logs.py)
    # /metrics answers loopback, and anyone presenting this bearer token (server/metrics.py).
    metrics_token: str = field(default="", repr=False)
    load_demo: bool = True            # bundled demo Q&A, units and categories on first start
    embedder: str | None = None       # Q&A search backend; None = the calibrated one
    kb_refresh_seconds: float = 5.0   # how often to look for newly published Q&A
    # The default WeChat account (plain /wechat); more accounts live in the wechat_accounts table.
    wechat_app_id: str = ""
    wechat_app_secret: str = field(default="", repr=False)
    wechat_token: str = field(default="", repr=False)
    wechat_encoding_aes_key: str | None = field(default=None, repr=False)
    wechat_mode: str = "plaintext"    # plaintext | compatible | safe
    wechat_max_skew: int = 300        # seconds a signed timestamp may be off (replay window)
    wechat_reply_budget: float = 4.0  # WeChat waits 5 s; answer passively only within this
    # Late replies go out through the customer-service API (channels/wechat/delivery.py).
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_delivery_backoff: float = 2.0   # seconds before the first retry; doubles each time
    wechat_delivery_attempts: int = 6      # tries before a delivery is given up
    wechat_delivery_poll: float = 1.0      # seconds between looks at the queue (other instances' work)
    # Working days to reply per case type, from CASE_DEADLINE_DAYS; types not named keep
    # casework.calendar.DEFAULT_DEADLINE_DAYS.
    case_deadline_days: dict[str, int] = field(default_factory=dict)
    case_autoclose_days: int = 3        # working days a reply waits for a rating before closing
    case_job_interval: float = 60.0     # seconds between runs of the case job (reminders …)
    # Staff consoles (admin/auth.py): a session unused this long is over; X-Forwarded-Proto is
    # believed (for the cookie's Secure flag) only behind a proxy we were told about.
    staff_idle_minutes: int = 30
    trust_proxy: bool = False

    @property
    def rasa_project(self) -> Path:
        return ROOT / "bot" / "rasa"


    def with_(self, **changes) -> "Config":
        return replace(self, **changes)


def _hosts(raw: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().strip("[]") for h in raw.split(",") if h.strip())
    if not hosts:
        raise ConfigError("GOVCHAT_HOST must name at least one address")
    return hosts


def default_database_url(var_dir: Path) -> str:
    return f"sqlite+aiosqlite:///{var_dir / 'govchat.db'}"


def load_config(env: dict[str, str] | None = None) -> Config:
    env = dict(os.environ if env is None else env)
    var_dir = Path(env.get("GOVCHAT_VAR_DIR") or ROOT / "var").resolve()
    rasa_port = _number(env, "RASA_PORT", 5005, minimum=1)
    database_url = env.get("DATABASE_URL") or default_database_url(var_dir)
    if not database_url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ConfigError(
            "DATABASE_URL must start with sqlite+aiosqlite:// or postgresql+asyncpg://, "
            f"got {database_url.split('://')[0]}://…"
        )
    return Config(
        database_url=database_url,
        hosts=_hosts(env.get("GOVCHAT_HOST") or "127.0.0.1,::1"),
        port=_number(env, "GOVCHAT_PORT", 8080, minimum=1),
        var_dir=var_dir,
        rasa_url=(env.get("RASA_URL") or f"http://127.0.0.1:{rasa_port}").rstrip("/"),
        rasa_port=rasa_port,
        rasa_manage=env.get("RASA_MANAGE", "1") not in ("0", "false", "no"),
        rasa_venv=Path(env.get("RASA_VENV") or ROOT / ".venv-rasa"),
        model_dir=Path(env.get("RASA_MODEL_DIR") or var_dir / "models").resolve(),
        rasa_timeout=_number(env, "RASA_TIMEOUT", 8.0, cast=float, minimum=0.1),
        **({"action_token": env["GOVCHAT_ACTION_TOKEN"]} if env.get("GOVCHAT_ACTION_TOKEN") else {}),
        max_message_chars=_number(env, "GOVCHAT_MAX_MESSAGE_CHARS", 500, minimum=1),
        rate_limit_per_minute=_number(env, "GOVCHAT_RATE_LIMIT", 20, minimum=1),
        max_in_flight=_number(env, "GOVCHAT_MAX_IN_FLIGHT", 8, minimum=1),
        log_level=(env.get("GOVCHAT_LOG_LEVEL") or "INFO").upper(),
        log_format=_log_format(env.get("GOVCHAT_LOG_FORMAT") or "text"),
        metrics_token=env.get("GOVCHAT_METRICS_TOKEN", ""),
        load_demo=env.get("GOVCHAT_DEMO_CONTENT", "1") not in ("0", "false", "no"),
        embedder=env.get("GOVCHAT_EMBEDDER") or None,
        kb_refresh_seconds=_number(env, "GOVCHAT_KB_REFRESH", 5.0, cast=float, minimum=0.5),
        **_wechat(env),
        case_deadline_days=_deadline_days(env.get("CASE_DEADLINE_DAYS") or ""),
        case_autoclose_days=_number(env, "CASE_AUTOCLOSE_DAYS", 3, minimum=1),
        case_job_interval=_number(env, "CASE_JOB_INTERVAL", 60.0, cast=float, minimum=1),
        staff_idle_minutes=_number(env, "GOVCHAT_STAFF_IDLE_MINUTES", 30, minimum=1),
        trust_proxy=env.get("GOVCHAT_TRUST_PROXY", "0") in ("1", "true", "yes"),
    )


def _log_format(raw: str) -> str:
    if raw.lower() not in ("text", "json"):
        raise ConfigError(f"GOVCHAT_LOG_FORMAT must be text or json, got {raw!r}")
    return raw.lower()


def _deadline_days(raw: str) -> dict[str, int]:
    """CASE_DEADLINE_DAYS: `complaint=5,report=5,consultation=3` (any of them, in any order)."""
    from casework.calendar import DEFAULT_DEADLINE_DAYS

    days = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, _, value = (s.strip() for s in item.partition("="))
        if name not in DEFAULT_DEADLINE_DAYS:
            raise ConfigError(f"CASE_DEADLINE_DAYS: unknown case type {name!r}; "
                              f"use {', '.join(DEFAULT_DEADLINE_DAYS)}, as in complaint=5,report=5")
        if not (value.isascii() and value.isdigit()) or int(value) < 1:
            raise ConfigError(f"CASE_DEADLINE_DAYS: {name} must be a whole number of working days "
                              f"of at least 1, got {value!r}")
        days[name] = int(value)
    return days


def _wechat(env: dict[str, str]) -> dict:
    key = env.get("WECHAT_ENCODING_AES_KEY") or None
    mode = env.get("WECHAT_MODE") or ("safe" if key else "plaintext")
    if mode not in ("plaintext", "compatible", "safe"):
        raise ConfigError(f"WECHAT_MODE must be plaintext, compatible or safe, got {mode!r}")
    if key is not None and len(key) != 43:
        raise ConfigError(f"WECHAT_ENCODING_AES_KEY must be 43 characters, got {len(key)}")
    if mode != "plaintext" and key is None:
        raise ConfigError(f"WECHAT_MODE={mode} needs WECHAT_ENCODING_AES_KEY")
    budget = _number(env, "WECHAT_REPLY_BUDGET", 4.0, cast=float, minimum=0.1)
    if budget >= 5:   # WeChat gives up after 5 s and retries; the passive reply would be lost
        raise ConfigError(f"WECHAT_REPLY_BUDGET must be under 5 seconds, got {budget}")
    return dict(
        wechat_app_id=env.get("WECHAT_APP_ID", ""),
        wechat_app_secret=env.get("WECHAT_APP_SECRET", ""),
        wechat_token=env.get("WECHAT_TOKEN", ""),
        wechat_encoding_aes_key=key,
        wechat_mode=mode,
        wechat_max_skew=_number(env, "WECHAT_MAX_SKEW", 300, minimum=1),
        wechat_reply_budget=budget,
        wechat_api_base=(env.get("WECHAT_API_BASE") or "https://api.weixin.qq.com").rstrip("/"),
        wechat_delivery_backoff=_number(env, "WECHAT_DELIVERY_BACKOFF", 2.0, cast=float, minimum=0.01),
        wechat_delivery_attempts=_number(env, "WECHAT_DELIVERY_ATTEMPTS", 6, minimum=1),
        wechat_delivery_poll=_number(env, "WECHAT_DELIVERY_POLL", 1.0, cast=float, minimum=0.05),
    )
