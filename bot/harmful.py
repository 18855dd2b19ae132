"""Citizen messages that match the admin-managed `harmful` list (art. 24).

The gateway calls `flag_message` once the citizen's message is stored: a match becomes a
`message_flags` row that the staff inbox shows. Before the bot's replies are stored and sent the
gateway calls `mask_replies`, so no read-back (the case form's 请核对, a case's description, any
other echo of citizen text) repeats a listed term: each is replaced with ＊. Neither may cost the
citizen their answer: a failure here is logged and the message goes on.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from admin import wordlists
from admin.models import MessageFlag
from server.db import Database

log = logging.getLogger(__name__)


async def flag_message(db: Database, message_id: int | None, conversation_id: int,
                       text: str) -> list[str]:
    """Flag a stored citizen message that contains harmful terms; returns the terms found."""
    if message_id is None:
        return []
    try:
        terms = await wordlists.harmful_terms(db, text)
        if terms:
            async with db.session() as session, session.begin():
                session.add(MessageFlag(message_id=message_id, conversation_id=conversation_id,
                                        kind=wordlists.HARMFUL, terms=terms))
        return terms
    except IntegrityError:          # flagged before (a retry)
        return []
    except SQLAlchemyError:
        log.exception("could not check message %s against the harmful list", message_id)
        return []


async def mask_replies(db: Database, replies: list) -> None:
    """Mask harmful terms in the bot's replies (their `text`, and option titles), in place."""
    try:
        matcher = await wordlists.matcher(db, wordlists.HARMFUL)
    except SQLAlchemyError:
        log.exception("could not load the harmful list; replies sent unmasked")
        return
    if matcher.pattern is None:
        return
    for reply in replies:
        reply.text = matcher.mask(reply.text)
        for option in reply.options or []:
            if isinstance(option, dict) and isinstance(option.get("title"), str):
                option["title"] = matcher.mask(option["title"])


async def flags_of(db: Database, conversation_id: int) -> dict[int, list[str]]:
    """message id → the terms it was flagged for, in one conversation."""
    async with db.session() as session:
        rows = await session.execute(select(MessageFlag.message_id, MessageFlag.terms)
                                     .where(MessageFlag.conversation_id == conversation_id))
        return {message_id: list(terms or []) for message_id, terms in rows}


async def flagged_conversations(db: Database, conversation_ids: list[int]) -> set[int]:
    if not conversation_ids:
        return set()
    async with db.session() as session:
        return set(await session.scalars(
            select(MessageFlag.conversation_id).where(
                MessageFlag.conversation_id.in_(conversation_ids)).distinct()))
