"""The custom menu (自定义菜单): checked here, pushed with `POST /cgi-bin/menu/create`.

A menu file is WeChat's own JSON, `{"button": [...]}`: at most 3 buttons, each either a leaf
(`type` plus what that type needs: `key` for click, `url` for view …) or a group with a name
and 1–5 `sub_button`s. Everything WeChat would refuse is found before the call and reported
naming the button, in plain words; CLICK keys the bot does not know (`inbound.MENU`) are
warnings, since a tap on them gets no answer. The access token is the shared one
(`tokens.TokenCache`), renewed once when WeChat calls it invalid.
"""
from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from channels.wechat.accounts import Account
from channels.wechat.api_client import TOKEN_REJECTED, ApiError, Unreachable, WechatApi
from channels.wechat.inbound import MENU
from channels.wechat.tokens import TokenCache
from server.db import Database

DEFAULT_FILE = Path(__file__).with_name("menu.json")
MAX_BUTTONS, MAX_SUB_BUTTONS = 3, 5
NAME_BYTES, SUB_NAME_BYTES, KEY_BYTES, URL_BYTES = 16, 60, 128, 1024
# Button type → the fields it needs, as WeChat documents them.
NEEDS = {
    "click": ("key",), "view": ("url",),
    "scancode_push": ("key",), "scancode_waitmsg": ("key",), "pic_sysphoto": ("key",),
    "pic_photo_or_album": ("key",), "pic_weixin": ("key",), "location_select": ("key",),
    "media_id": ("media_id",), "view_limited": ("media_id",),
    "article_id": ("article_id",), "article_view_limited": ("article_id",),
    "miniprogram": ("url", "appid", "pagepath"),
}
# Types whose tap is an event sent to the server; the bot answers only click (channels/wechat/inbound.py).
EVENT_TYPES = {t for t, needs in NEEDS.items() if needs == ("key",)} - {"click"}
# WeChat's error codes for the menu, in plain words.
ERRORS = {
    40016: "the number of buttons is not valid (1 to 3)",
    40017: "a button's type is not valid",
    40018: "a button's name is too long",
    40019: "a button's key is too long",
    40020: "a button's URL is too long",
    40023: "the number of sub-buttons is not valid (1 to 5)",
    40024: "a sub-button's type is not valid",
    40025: "a sub-button's name is too long",
    40026: "a sub-button's key is too long",
    40027: "a sub-button's URL is too long",
    40054: "a sub-button's URL is not valid (it must start with http:// or https://)",
    40055: "a button's URL is not valid (it must start with http:// or https://)",
    40125: "the AppSecret is wrong",
    40164: "this server's address is not on the account's IP allow-list (IP白名单)",
    46003: "the account has no menu",
    48001: "this account may not use the menu API (unverified subscription accounts cannot): "
           "create the menu in the WeChat console",
}


class MenuError(ValueError):
    """The menu cannot be read or pushed; the message says why, in plain words."""


def load(path: str | Path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MenuError(f"cannot read {path}: {exc}") from None
    try:
        menu = json.loads(text)
    except ValueError as exc:
        raise MenuError(f"{path} is not JSON: {exc}") from None
    if not isinstance(menu, dict):
        raise MenuError(f'{path}: the menu is a JSON object {{"button": [...]}}')
    return menu


def _bytes(value) -> int:
    return len(str(value).encode("utf-8"))


def check(menu: dict) -> tuple[list[str], list[str]]:
    """(errors, warnings): errors WeChat would refuse the menu for, warnings about the bot."""
    errors: list[str] = []
    warnings: list[str] = []
    buttons = menu.get("button")
    if not isinstance(buttons, list) or not buttons:
        return [f'the menu needs "button": a list of 1 to {MAX_BUTTONS} buttons'], warnings
    if len(buttons) > MAX_BUTTONS:
        errors.append(f"{len(buttons)} buttons: WeChat allows at most {MAX_BUTTONS}")
    for extra in sorted(set(menu) - {"button"}):
        warnings.append(f"{extra!r} is not part of a menu and is not sent")
    keys: dict[str, str] = {}
    for i, button in enumerate(buttons, 1):
        where = _label(f"button {i}", button)
        if not isinstance(button, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        _check_name(button, where, NAME_BYTES, errors)
        subs = button.get("sub_button")
        if subs:        # a group: the name opens the sub-menu; its own type is not used
            if not isinstance(subs, list):
                errors.append(f"{where}: sub_button must be a list")
                continue
            if len(subs) > MAX_SUB_BUTTONS:
                errors.append(f"{where}: {len(subs)} sub-buttons; WeChat allows at most "
                              f"{MAX_SUB_BUTTONS}")
            for j, sub in enumerate(subs, 1):
                sub_where = f"{where} ▸ " + _label(f"sub-button {j}", sub)
                if not isinstance(sub, dict):
                    errors.append(f"{sub_where}: not a JSON object")
                    continue
                if sub.get("sub_button"):
                    errors.append(f"{sub_where}: sub-buttons cannot have sub-buttons")
                _check_name(sub, sub_where, SUB_NAME_BYTES, errors)
                _check_leaf(sub, sub_where, errors, warnings, keys)
        else:
            _check_leaf(button, where, errors, warnings, keys)
    return errors, warnings


def _label(position: str, button) -> str:
    name = button.get("name") if isinstance(button, dict) else None
    return f"{position} 「{name}」" if isinstance(name, str) and name else position


def _check_name(button: dict, where: str, limit: int, errors: list[str]) -> None:
    name = button.get("name")
    if not isinstance(name, str) or not name.strip():
        errors.append(f"{where}: a name is required")
    elif _bytes(name) > limit:
        errors.append(f"{where}: the name is {_bytes(name)} bytes in UTF-8; WeChat allows {limit} "
                      f"(a Chinese character is 3 bytes)")


def _check_leaf(button: dict, where: str, errors: list[str], warnings: list[str],
                keys: dict[str, str]) -> None:
    kind = button.get("type")
    if kind not in NEEDS:
        errors.append(f"{where}: type {kind!r} is not one WeChat knows "
                      f"({', '.join(NEEDS)}); or give it sub_button")
        return
    for needed in NEEDS[kind]:
        value = button.get(needed)
        if not isinstance(value, str) or not value.strip():
            errors.append(f"{where}: a {kind} button needs {needed!r}")
    key, url = button.get("key"), button.get("url")
    if isinstance(key, str) and _bytes(key) > KEY_BYTES:
        errors.append(f"{where}: the key is {_bytes(key)} bytes in UTF-8; WeChat allows {KEY_BYTES}")
    if isinstance(url, str) and url:
        if _bytes(url) > URL_BYTES:
            errors.append(f"{where}: the URL is {_bytes(url)} bytes; WeChat allows {URL_BYTES}")
        if not url.startswith(("http://", "https://")):
            errors.append(f"{where}: the URL must start with http:// or https://")
    if kind == "click" and isinstance(key, str) and key.strip():
        if key not in MENU:
            warnings.append(f"{where}: key {key!r} is not one the bot understands "
                            f"({', '.join(MENU)}); a tap on it gets no answer")
        if key in keys:
            warnings.append(f"{where}: key {key!r} is also on {keys[key]}")
        keys.setdefault(key, where)
    elif kind in EVENT_TYPES:
        warnings.append(f"{where}: the bot does not answer {kind} events; a tap on it gets no answer")


def describe(menu: dict) -> list[str]:
    """The menu as lines: one per button, sub-buttons indented."""
    lines = []
    for button in menu.get("button", []):
        lines.append(_line(button, ""))
        for sub in button.get("sub_button") or []:
            lines.append(_line(sub, "  ▸ "))
    return lines


def _line(button: dict, indent: str) -> str:
    name = f"{indent}{button.get('name', '')}"
    if button.get("sub_button"):
        return name
    kind = button.get("type", "")
    target = next((button[f] for f in NEEDS.get(kind, ()) if button.get(f)), "")
    return f"{name}  [{kind}] {target}".rstrip()


def from_current(answer: dict) -> dict | None:
    """`get_current_selfmenu_info`'s answer as a menu file; None when the menu is off or empty.

    That API wraps sub-buttons as {"list": [...]} and may add news_info; both are unwrapped.
    """
    info = answer.get("selfmenu_info") or {}
    if not answer.get("is_menu_open") or not info.get("button"):
        return None
    buttons = []
    for button in info["button"]:
        button = dict(button)
        subs = button.get("sub_button")
        if isinstance(subs, dict):
            subs = subs.get("list", [])
        if subs:
            button["sub_button"] = subs
        else:
            button.pop("sub_button", None)
        buttons.append(button)
    return {"button": buttons}


def explain(exc: ApiError | Unreachable) -> str:
    if isinstance(exc, ApiError):
        return f"WeChat refused: {ERRORS.get(exc.errcode, exc.errmsg)} (errcode {exc.errcode})"
    return f"WeChat's API did not answer usably: {exc}"


async def _with_token(tokens: TokenCache, account: Account, call):
    token = await tokens.get(account)
    try:
        return await call(token)
    except ApiError as exc:
        if exc.errcode not in TOKEN_REJECTED:
            raise
        # Expired, or replaced by a fetch elsewhere: renew once and try again.
        return await call(await tokens.get(account, rejected=token))


def _usable(account: Account) -> None:
    if not account.app_secret:
        raise MenuError(f"the account {account.name!r} has no AppSecret: WeChat gives no access "
                        "token without it")


async def push(db: Database, api_base: str, account: Account, menu: dict) -> None:
    """Replace the account's menu. Raises MenuError (not valid), ApiError or Unreachable."""
    errors, _ = check(menu)
    if errors:
        raise MenuError("; ".join(errors))
    _usable(account)
    async with aiohttp.ClientSession() as http:
        api = WechatApi(api_base, http)
        await _with_token(TokenCache(db, api), account,
                          lambda token: api.create_menu(token, {"button": menu["button"]}))


async def current(db: Database, api_base: str, account: Account) -> dict | None:
    """The menu the account shows now, as a menu file; None when it has none."""
    _usable(account)
    async with aiohttp.ClientSession() as http:
        api = WechatApi(api_base, http)
        answer = await _with_token(TokenCache(db, api), account, api.current_menu)
    return from_current(answer)
