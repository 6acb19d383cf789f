"""Normalising the ways a contact is recognised, and matching them on intake."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection

from frontdesk.contacts.models import Contact, ContactIdentity, IdentityKind
from frontdesk.core.writer import InsertRows, MatchAny, Prepared
from frontdesk.db.base import utcnow


# Both normalisers are pure and slow (~50-100 µs: a full syntax check, a phone-number
# parse); intake sees the same senders again and again, so the answers are remembered.
@lru_cache(maxsize=65536)
def normalize_email(raw: str) -> str:
    """Lower-cased, syntax-checked address; raises ValueError with a reason."""
    try:
        return validate_email(raw.strip(), check_deliverability=False, globally_deliverable=False,
                              test_environment=True).normalized.lower()
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc


@lru_cache(maxsize=65536)
def normalize_phone(raw: str) -> str:
    """E.164 (+4915112345678); the number must carry its country code."""
    try:
        number = phonenumbers.parse(raw.strip(), None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number in international form: {exc}") from exc
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


@dataclass(frozen=True)
class Identity:
    kind: IdentityKind
    value: str
    scope: str = ""


@dataclass
class ContactClaim:
    """What a channel knows about the sender; identities in order of trust."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    external_ids: list[Identity] = field(default_factory=list)

    def identities(self) -> list[Identity]:
        found = list(self.external_ids)
        if self.email:
            found.append(Identity(IdentityKind.EMAIL, self.email))
        if self.phone:
            found.append(Identity(IdentityKind.PHONE, self.phone))
        return found


@dataclass(frozen=True)
class ResolvedContact:
    id: int
    created: bool
    name: str
    email: str | None
    phone: str | None


# Intake runs these on the group-commit writer's connection for every batch of inbound
# messages, so they are compiled once (core.writer). The lookup returns each identity's
# owner with its columns: a whole batch of senders costs one statement.
_OWNERS = MatchAny(
    lambda _dialect: select(
        ContactIdentity.workspace_id, ContactIdentity.kind, ContactIdentity.scope,
        ContactIdentity.value, ContactIdentity.contact_id, Contact.name, Contact.email,
        Contact.phone,
    ).join(Contact, Contact.id == ContactIdentity.contact_id),
    lambda _dialect: (ContactIdentity.workspace_id, ContactIdentity.kind, ContactIdentity.scope,
                      ContactIdentity.value),
)
_INSERT_CONTACT = Prepared(
    insert(Contact)
    .values({c: bindparam(c) for c in ("workspace_id", "name", "email", "phone",
                                       "custom_attributes", "created_at", "updated_at")})
    .returning(Contact.id)
)
_INSERT_IDENTITIES = InsertRows(
    ContactIdentity.__table__,
    ("workspace_id", "contact_id", "kind", "scope", "value", "created_at"),
)


def resolve_contact_sync(
    conn: Connection, workspace_id: int, claim: ContactClaim, now: datetime | None = None
) -> ResolvedContact:
    """Find the contact owning any of the claimed identities (most trusted first) or create
    one; record the identities it did not have yet. An identity owned by another contact
    stays with its owner: merging two people is an agent's decision, not intake's."""
    return resolve_contacts_sync(conn, [(workspace_id, claim)], now or utcnow())[0]


def resolve_contacts_sync(
    conn: Connection, claims: Sequence[tuple[int, ContactClaim]], now: datetime
) -> list[ResolvedContact]:
    """`resolve_contact_sync` for many (workspace id, claim) pairs, in order, as if one
    after the other: a sender created for the first claim is found by a later one. The
    identities of all claims are looked up with one statement."""
    wanted = list(dict.fromkeys((ws, i) for ws, claim in claims for i in claim.identities()))
    # (workspace, identity) -> its owner's id; and each known contact's name, email, phone
    owners: dict[tuple[int, Identity], int] = {}
    details: dict[int, tuple[str, str | None, str | None]] = {}
    keys = [(ws, identity.kind.value, identity.scope, identity.value) for ws, identity in wanted]
    for ws, kind, scope, value, contact_id, name, email, phone in _OWNERS.rows(conn, keys):
        owners[(ws, Identity(IdentityKind(kind), value, scope))] = contact_id
        details[contact_id] = (name, email, phone)

    resolved: list[ResolvedContact] = []
    new_identities: list[dict[str, Any]] = []
    for ws, claim in claims:
        identities = claim.identities()
        contact_id = next((owners[(ws, i)] for i in identities if (ws, i) in owners), None)
        if contact_id is None:
            name = claim.name or claim.email or claim.phone or ""
            contact_id = _INSERT_CONTACT.scalar(conn, {
                "workspace_id": ws, "name": name, "email": claim.email, "phone": claim.phone,
                "custom_attributes": {}, "created_at": now, "updated_at": now,
            })
            created = True
            email, phone = claim.email, claim.phone
        else:
            created = False
            name, email, phone = details[contact_id]
            fill = {}
            if not name and claim.name:
                fill["name"] = name = claim.name
            # The address and number become the preferred ones unless another contact
            # owns them.
            if (email is None and claim.email
                    and (ws, Identity(IdentityKind.EMAIL, claim.email)) not in owners):
                fill["email"] = email = claim.email
            if (phone is None and claim.phone
                    and (ws, Identity(IdentityKind.PHONE, claim.phone)) not in owners):
                fill["phone"] = phone = claim.phone
            if fill:  # rare: the plain Core path is fine here
                conn.execute(update(Contact).where(Contact.id == contact_id)
                             .values(**fill, updated_at=now))
        details[contact_id] = (name, email, phone)
        for identity in identities:
            if (ws, identity) not in owners:
                owners[(ws, identity)] = contact_id
                new_identities.append({
                    "workspace_id": ws, "contact_id": contact_id, "kind": identity.kind.value,
                    "scope": identity.scope, "value": identity.value, "created_at": now,
                })
        resolved.append(ResolvedContact(contact_id, created, name, email, phone))
    _INSERT_IDENTITIES.run(conn, new_identities)
    return resolved
