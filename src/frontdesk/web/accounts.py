"""Account actions the web UI needs: sign-in check, workspaces of a person, password and
preference changes.

These are accounts' business and belong in accounts/service.py; they live here while that
module is being reworked elsewhere, written the same way (verb names, a session and the
acting user, no commit) so that moving them is a cut and paste.
"""

from __future__ import annotations

import asyncio
from functools import cache
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.accounts.models import Membership, Role, User, Workspace
from frontdesk.accounts.service import hash_password, verify_password
from frontdesk.core.activity import record_activity
from frontdesk.core.errors import InvalidInput
from frontdesk.web import i18n

MIN_PASSWORD_LENGTH = 8


@cache
def _dummy_hash() -> str:
    """Verified when the e-mail is unknown, so that a wrong address takes as long to refuse
    as a wrong password and the timing does not tell which e-mails have accounts."""
    return hash_password("frontdesk-timing-equalizer")


async def _verify(password_hash: str | None, password: str) -> bool:
    # Argon2 takes most of a second of CPU here by design; in a thread (argon2-cffi releases
    # the GIL) so one sign-in does not freeze every socket and request of the process.
    return await asyncio.to_thread(verify_password, password_hash, password)


async def authenticate(session: AsyncSession, email: str, password: str) -> User | None:
    email = email.strip().lower()
    user = (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()
    if user is None:
        await asyncio.to_thread(lambda: verify_password(_dummy_hash(), password))
        return None
    return user if await _verify(user.password_hash, password) else None


async def get_user(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)


async def list_user_workspaces(session: AsyncSession, user_id: int) -> list[tuple[Workspace, Role]]:
    rows = await session.execute(
        select(Workspace, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id)
        .order_by(Workspace.name)
    )
    return [(ws, Role(role)) for ws, role in rows.tuples().all()]


async def change_password(
    session: AsyncSession, user: User, workspace_id: int, *, current: str, new: str
) -> None:
    """Raises InvalidInput with a message for the person (English msgid, translated when
    shown) when the current password is wrong or the new one is too short."""
    if not await _verify(user.password_hash, current):
        raise InvalidInput(i18n.N_("The current password is not right."), code="wrong_password")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(i18n.N_("The new password needs at least 8 characters."),
                           code="password_too_short")
    user.password_hash = await asyncio.to_thread(hash_password, new)
    record_activity(session, workspace_id=workspace_id, actor_type="user", actor_id=user.id,
                    action="user.password_changed", subject_type="user", subject_id=user.id,
                    changes={})
    await session.flush()


async def set_locale(session: AsyncSession, user: User, locale: str) -> None:
    if locale not in i18n.LOCALES:
        raise InvalidInput(f"'{locale}' is not a language Frontdesk speaks", code="bad_locale")
    user.locale = locale
    await session.flush()


def known_time_zones() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


async def set_time_zone(session: AsyncSession, user: User, time_zone: str) -> None:
    if time_zone not in available_timezones():
        raise InvalidInput(f"'{time_zone}' is not a time zone", code="bad_time_zone")
    user.time_zone = time_zone
    await session.flush()


async def set_notification_preferences(
    session: AsyncSession, user: User, *, assignments: bool, sound: bool
) -> None:
    user.notify_assignments = assignments
    user.notify_sound = sound
    await session.flush()
