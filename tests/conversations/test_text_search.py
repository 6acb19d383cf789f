"""The inbox's text search: substrings in every script, case-insensitive where the script has
case, of every length, on both backends and both of its query shapes; on PostgreSQL the
trigram index of migration 0009 answers terms of three characters or more and the
short-term index of migrations 0016 and 0017 the shorter ones."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.conversations import service
from frontdesk.conversations.models import Conversation, Message
from frontdesk.db import search
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
    ("快递", "zh"),  # two characters: shorter than a trigram
    ("还没有到", "zh"),
    ("يصل طلبي", "ar"), ("المساعدة", "ar"),
    ("broken", "en"), ("PARCEL ARR", "en"),
]


# (term, the messages it finds) for terms of one and two characters, and three for contrast:
# inside words, across them, in other case, punctuation, and terms nobody wrote.
SHORT_FINDS: list[tuple[str, set[str]]] = [
    ("з", {"ru"}), ("Ка", {"ru"}), ("ЗаКа", {"ru"}), ("ыж", set()), ("Ж", set()),
    ("快", {"zh"}), ("快递", {"zh"}), ("递还", {"zh"}), ("查一下", {"zh"}), ("，", {"zh"}),
    ("鲸", set()), ("鲸鱼", set()),
    ("ع", {"ar"}), ("طل", {"ar"}), ("بعد", {"ar"}), ("،", {"ar"}), ("ظ", set()), ("ظط", set()),
    ("k", {"en"}), ("Ok", {"en"}), ("rce", {"en"}), ("E", {"en"}), ("q", set()),
    ("xq", set()), ("%", set()), ("_", set()), ("a_", set()),
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
async def test_terms_of_one_and_two_characters_find_exactly_what_contains_them(
    few_matches: int, api: httpx.AsyncClient, factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "FEW_TEXT_MATCHES", few_matches)
    ws, ids = await _workspace_in_four_scripts(factory)
    for term, scripts in SHORT_FINDS:
        assert set(await _ids(api, ws.admin, term)) == {ids[s] for s in scripts}, term


async def _olga_and_a_chinese_subject(
    api: httpx.AsyncClient, factory: Factory, subject: str
) -> tuple[Workspace, int, int]:
    """A workspace with Olga's conversation (Cyrillic name, e-mail, phone) and another
    customer's under a Chinese `subject`: the workspace and the two conversations' ids."""
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    olga = await factory.incoming(ws, inbox, content="hi", identifier=unique("c"),
                                  name="Ольга Петрова", email="olga@example.test",
                                  phone="+7 912 345-67-89")
    r = await api.post(f"/api/v1/inboxes/{inbox}/incoming", headers=ws.admin.headers,
                       json={"external_id": unique("ext"), "subject": subject,
                             "contact": {"identifier": unique("c")}, "content": "hi"})
    assert r.status_code in (200, 201), r.text
    return ws, olga["conversation_id"], r.json()["conversation_id"]


@pytest.mark.parametrize("few_matches", [service.FEW_TEXT_MATCHES, 0])
async def test_short_terms_find_contact_names_emails_phones_and_subjects(
    few_matches: int, api: httpx.AsyncClient, factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "FEW_TEXT_MATCHES", few_matches)
    ws, olga, subject = await _olga_and_a_chinese_subject(api, factory, "发票 第二次")
    assert await _ids(api, ws.admin, "ЛЬ") == [olga]
    assert await _ids(api, ws.admin, "A@") == [olga]
    assert await _ids(api, ws.admin, "91") == [olga]
    assert await _ids(api, ws.admin, "发票") == [subject]
    assert await _ids(api, ws.admin, "票") == [subject]


@pytest.mark.parametrize("few_matches", [service.FEW_TEXT_MATCHES, 0])
async def test_contact_names_and_subjects_in_other_scripts_are_found(
    few_matches: int, api: httpx.AsyncClient, factory: Factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "FEW_TEXT_MATCHES", few_matches)
    ws, olga, subject = await _olga_and_a_chinese_subject(api, factory, "退款申请 第二次")
    assert await _ids(api, ws.admin, "ольга петр") == [olga]
    assert await _ids(api, ws.admin, "OLGA@EXAMPLE") == [olga]
    assert await _ids(api, ws.admin, "退款申请") == [subject]


async def test_another_workspace_finds_nothing_of_it(
    api: httpx.AsyncClient, factory: Factory
) -> None:
    await _workspace_in_four_scripts(factory)
    other = await factory.api_workspace()
    for term, _script in FINDS:
        assert await _ids(api, other.admin, term) == [], term


async def _make_it_a_big_workspace(session: AsyncSession, workspace_id: int, index: str) -> None:
    """Make the workspace look, to the planner, like one where a text index pays off: its
    messages many, the statistics fresh, the index settled. All of it rolls back with the
    session (ALTER TABLE and ANALYZE are transactional in PostgreSQL)."""
    copied = [c.name for c in Message.__table__.columns
              if c.name not in ("id", "content", "external_id")]
    await session.execute(text(
        f"INSERT INTO messages ({', '.join(copied)}, content) "
        f"SELECT {', '.join(copied)}, 'order number ' || n FROM messages, "
        "generate_series(1, 5000) AS n WHERE id = (SELECT min(id) FROM messages "
        "WHERE workspace_id = :ws)"), {"ws": workspace_id})
    # New entries wait in the index's pending list (fastupdate) until VACUUM merges them;
    # merge now, as autovacuum would have, so the plan is the settled one.
    await session.execute(text(f"SELECT gin_clean_pending_list('{index}')"))
    # Other tests leave many small workspaces in this database, which would make a generic
    # plan (blind to the workspace) expect a handful of rows per workspace and walk the
    # workspace's btree instead: the statistics say one workspace, as in the benchmark.
    await session.execute(text(
        "ALTER TABLE messages ALTER COLUMN workspace_id SET (n_distinct = 1)"))
    await session.execute(text("ANALYZE messages"))


async def test_postgresql_answers_from_the_trigram_index(
    backend: str, factory: Factory, runtime: Runtime
) -> None:
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite has no trigram index: its search is a scan")
    ws, ids = await _workspace_in_four_scripts(factory)
    async with runtime.sessions() as session:
        await _make_it_a_big_workspace(session, ws.id, "ix_messages_content_trgm")
        for term, script in [("ПОТЕРЯЛСЯ", "ru"), ("还没有到", "zh"), ("يصل طلبي", "ar"),
                             ("broken", "en")]:
            matches = service._text_matches(ws.id, term, short_term_indexes=True)
            sql = str(matches.compile(dialect=session.get_bind().dialect,
                                      compile_kwargs={"literal_binds": True}))
            plan = "\n".join((await session.execute(text(f"EXPLAIN {sql}"))).scalars())
            assert "ix_messages_content_trgm" in plan, (term, plan)
            # Through the index, with the ILIKE rechecking: the same answer as the scan.
            found = set((await session.execute(matches)).scalars())
            assert found == {ids[script]}, term


async def test_the_pairs_of_a_text_answer_every_short_substring_in_any_case(
    backend: str, runtime: Runtime
) -> None:
    """What the short-term index can never do: miss a row. Every one- and two-character
    substring of a text, in either case, is answered by the text's pairs, whatever the
    text's length and scripts (the function pairs odd and even positions separately), the
    control characters it drops, the quotes and backslashes a tsquery must escape, and a
    text too long to index."""
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite has no short-term index")
    alphabet = "aZ Жж退款ع\n-'\\:*&|!İ\x01\x02\x03"
    async with runtime.sessions() as session:
        lost = (await session.execute(text(
            "WITH texts AS (SELECT n, (SELECT string_agg(substr(:alphabet, "
            "  1 + floor(random() * char_length(:alphabet))::int, 1), '') "
            "  FROM generate_series(1, 1 + n % 23) WHERE n > 0) AS t "
            "  FROM generate_series(1, 3000) AS n), "
            "terms AS (SELECT t, substr(t, i, len) AS term FROM texts, "
            "  generate_series(1, char_length(t)) AS i, (VALUES (1), (2)) AS l(len)) "
            "SELECT t, s FROM terms, LATERAL (VALUES (upper(term)), (lower(term)), (term)) AS c(s) "
            "WHERE translate(s, :unpaired, '') = s "
            "AND NOT frontdesk_short_pairs(t) @@ frontdesk_short_query(s) LIMIT 5"),
            {"alphabet": alphabet, "unpaired": "".join(sorted(search.UNPAIRED))})).all()
        # Past 65,536 characters a text is not paired but marked: it is always a candidate.
        long_text = "退" * 70_000 + "zq"
        found = (await session.execute(text(
            "SELECT frontdesk_short_pairs(:t) @@ frontdesk_short_query('zq'), "
            "frontdesk_short_pairs(:t) @@ frontdesk_short_query('x')"), {"t": long_text})).one()
    assert lost == []
    assert tuple(found) == (True, True)


def test_terms_with_the_characters_pairing_drops_are_not_short_terms() -> None:
    assert search.is_short_term("退款") and search.is_short_term("a")
    assert not search.is_short_term("")
    assert not any(search.is_short_term(f"a{c}") for c in search.UNPAIRED)


async def _plan(session: AsyncSession, query: Any, *, generic: bool) -> str:
    """EXPLAIN of `query` as the application sends it through asyncpg: SQL with $n
    placeholders, the values bound apart. A custom plan (the planner sees the values, as on
    a statement's first executions) or with `generic` the plan PostgreSQL may cache for a
    prepared statement after five, made without the values."""
    compiled = query.compile(dialect=session.get_bind().dialect)
    values = [compiled.params[name] for name in compiled.positiontup]
    connection = await (await session.connection()).get_raw_connection()
    driver = connection.driver_connection
    if not generic:
        rows = await driver.fetch(f"EXPLAIN {compiled.string}", *values)
        return "\n".join(row[0] for row in rows)
    # EXECUTE takes no bound parameters: its arguments are literals, quoted by the server.
    literals = [await driver.fetchval("SELECT quote_literal($1::text)", str(value))
                for value in values]
    await driver.execute(f"PREPARE text_probe AS {compiled.string}")
    await driver.execute("SET plan_cache_mode = force_generic_plan")
    try:
        rows = await driver.fetch(f"EXPLAIN EXECUTE text_probe({', '.join(literals)})")
    finally:
        await driver.execute("RESET plan_cache_mode")
        await driver.execute("DEALLOCATE text_probe")
    return "\n".join(row[0] for row in rows)


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
async def test_postgresql_answers_short_terms_from_the_short_term_index(
    generic: bool, backend: str, factory: Factory, runtime: Runtime
) -> None:
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite has no short-term index: its search is a scan")
    ws, ids = await _workspace_in_four_scripts(factory)
    async with runtime.sessions() as session:
        await _make_it_a_big_workspace(session, ws.id, "ix_messages_content_short")
        for term, script in [("Ка", "ru"), ("з", "ru"), ("快递", "zh"), ("快", "zh"),
                             ("طل", "ar"), ("ع", "ar"), ("Ok", "en"), ("k", "en")]:
            matches = service._text_matches(ws.id, term, short_term_indexes=True)
            plan = await _plan(session, matches, generic=generic)
            assert "ix_messages_content_short" in plan, (term, plan)
            # Never the trigram index as well: a short pattern matches all of it (a generic
            # plan, blind to the pattern, would AND the two: 1 s at 1M messages).
            assert "_trgm" not in plan, (term, plan)
            # Through the index, with the ILIKE rechecking: the same answer as the scan.
            found = set((await session.execute(matches)).scalars())
            assert found == {ids[script]}, term


async def test_no_trigram_index_can_serve_a_short_term_even_in_a_generic_plan(
    backend: str, factory: Factory, runtime: Runtime
) -> None:
    """A generic plan does not see that the pattern is short, and at 1M messages PostgreSQL
    chose to AND the trigram index (which a short pattern matches in full: 0.9 s) with the
    short-term one. The ILIKE of a short term must give the trigram index nothing to read:
    without the short-term index, with the table scan disabled, the plan still reads none."""
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite has no trigram index")
    await _workspace_in_four_scripts(factory)
    async with runtime.sessions() as session:
        # Dropped in the session's transaction, rolled back with it.
        await session.execute(text("DROP INDEX ix_messages_content_short"))
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        for term in ("Ка", "快递", "k"):
            condition = service._contains(Message.content, term, short_term_index=True)
            plan = await _plan(session, select(Message.id).where(condition), generic=True)
            assert "_trgm" not in plan, (term, plan)
        # A longer term's condition, in the same plan, does read it: the check can fail.
        condition = service._contains(Message.content, "快递还", short_term_index=False)
        plan = await _plan(session, select(Message.id).where(condition), generic=True)
        assert "ix_messages_content_trgm" in plan, plan


async def test_a_common_term_is_tested_on_each_conversation_walked_never_hashed(
    backend: str, factory: Factory, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """For a common term the inbox walks its view in order and tests each conversation.
    PostgreSQL may instead hash every matching message or contact first (an EXISTS turned
    into a hashed subplan): 0.8 s at 1M messages for a term in 4 % of them. OFFSET 0 in
    the EXISTS rules that out, whatever the statistics."""
    if not backend.startswith("postgresql"):
        pytest.skip("SQLite plans its own way")
    monkeypatch.setattr(service, "FEW_TEXT_MATCHES", 0)
    ws, ids = await _workspace_in_four_scripts(factory)
    async with runtime.sessions() as session:
        for term, script in (("快递", "zh"), ("broken", "en"), ("з", "ru")):
            condition = await service._text_filter(session, ws.id, term)
            query = (select(Conversation.id).where(Conversation.workspace_id == ws.id, condition)
                     .order_by(Conversation.last_activity_at.desc()).limit(50))
            plan = await _plan(session, query, generic=False)
            assert "hashed" not in plan, (term, plan)
            assert list((await session.execute(query)).scalars()) == [ids[script]], term
