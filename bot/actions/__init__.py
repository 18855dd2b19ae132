"""Rasa custom actions, served in-process by rasa-sdk's executor.

Actions are thin (house convention 8): read the tracker, call one package API, utter, return
events. They get their services through `Services` rather than module globals.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor

from casework.routing import Router
from knowledge_base.api import KnowledgeBase
from server.db import Database


@dataclass(frozen=True)
class Services:
    db: Database
    kb: KnowledgeBase
    router: Router | None = None                  # None: every case goes to the dispatcher
    deadline_days: Mapping[str, int] | None = None   # CASE_DEADLINE_DAYS


class ServiceAction(Action):
    """An action that calls the database or the Q&A base through `Services`."""

    def __init__(self, services: Services) -> None:
        self.services = services


def utter(dispatcher, kind: str, text: str, **fields) -> None:
    """Send one reply with its kind; the gateway turns this into a `Reply`."""
    dispatcher.utter_message(json_message={"kind": kind, "text": text, **fields})


def conversation_id(tracker) -> int | None:
    """The gateway uses the conversation's id as Rasa's sender id."""
    try:
        return int(tracker.sender_id)
    except (TypeError, ValueError):
        return None


def all_actions(services: Services) -> list[Action]:
    from bot.actions.cases import (ActionAskCaseConfirm, ActionAskCaseContact, ActionQueryCase,
                                   ActionReceiveMedia, ActionStartCase, ActionSubmitCase,
                                   ValidateCaseForm)
    from bot.actions.faq import ActionAnswerQuestion
    from bot.actions.service import ActionHandoff, ActionRate
    from bot.actions.welcome import ActionGreet

    return [
        ActionAnswerQuestion(services), ActionStartCase(services), ValidateCaseForm(services),
        ActionAskCaseContact(), ActionAskCaseConfirm(services), ActionSubmitCase(services),
        ActionReceiveMedia(services),
        ActionQueryCase(services), ActionHandoff(services), ActionRate(services),
        ActionGreet(services),
    ]


def make_executor(services: Services) -> ActionExecutor:
    executor = ActionExecutor()
    for action in all_actions(services):
        executor.register_action(action)
    return executor
