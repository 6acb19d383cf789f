"""The tag vocabulary: usage counts, renaming (merging into an existing tag) and deleting."""

from __future__ import annotations

import httpx

from tests.apitools import assert_error
from tests.factories import Factory


async def _tags_of(api: httpx.AsyncClient, headers: dict[str, str], cid: int) -> list[str]:
    r = await api.get(f"/api/v1/conversations/{cid}", headers=headers)
    return list(r.json()["tags"])


async def test_usage_rename_merge_and_delete(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    inbox = await factory.inbox(ws)
    first = int((await factory.incoming(ws, inbox))["conversation_id"])
    second = int((await factory.incoming(ws, inbox))["conversation_id"])
    await factory.tag(ws, first, "refund", "vip")
    await factory.tag(ws, second, "refunds", "refund")
    h = ws.admin.headers

    usage = (await api.get("/api/v1/tags/usage", headers=h)).json()["items"]
    assert usage == [{"name": "refund", "conversations": 2},
                     {"name": "refunds", "conversations": 1},
                     {"name": "vip", "conversations": 1}]

    # Renaming to a free name renames it everywhere.
    r = await api.patch("/api/v1/tags/vip", headers=h, json={"name": " VIP-Customer "})
    assert r.status_code == 200 and r.json() == {"name": "vip-customer", "conversations": 1}
    assert await _tags_of(api, h, first) == ["refund", "vip-customer"]

    # Renaming to a name in use merges: every conversation keeps one "refund".
    r = await api.patch("/api/v1/tags/refunds", headers=h, json={"name": "refund"})
    assert r.status_code == 200 and r.json() == {"name": "refund", "conversations": 2}
    assert await _tags_of(api, h, second) == ["refund"]
    names = [t["name"] for t in (await api.get("/api/v1/tags/usage", headers=h)).json()["items"]]
    assert names == ["refund", "vip-customer"]

    r = await api.delete("/api/v1/tags/refund", headers=h)
    assert r.status_code == 204
    assert await _tags_of(api, h, first) == ["vip-customer"]
    assert await _tags_of(api, h, second) == []
    assert_error(await api.delete("/api/v1/tags/refund", headers=h), 404)
    assert (await api.get("/api/v1/tags", headers=h)).json() == {"tags": ["vip-customer"]}


async def test_a_tag_name_must_be_storable(api: httpx.AsyncClient, factory: Factory) -> None:
    ws = await factory.api_workspace()
    conversation = await factory.conversation(ws)
    await factory.tag(ws, conversation["conversation_id"], "billing")
    r = await api.patch("/api/v1/tags/billing", headers=ws.admin.headers, json={"name": "   "})
    assert_error(r, 422)
