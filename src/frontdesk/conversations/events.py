"""Payloads of the conversation and message events (part of the webhook contract)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from frontdesk.conversations.schemas import ConversationOut, MessageOut


class ConversationEvent(BaseModel):
    conversation: ConversationOut
    changes: dict[str, Any] = {}
    actor_user_id: int | None = None


class MessageCreated(BaseModel):
    message: MessageOut
    conversation: ConversationOut


class ReplyCreated(MessageCreated):
    """`message.created` of an agent's reply or note."""

    # In an e-mail conversation the reply goes to the other participants too (Cc) unless
    # false; the outbound listener reads it.
    reply_all: bool = True


class ConversationRef(BaseModel):
    id: int


class ConversationRead(BaseModel):
    """`conversation.read`, private to `user_id` (core.events.PRIVATE_EVENTS): their read
    state of the conversation changed (read, or marked unread when `unread`)."""

    conversation: ConversationRef
    user_id: int
    unread: bool
    last_read_message_id: int | None
