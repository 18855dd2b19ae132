"""`govchat wechat menu`: the custom menu checked locally, pushed to (a loopback fake of) WeChat."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp
import pytest

from channels.wechat import menu
from channels.wechat.accounts import Account
from channels.wechat.api_client import ApiError, WechatApi
from tests.channels import fake_wechat_api
from tests.channels.test_wechat import APP_ID, TOKEN

GOVCHAT = str(Path(sys.executable).parent / "govchat")
ACCOUNT = Account("default", APP_ID, TOKEN, app_secret="s1")
BUNDLED = menu.load(menu.DEFAULT_FILE)


def click(name: str, key: str | None = None) -> dict:
    return {"type": "click", "name": name, "key": key or name}


# --- checked before anything is sent -------------------------------------------------------

def test_the_bundled_menu_is_valid_and_carries_every_key_the_bot_knows():
    assert menu.check(BUNDLED) == ([], [])
    assert menu.describe(BUNDLED) == [
        "咨询  [click] 咨询", "投诉举报", "  ▸ 投诉  [click] 投诉", "  ▸ 举报  [click] 举报",
        "办事", "  ▸ 查询进度  [click] 查询进度", "  ▸ 人工服务  [click] 人工服务"]


@pytest.mark.parametrize("buttons, error", [
    ([], 'the menu needs "button": a list of 1 to 3 buttons'),
    ([click("咨询")] * 4, "4 buttons: WeChat allows at most 3"),
    ([{"type": "click", "name": "政务服务咨询窗口", "key": "咨询"}],
     "button 1 「政务服务咨询窗口」: the name is 24 bytes in UTF-8; WeChat allows 16 "
     "(a Chinese character is 3 bytes)"),
    ([click("咨询"), {"name": "办事", "sub_button": [click("人工服务")] * 6}],
     "button 2 「办事」: 6 sub-buttons; WeChat allows at most 5"),
    ([{"name": "办事", "sub_button": [{"type": "click", "name": "进度"}]}],
     "button 1 「办事」 ▸ sub-button 1 「进度」: a click button needs 'key'"),
    ([{"type": "view", "name": "官网", "url": "www.jiahe.gov.cn"}],
     "button 1 「官网」: the URL must start with http:// or https://"),
    ([{"type": "clik", "name": "咨询", "key": "咨询"}],
     "button 1 「咨询」: type 'clik' is not one WeChat knows"),
    ([{"type": "click", "key": "咨询"}], "button 1: a name is required"),
    ([click("咨询", "k" * 129)], "button 1 「咨询」: the key is 129 bytes in UTF-8; WeChat allows 128"),
    ([{"name": "办事", "sub_button": [{"type": "click", "name": "长" * 21, "key": "咨询"}]}],
     "button 1 「办事」 ▸ sub-button 1 「" + "长" * 21 + "」: the name is 63 bytes in UTF-8; "
     "WeChat allows 60"),
])
def test_what_wechat_would_refuse_is_named_in_plain_words(buttons, error):
    errors, _ = menu.check({"button": buttons})
    assert [e for e in errors if e.startswith(error)] != [], errors


def test_keys_the_bot_does_not_understand_are_warnings():
    errors, warnings = menu.check({"button": [
        click("咨询"), click("天气", "WEATHER"),
        {"name": "更多", "sub_button": [{"type": "view", "name": "官网", "url": "https://www.jiahe.gov.cn/"},
                                       {"type": "scancode_push", "name": "扫码", "key": "scan"},
                                       click("再咨询", "咨询")]}]})
    assert errors == []
    assert warnings == [
        "button 2 「天气」: key 'WEATHER' is not one the bot understands (咨询, 投诉, 举报, 查询进度, "
        "人工服务); a tap on it gets no answer",
        "button 3 「更多」 ▸ sub-button 2 「扫码」: the bot does not answer scancode_push events; "
        "a tap on it gets no answer",
        "button 3 「更多」 ▸ sub-button 3 「再咨询」: key '咨询' is also on button 1 「咨询」",
    ]


# --- pushed with the shared access token ---------------------------------------------------

async def test_the_menu_is_pushed_as_utf8_json_and_read_back(db):
    async with fake_wechat_api.serve({APP_ID: "s1"}) as (api, base):
        assert await menu.current(db, base, ACCOUNT) is None
        await menu.push(db, base, ACCOUNT, BUNDLED)
        assert api.menus == {APP_ID: BUNDLED}
        assert "投诉举报" in api.menu_bodies[-1] and "\\u" not in api.menu_bodies[-1]
        assert await menu.current(db, base, ACCOUNT) == BUNDLED
        assert api.tokens_issued == [f"TOKEN-1-{APP_ID}"]     # one token, kept in the database


async def test_a_token_wechat_rejects_is_renewed_once(db):
    async with fake_wechat_api.serve({APP_ID: "s1"}) as (api, base):
        await menu.current(db, base, ACCOUNT)
        api.reject_token_once = True
        await menu.push(db, base, ACCOUNT, BUNDLED)
        assert api.menus == {APP_ID: BUNDLED}
        assert api.tokens_issued == [f"TOKEN-1-{APP_ID}", f"TOKEN-2-{APP_ID}"]


async def test_wechats_refusal_is_explained(db):
    async with fake_wechat_api.serve({APP_ID: "s1"}) as (api, base), aiohttp.ClientSession() as http:
        wechat = WechatApi(base, http)
        token, _ = await wechat.fetch_token(APP_ID, "s1")
        with pytest.raises(ApiError) as refused:
            await wechat.create_menu(token, {"button": [click("咨询")] * 4})
        assert refused.value.errcode == 40016
        assert menu.explain(refused.value) == (
            "WeChat refused: the number of buttons is not valid (1 to 3) (errcode 40016)")
        with pytest.raises(menu.MenuError, match="no AppSecret"):
            await menu.push(db, base, Account("default", APP_ID, TOKEN), BUNDLED)
        assert api.menus == {}


# --- the command ---------------------------------------------------------------------------

async def govchat(db, tmp_path, base: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        GOVCHAT, "wechat", "menu", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": db.url, "GOVCHAT_VAR_DIR": str(tmp_path),
             "WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": "s1", "WECHAT_TOKEN": TOKEN,
             "WECHAT_API_BASE": base})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_the_command_pushes_shows_and_refuses_a_bad_file(db, tmp_path):
    async with fake_wechat_api.serve({APP_ID: "s1"}) as (api, base):
        code, out, err = await govchat(db, tmp_path, base, "--show")
        assert (code, out.strip()) == (0, "The account has no menu."), err

        code, out, err = await govchat(db, tmp_path, base, str(menu.DEFAULT_FILE))
        assert code == 0, err
        assert out.startswith("Menu pushed to 'default':\n咨询  [click] 咨询\n投诉举报\n")
        assert api.menus == {APP_ID: BUNDLED}

        code, out, err = await govchat(db, tmp_path, base, "--show")
        assert code == 0 and out.splitlines() == menu.describe(BUNDLED), err

        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps({"button": [click("咨询"), click("天气", "WEATHER"),
                                              click("人工服务"), click("投诉")]}, ensure_ascii=False))
        pushes = len(api.menu_bodies)
        code, out, err = await govchat(db, tmp_path, base, str(bad))
        assert code == 2
        assert "error: 4 buttons: WeChat allows at most 3" in err
        assert "warning: button 2 「天气」: key 'WEATHER' is not one the bot understands" in err
        assert len(api.menu_bodies) == pushes      # nothing sent

        code, _, err = await govchat(db, tmp_path, base, str(menu.DEFAULT_FILE), "--account", "nobody")
        assert code == 2 and "no WeChat account named 'nobody'" in err
