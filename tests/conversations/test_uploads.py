"""Files agents upload for replies, on both databases: an upload no message used is
deleted once FRONTDESK_UPLOAD_RETENTION_HOURS have passed; a used one and a fresh one
stay; its id stops working when its file may be gone."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from frontdesk.channels.email.service import receive_email
from frontdesk.channels.email.storage import attachment_store
from frontdesk.conversations.uploads import delete_unused_uploads
from frontdesk.runtime import Runtime
from tests.apitools import assert_error
from tests.channels.email.mailmaker import make_mail
from tests.factories import Factory, Workspace, unique

DAY = timedelta(hours=24)


async def upload(api: httpx.AsyncClient, ws: Workspace, data: bytes,
                 name: str = "notes.txt") -> str:
    r = await api.post("/api/v1/attachments", headers=ws.admin.headers,
                       files={"file": (name, data, "text/plain")})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def file_of(runtime: Runtime, data: bytes) -> Path:
    return attachment_store(runtime.settings.data_dir).path_of(hashlib.sha256(data).hexdigest())


def age(path: Path, hours: float) -> None:
    """Make the file look last stored `hours` ago."""
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def content() -> bytes:
    return f"{unique('file')} — a file of this test only\n".encode()


async def sweep(runtime: Runtime) -> int:
    return await delete_unused_uploads(runtime.read_sessions, runtime.settings.data_dir, DAY)


async def test_an_old_unused_upload_is_deleted_and_a_used_one_and_a_fresh_one_stay(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.workspace()
    conversation = await factory.conversation(ws)
    discarded, used, fresh = content(), content(), content()
    await upload(api, ws, discarded)
    used_id = await upload(api, ws, used, "used.txt")
    await upload(api, ws, fresh)
    r = await api.post(f"/api/v1/conversations/{conversation['conversation_id']}/messages",
                       headers=ws.admin.headers,
                       json={"content": "Here it is.", "upload_ids": [used_id]})
    assert r.status_code == 201, r.text
    reply = r.json()
    age(file_of(runtime, discarded), 25)
    age(file_of(runtime, used), 25)

    assert await sweep(runtime) >= 1
    assert not file_of(runtime, discarded).exists()
    assert file_of(runtime, used).is_file() and file_of(runtime, fresh).is_file()
    # The reply's file still downloads.
    r = await api.get(f"/api/v1/messages/{reply['id']}/attachments/1", headers=ws.admin.headers)
    assert r.status_code == 200 and r.content == used
    # Nothing else is due: a second sweep deletes none of them.
    await sweep(runtime)
    assert file_of(runtime, used).is_file() and file_of(runtime, fresh).is_file()


async def test_a_file_stored_again_counts_from_then(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime) -> None:
    ws = await factory.workspace()
    uploaded_again, in_a_mail = content(), content()
    await upload(api, ws, uploaded_again)
    age(file_of(runtime, uploaded_again), 25)
    second_id = await upload(api, ws, uploaded_again)  # the agent attaches it again today
    # The same bytes arriving as a mail's attachment are in use as well.
    await upload(api, ws, in_a_mail)
    age(file_of(runtime, in_a_mail), 25)
    _, address = await factory.email_inbox(ws)
    sender = f"{unique('customer')}@customer.example"
    mail = await receive_email(
        runtime, make_mail(sender=sender, to=address,
                           attachments=[("a.txt", "text/plain", in_a_mail)]),
        inbox_id=None, envelope_recipients=[address], source="test")
    assert mail.status == "stored"
    age(file_of(runtime, in_a_mail), 25)  # the message names it: age does not matter

    await sweep(runtime)
    assert file_of(runtime, uploaded_again).is_file()
    assert file_of(runtime, in_a_mail).is_file()
    r = await api.post(f"/api/v1/conversations/{mail.conversation_id}/messages",
                       headers=ws.admin.headers,
                       json={"content": "Attached.", "upload_ids": [second_id]})
    assert r.status_code == 201, r.text


async def test_an_upload_id_past_the_retention_is_refused_with_422(
        factory: Factory, api: httpx.AsyncClient, runtime: Runtime,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ws = await factory.workspace()
    conversation = await factory.conversation(ws)
    monkeypatch.setattr(runtime.settings, "upload_retention_hours", 1 / 3600)  # a second
    old_id = await upload(api, ws, content())
    monkeypatch.undo()
    await asyncio.sleep(2.1)  # ids are good to the second
    fresh_id = await upload(api, ws, content())
    url = f"/api/v1/conversations/{conversation['conversation_id']}/messages"
    r = await api.post(url, headers=ws.admin.headers,
                       json={"content": "Late.", "upload_ids": [old_id]})
    assert_error(r, 422, "upload_expired")
    r = await api.post(url, headers=ws.admin.headers,
                       json={"content": "In time.", "upload_ids": [fresh_id]})
    assert r.status_code == 201, r.text


async def test_the_runtime_sweeps_in_the_background_and_clears_interrupted_writes(
        api: httpx.AsyncClient, factory: Factory, runtime: Runtime) -> None:
    # The job runs wherever events are dispatched (here: the app's embedded worker).
    assert any(task.get_name() == "upload-sweeper" and not task.done()
               for task in asyncio.all_tasks())
    ws = await factory.workspace()
    discarded = content()
    await upload(api, ws, discarded)
    age(file_of(runtime, discarded), 25)
    shard = file_of(runtime, discarded).parent
    crashed = shard / f".incoming-{unique('tmp')}"  # a write a crash interrupted
    crashed.write_bytes(b"half a file")
    age(crashed, 25)
    recent = shard / f".incoming-{unique('tmp')}"  # a write in progress
    recent.write_bytes(b"being written")
    try:
        await runtime.upload_sweeper.sweep()
        assert not file_of(runtime, discarded).exists() and not crashed.exists()
        assert recent.exists()
    finally:
        recent.unlink()


def test_a_file_stored_again_while_being_swept_is_kept(tmp_path: Path) -> None:
    from frontdesk.conversations.uploads import _old_files, _remove_if_still_old

    store = attachment_store(tmp_path)
    digest = store.put(b"bytes an agent attaches again right now")
    age(store.path_of(digest), 25)
    cutoff = time.time() - (DAY.total_seconds() + 600)
    old, _ = _old_files(store.root, cutoff)
    assert list(old) == [digest]
    store.put(b"bytes an agent attaches again right now")  # between listing and deleting
    assert _remove_if_still_old(list(old.values()), cutoff) == 0
    assert store.read(digest) == b"bytes an agent attaches again right now"
    assert [p.name for p in store.path_of(digest).parent.iterdir()] == [digest]
