"""The inbox's text search: substrings in every script, case-insensitive where the script has
case, on both backends and both of its query shapes; on PostgreSQL the trigram index of
migration 0009 answers it."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text

from frontdesk.conversations import service
from frontdesk.conversations.models import Message
from frontdesk.runtime import Runtime
from tests.factories import Factory, Member, Workspace, unique

MESSAGES = {
    "ru": "Мой ЗАКАЗ потерялся на почте, помогите",
    "zh": "我的快递还没有到，请帮忙查一下",
    "ar": "لم يصل طلبي بعد، أرجو المساعدة",
    "en": "The parcel arrived BROKEN again",
}

# (term, the message it finds): mixed case where the script has case.
FINDS = [
    ("заказ", "ru"), ("ПОТЕРЯЛСЯ", "ru"), ("На ПоЧтЕ", "ru"),
    ("快递", "zh"),  # two characters: shorter than a trigram, the index cannot help
    ("还没有到", "zh"),
    ("يصل طلبي", "ar"), ("المساعدة", "ar"),
    ("broken", "en"), ("PARCEL ARR", "en"),
]


async def _ids(api: httpx.AsyncClient, who: Member, q: str) -> list[int]:
    r = await api.get("/api/v1/conversations", params={"q": q}, headers=who.headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


async def _workspace_in_four_scripts(factory: Factory) -> tuple[Workspace, dict[str, int]]:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    ids = {}
    for script, content in MESSAGES.items():
        made = await factory.incoming(ws, inbox, content=content,
                                      identifier=unique("cust"), name="")
        ids[script] = made["conversation_id"]
    return ws, ids


# 500: the matches are few, read from the indexes; 0: every term counts as common, so the
# search walks the view in order and tests each conversation.
@pytest.mark.parametrize("few_matches", [service.FEW_TEXT_MATCHES, 0])
async def test_every_script_is_found_in_any_case(
    few_matches: int, api: httpx.AsyncClient, factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "FEW_TEXT_MATCHES", few_matches)
    ws, ids = await _workspace_in_four_scripts(factory)
    for term, script in FINDS:
        assert await _ids(api, ws.admin, term) == [ids[script]], term
    assert await _ids(api, ws.admin, "потерялась") == []
    assert await _ids(api, ws.admin, "快递到") == []


@pytest.mark.parametrize("few_matches", [service.FEW_TEXT_MATCHES, 0])
async def test_contact_names_and_subjects_in_other_scripts_are_found(
    few_matches: int, api: httpx.AsyncClient, factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "FEW_TEXT_MATCHES", few_matches)
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    olga = await factory.incoming(ws, inbox, content="hi", identifier=unique("c"),
                                  name="Ольга Петрова", email="olga@example.test")
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers,
                       json={"external_id": unique("ext"), "subject": "退款申请 第二次",
                             "contact": {"identifier": unique("c")}, "content": "hi"})
    assert r.status_code in (200, 201), r.text
    assert await _ids(api, ws.admin, "ольга петр") == [olga["conversation_id"]]
    assert await _ids(api, ws.admin, "OLGA@EXAMPLE") == [olga["conversation_id"]]
    assert await _ids(api, ws.admin, "退款申请") == [r.json()["conversation_id"]]


async def test_another_workspace_finds_nothing_of_it(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    await _workspace_in_four_scripts(factory)
    other = await factory.api_workspace()
    for term, _script in FINDS:
        assert await _ids(api, other.admin, term) == [], term


async def test_postgresql_answers_from_the_trigram_index(
    backend: str, factory: Factory, runtime: Runtime
) -> None:
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite has no trigram index: its search is a scan")
    ws, ids = await _workspace_in_four_scripts(factory)
    copied = [c.name for c in Message.__table__.columns
              if c.name not in ("id", "content", "external_id")]
    async with runtime.sessions() as session:
        # The trigram index pays off when the workspace's messages are many, and a plan
        # follows from the statistics: 5,000 more messages (rolled back with the session)
        # and a fresh ANALYZE make this workspace look like one where it matters.
        await session.execute(text(
            f"INSERT INTO messages ({', '.join(copied)}, content) "
            f"SELECT {', '.join(copied)}, 'order number ' || n FROM messages, "
            "generate_series(1, 5000) AS n WHERE id = (SELECT min(id) FROM messages "
            "WHERE workspace_id = :ws)"), {"ws": ws.id})
        # New entries wait in the index's pending list (fastupdate) until VACUUM merges
        # them; merge now, as autovacuum would have, so the plan is the settled one.
        await session.execute(text("SELECT gin_clean_pending_list('ix_messages_content_trgm')"))
        await session.execute(text("ANALYZE messages"))
        for term, script in [("ПОТЕРЯЛСЯ", "ru"), ("还没有到", "zh"), ("يصل طلبي", "ar"),
                             ("broken", "en")]:
            matches = service._text_matches(ws.id, term)
            sql = str(matches.compile(dialect=session.get_bind().dialect,
                                      compile_kwargs={"literal_binds": True}))
            plan = "\n".join((await session.execute(text(f"EXPLAIN {sql}"))).scalars())
            assert "ix_messages_content_trgm" in plan, (term, plan)
            # Through the index, with the ILIKE rechecking: the same answer as the scan.
            found = set((await session.execute(matches)).scalars())
            assert found == {ids[script]}, term
