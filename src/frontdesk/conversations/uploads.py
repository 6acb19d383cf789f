"""Files agents attach to their replies.

An upload is stored at once in the content-addressed attachment store (the one inbound
mail uses, `<data_dir>/attachments`), and answered with an opaque id: the file's digest,
name, type, size and workspace, signed with a key derived from the installation's secret.
No table holds uploads, so an upload never sent costs one file and no row; the signature
binds the id to the workspace, so another workspace cannot attach a file by guessing or
copying its digest. A reply naming ids lists those files on its message
(`Message.attachments`), where the download routes find them by position.

An id is good for FRONTDESK_UPLOAD_RETENTION_HOURS (a reply naming an older one gets 422
`upload_expired`). `UploadSweeper` (wherever events are dispatched: `serve` with the
embedded worker, every `worker`) deletes the files of the attachment store that no
message names and that were last stored longer ago than that (and a grace period):
uploads of discarded drafts, and files of mail that was never stored (a crash between
writing them and the commit, a rate-limited mail still in quarantine: re-processing
writes them again). Storing bytes that are already there refreshes their time, and a
file is renamed aside and its time looked at again before it is deleted, so a file being
stored again at that instant is kept.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.requests import Request

from frontdesk.accounts.service import Principal
from frontdesk.channels.email.headers import sanitize_filename
from frontdesk.channels.email.storage import attachment_store
from frontdesk.config import Settings
from frontdesk.core.background import PumpLoop
from frontdesk.core.errors import InvalidInput

log = logging.getLogger(__name__)

UPLOAD_ID_PREFIX = "up1"
MAX_UPLOADS_PER_REPLY = 20
_CONTENT_TYPE_LIMIT = 255
# Files are deleted this long after the ids naming them expired: a reply that resolved an
# id at the last moment has long committed (or failed) by then.
SWEEP_GRACE = timedelta(minutes=10)
SWEEP_INTERVAL_SECONDS = 3600.0


class UploadTooLarge(InvalidInput):
    status_code = 413
    code = "upload_too_large"


class UploadExpired(InvalidInput):
    code = "upload_expired"


@dataclass(frozen=True)
class StoredUpload:
    upload_id: str
    filename: str
    content_type: str
    size: int
    sha256: str

    def as_attachment(self) -> dict[str, Any]:
        """The entry a message lists (the same keys inbound mail's attachments have)."""
        return {"filename": self.filename, "content_type": self.content_type,
                "size": self.size, "sha256": self.sha256, "inline": False,
                "content_id": None, "stored": True}


@lru_cache(maxsize=8)
def _key(secret_key: str) -> bytes:
    # Its own derived key: the session key signs cookies, this one upload ids.
    return hmac.new(secret_key.encode(), b"frontdesk reply uploads", hashlib.sha256).digest()


def upload_key(settings: Settings) -> bytes:
    from frontdesk.web.security import load_secret_key  # the web package imports much

    return _key(load_secret_key(settings))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()[:16])


def _content_type(value: str | None) -> str:
    text = (value or "").split(";")[0].strip().lower()
    if not text or len(text) > _CONTENT_TYPE_LIMIT or "/" not in text \
            or any(ch.isspace() or not ch.isprintable() for ch in text):
        return "application/octet-stream"
    return text


def store_upload(settings: Settings, principal: Principal, data: bytes,
                 filename: str | None, content_type: str | None) -> StoredUpload:
    """Store an agent's file and answer its signed id. Refuses an empty file and one over
    FRONTDESK_EMAIL_MAX_ATTACHMENT_BYTES (what a mail may carry is what a reply may)."""
    limit = settings.email_max_attachment_bytes
    if len(data) > limit:
        raise UploadTooLarge(f"The file is larger than {limit} bytes",
                             details={"limit": limit})
    if not data:
        raise InvalidInput("The file is empty", code="empty_upload")
    digest = attachment_store(settings.data_dir).put(data)
    name = sanitize_filename(filename)
    kind = _content_type(content_type)
    expires = int(time.time() + settings.upload_retention_hours * 3600)
    body = _b64(json.dumps({"w": principal.workspace_id, "s": digest, "n": name, "t": kind,
                            "z": len(data), "x": expires}, separators=(",", ":")).encode())
    upload_id = f"{UPLOAD_ID_PREFIX}.{body}.{_sign(upload_key(settings), body)}"
    return StoredUpload(upload_id, name, kind, len(data), digest)


def resolve_uploads(key: bytes, principal: Principal,
                    upload_ids: Sequence[str]) -> list[StoredUpload]:
    """The files behind the ids of an upload, in the order given (each once). An id that
    is not ours, altered, or of another workspace answers 422 `unknown_upload`; one older
    than FRONTDESK_UPLOAD_RETENTION_HOURS (its file may be gone) 422 `upload_expired`."""
    now = time.time()
    found: dict[str, StoredUpload] = {}
    for upload_id in upload_ids:
        if upload_id in found:
            continue
        prefix, _, rest = upload_id.partition(".")
        body, _, mac = rest.partition(".")
        if prefix != UPLOAD_ID_PREFIX or not body or not hmac.compare_digest(
                mac.encode(), _sign(key, body).encode()):
            raise InvalidInput("Unknown upload id", code="unknown_upload",
                               details={"upload_id": upload_id[:100]})
        try:
            fields = json.loads(_unb64(body))
        except (ValueError, binascii.Error) as exc:
            raise InvalidInput("Unknown upload id", code="unknown_upload") from exc
        if fields.get("w") != principal.workspace_id:
            raise InvalidInput("Unknown upload id", code="unknown_upload",
                               details={"upload_id": upload_id[:100]})
        expires = fields.get("x")
        if isinstance(expires, int) and now > expires:
            raise UploadExpired(
                f"The file {str(fields.get('n'))[:100]!r} was uploaded too long ago and is "
                "no longer kept; upload it again", details={"upload_id": upload_id[:100]})
        found[upload_id] = StoredUpload(upload_id, str(fields["n"]), str(fields["t"]),
                                        int(fields["z"]), str(fields["s"]))
    return list(found.values())


# What a multipart body may add around the file itself (boundaries, part headers).
_FORM_OVERHEAD = 64 * 1024

# The multipart body of an upload, for the OpenAPI document (the route reads the form
# itself, so that a field other than `file` is refused like an unknown JSON field).
UPLOAD_OPENAPI: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "additionalProperties": False,
        "properties": {"file": {"type": "string", "format": "binary"}}}}}}}


@dataclass(frozen=True)
class ReceivedFile:
    data: bytes
    filename: str | None
    content_type: str | None


async def read_upload(request: Request, limit: int) -> ReceivedFile:
    """The one file of a multipart upload (field `file`), refusing (413) one over `limit`
    and (422) any other field, as unknown fields of a JSON body are."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
        raise UploadTooLarge(f"The file is larger than {limit} bytes", details={"limit": limit})
    async with request.form(max_files=1, max_fields=5) as form:
        unknown = sorted(key for key in form if key != "file")
        if unknown:
            raise InvalidInput("Only a file is accepted", code="validation_error", details=[
                {"field": f"body.{key}", "message": "Extra inputs are not permitted"}
                for key in unknown])
        file = form.get("file")
        if not isinstance(file, StarletteUploadFile):
            raise InvalidInput("A file is required", code="validation_error",
                               details=[{"field": "body.file", "message": "Field required"}])
        chunks: list[bytes] = []
        total = 0
        while chunk := await file.read(1 << 20):
            total += len(chunk)
            if total > limit:
                raise UploadTooLarge(f"The file is larger than {limit} bytes",
                                     details={"limit": limit})
            chunks.append(chunk)
        return ReceivedFile(b"".join(chunks), file.filename, file.content_type)


# ------------------------------------------------------------------- unused uploads

_DIGEST = re.compile(r"[0-9a-f]{64}")
_LEFTOVER_PREFIXES = (".incoming-", ".deleting-")  # a crashed write, a crashed sweep
_REFERENCE_CHUNK = 500

# The digests among `:digests` that some message lists in its attachments (one scan of
# the messages for a chunk of digests). No index serves it; the sweep runs hourly, as a
# read (on SQLite it takes no write lock).
_REFERENCED_SQL = {
    "postgresql": text(
        "SELECT DISTINCT item ->> 'sha256' FROM messages CROSS JOIN LATERAL "
        "jsonb_array_elements(CASE jsonb_typeof(messages.attachments) WHEN 'array' "
        "THEN messages.attachments ELSE '[]'::jsonb END) AS item "
        "WHERE item ->> 'sha256' IN :digests"),
    # The path into the document itself: an element that is no object yields NULL there,
    # where parsing the element's own text could fail.
    "sqlite": text(
        "SELECT DISTINCT json_extract(messages.attachments, item.fullkey || '.sha256') "
        "FROM messages, json_each(CASE json_type(messages.attachments) WHEN 'array' "
        "THEN messages.attachments ELSE '[]' END) AS item "
        "WHERE json_extract(messages.attachments, item.fullkey || '.sha256') IN :digests"),
}


async def delete_unused_uploads(read_sessions: async_sessionmaker[AsyncSession],
                                data_dir: Path, retention: timedelta) -> int:
    """Delete the attachment store's files that no message names and that were last
    stored more than `retention` (and SWEEP_GRACE) ago, with leftovers of interrupted
    writes as old; returns how many files went."""
    cutoff = time.time() - (retention + SWEEP_GRACE).total_seconds()
    root = attachment_store(data_dir).root
    old, leftovers = await asyncio.to_thread(_old_files, root, cutoff)
    removed = await asyncio.to_thread(_remove_leftovers, leftovers, cutoff)
    if not old:
        return removed
    digests = sorted(old)
    used: set[str] = set()
    async with read_sessions() as session:
        statement = _REFERENCED_SQL[session.get_bind().dialect.name].bindparams(
            bindparam("digests", expanding=True))
        for start in range(0, len(digests), _REFERENCE_CHUNK):
            rows = await session.execute(
                statement, {"digests": digests[start:start + _REFERENCE_CHUNK]})
            used.update(str(digest) for (digest,) in rows if digest)
    unused = [old[digest] for digest in digests if digest not in used]
    return removed + await asyncio.to_thread(_remove_if_still_old, unused, cutoff)


def _old_files(root: Path, cutoff: float) -> tuple[dict[str, Path], list[Path]]:
    """(digest → path of the store's files last stored before `cutoff`, leftover
    temporary files); anything else in the directory is left alone."""
    old: dict[str, Path] = {}
    leftovers: list[Path] = []
    try:
        shards = [e for e in os.scandir(root) if e.is_dir(follow_symlinks=False)
                  and len(e.name) == 2]
    except FileNotFoundError:
        return old, leftovers
    for shard in shards:
        try:
            entries = list(os.scandir(shard.path))
        except FileNotFoundError:
            continue
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False) \
                        or entry.stat(follow_symlinks=False).st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if _DIGEST.fullmatch(entry.name) and entry.name[:2] == shard.name:
                old[entry.name] = Path(entry.path)
            elif entry.name.startswith(_LEFTOVER_PREFIXES):
                leftovers.append(Path(entry.path))
    return old, leftovers


def _remove_leftovers(paths: list[Path], cutoff: float) -> int:
    removed = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def _remove_if_still_old(paths: list[Path], cutoff: float) -> int:
    """Delete each file unless it was stored again since it was looked at: it is renamed
    aside first (from then on a new store of the bytes writes a new file), and deleted
    only if its time is still old (a store that refreshed it before the rename shows)."""
    removed = 0
    for path in paths:
        aside = path.with_name(f".deleting-{path.name}-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue  # another process's sweep took it
        try:
            if os.stat(aside).st_mtime >= cutoff:
                os.replace(aside, path)  # stored again meanwhile: put back (same bytes)
                continue
            os.unlink(aside)
            removed += 1
        except FileNotFoundError:
            continue
    return removed


class UploadSweeper(PumpLoop):
    """The background job deleting unused uploads, hourly (the first round a minute
    after start: a restart does not walk the store at once)."""

    what = "deleting unused uploads"

    def __init__(self, read_sessions: async_sessionmaker[AsyncSession], settings: Settings,
                 *, interval: float = SWEEP_INTERVAL_SECONDS, first_delay: float = 60.0,
                 retry_after: float = 300.0) -> None:
        super().__init__(retry_after)
        self._read_sessions = read_sessions
        self._settings = settings
        self.interval = interval
        self._first_delay: float | None = first_delay

    async def run_forever(self) -> None:
        await self._run_rounds()

    async def sweep(self) -> int:
        """One round: delete what is unused and old now; how many files went."""
        removed = await delete_unused_uploads(
            self._read_sessions, self._settings.data_dir,
            timedelta(hours=self._settings.upload_retention_hours))
        if removed:
            log.info("Deleted %d unused uploaded file(s)", removed)
        return removed

    async def _pump(self) -> float:
        if self._first_delay is not None:
            delay, self._first_delay = self._first_delay, None
            return delay
        await self.sweep()
        return self.interval
