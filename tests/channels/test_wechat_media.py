"""Evidence images are fetched from WeChat (which keeps them 3 days) and kept with the case."""
from datetime import timedelta

import aiohttp
from sqlalchemy import select

from bot import api as bot_api
from casework import api as casework
from casework.models import CaseAttachment
from channels.wechat.api_client import WechatApi
from channels.wechat.media import MediaFetcher
from server.config import Config
from server.db import utcnow
from tests.channels import fake_wechat_api

APP_ID, SECRET = "wxmedia0000000001", "mediaSecret"
JPEG = b"\xff\xd8\xff\xe0" + b"evidence" * 100


async def complaint_with(db, *media_ids: str, channel: str = "wechat") -> int:
    conv = await bot_api.open_conversation(db, channel, "default", "oMediaCitizen")
    done = await casework.submit_case(db, casework.Intake(
        case_type="complaint", description="人民路菜场门口占道经营", conversation_id=conv.id,
        evidence=[casework.Evidence(kind="image", media_id=m, url=f"http://mmbiz/{m}.jpg")
                  for m in media_ids]), now=utcnow())
    return done.case.id


async def attachments(db) -> dict[str, CaseAttachment]:
    async with db.session() as session:
        return {a.media_id: a for a in await session.scalars(select(CaseAttachment))}


async def fetch_round(db, tmp_path, base: str) -> int:
    config = Config(database_url=db.url, var_dir=tmp_path, embedder="none", rasa_manage=False,
                    wechat_app_id=APP_ID, wechat_app_secret=SECRET, wechat_token="t",
                    wechat_api_base=base)
    async with aiohttp.ClientSession() as http:
        return await MediaFetcher(db, config, WechatApi(base, http)).run_once()


async def test_an_evidence_image_is_kept_and_a_lost_one_is_recorded(db, tmp_path):
    case_id = await complaint_with(db, "M-OK", "M-EXPIRED")
    async with fake_wechat_api.serve({APP_ID: SECRET}) as (api, base):
        api.media["M-OK"] = (JPEG, "image/jpeg")
        api.reject_token_once = True            # expired on first use: refreshed, then fetched
        assert await fetch_round(db, tmp_path, base) == 1
        calls = api.media_calls
        assert await fetch_round(db, tmp_path, base) == 0
        assert api.media_calls == calls         # nothing fetched twice, nothing lost retried
    kept, lost = (await attachments(db))["M-OK"], (await attachments(db))["M-EXPIRED"]
    path = tmp_path / "media" / kept.stored_path
    assert path.read_bytes() == JPEG and path.parent.name == str(case_id) and path.suffix == ".jpg"
    assert (kept.content_type, kept.size) == ("image/jpeg", len(JPEG))
    assert lost.stored_path is None and "40007" in lost.fetch_error


async def test_wechat_down_is_tried_again_later_not_given_up(db, tmp_path):
    await complaint_with(db, "M-LATER")
    async with fake_wechat_api.serve({APP_ID: SECRET}) as (api, base):
        api.media["M-LATER"] = (JPEG, "image/jpeg")
        api.http_500 = 1
        assert await fetch_round(db, tmp_path, base) == 0
        item = (await attachments(db))["M-LATER"]
        assert item.fetch_attempts == 1 and item.fetch_error is None
        # The next try waits a minute, then succeeds.
        async with db.session() as session:
            assert await casework.evidence_to_fetch(session, utcnow()) == []
            assert len(await casework.evidence_to_fetch(session, utcnow() + timedelta(minutes=2))) == 1


async def test_media_of_a_web_chat_case_is_not_fetched_from_wechat(db, tmp_path):
    await complaint_with(db, "M-WEB", channel="webchat")
    async with fake_wechat_api.serve({APP_ID: SECRET}) as (api, base):
        assert await fetch_round(db, tmp_path, base) == 0
        assert api.media_calls == 0
    assert "not a WeChat conversation" in (await attachments(db))["M-WEB"].fetch_error
