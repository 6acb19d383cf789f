"""Which conversation a parsed mail says it belongs to, from the tokens we signed.

Pure: the caller then checks in its database, in this order (issue 6, threading):
1. `thread_ids` (In-Reply-To, then References) against stored external ids — our own
   outbound Message-IDs and earlier inbound ones; `signed_conversation_ids` are the ones
   among them that we issued and that verify, usable even when the stored message is gone;
2. the plus-addressed reply address (`reply_address_conversation_id`);
3. the subject token (`subject_conversation_id`) — unsigned, so only for a sender who is
   already a participant of that conversation;
4. else a new conversation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from frontdesk.channels.email.headers import (
    parse_reply_address,
    parse_subject_token,
    verify_message_id,
)
from frontdesk.channels.email.parsing import ParsedEmail


@dataclass(frozen=True, slots=True)
class ThreadHints:
    thread_ids: tuple[str, ...]
    signed_conversation_ids: tuple[int, ...]
    reply_address_conversation_id: int | None
    subject_conversation_id: int | None

    @property
    def best_signed(self) -> int | None:
        """The conversation our own signed tokens point at, if any (Message-ID first)."""
        if self.signed_conversation_ids:
            return self.signed_conversation_ids[0]
        return self.reply_address_conversation_id


def thread_hints(
    parsed: ParsedEmail,
    *,
    secret: str | bytes,
    recipients: Iterable[str] = (),
    domain: str | None = None,
) -> ThreadHints:
    """`recipients`: the SMTP envelope recipients when known (else To/Cc/Delivered-To)."""
    signed: list[int] = []
    for mid in parsed.thread_ids:
        cid = verify_message_id(mid, secret, domain=domain)
        if cid is not None and cid not in signed:
            signed.append(cid)
    candidates = [*recipients, *parsed.delivered_to,
                  *(a.address for a in (*parsed.to, *parsed.cc))]
    by_address: int | None = None
    for address in candidates:
        found = parse_reply_address(address, secret)
        if found is not None:
            by_address = found[1]
            break
    return ThreadHints(
        thread_ids=parsed.thread_ids,
        signed_conversation_ids=tuple(signed),
        reply_address_conversation_id=by_address,
        subject_conversation_id=parse_subject_token(parsed.subject),
    )
