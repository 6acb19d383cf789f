"""The e-mail channel adapter: the only code that knows what an e-mail looks like.

This package's foundation is pure (no I/O): `parse_email` turns raw bytes into a
`ParsedEmail`; `quotes.split_reply` separates new text from history; `headers` has the
outbound helpers (header-injection guard, safe file names, HMAC-signed Message-IDs, reply
addresses and subject tokens); `threads.thread_hints` reads the signed tokens of a parsed
mail. The SMTP/IMAP servers and intake wiring build on these.
"""

from frontdesk.channels.email.automatic import AutomaticKind
from frontdesk.channels.email.bounces import Bounce, BounceRecipient
from frontdesk.channels.email.parsing import (
    DEFAULT_MAX_ATTACHMENT_BYTES,
    Attachment,
    EmailAddress,
    ParsedEmail,
    UnparseableEmail,
    parse_email,
)
from frontdesk.channels.email.quotes import split_reply

__all__ = [
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "Attachment",
    "AutomaticKind",
    "Bounce",
    "BounceRecipient",
    "EmailAddress",
    "ParsedEmail",
    "UnparseableEmail",
    "parse_email",
    "split_reply",
]
