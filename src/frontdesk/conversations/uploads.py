"""Files agents attach to their replies.

An upload is stored at once in the content-addressed attachment store (the one inbound
mail uses, `<data_dir>/attachments`), and answered with an opaque id: the file's digest,
name, type, size and workspace, signed with a key derived from the installation's secret.
No table holds uploads, so an upload never sent costs one file and no row; the signature
binds the id to the workspace, so another workspace cannot attach a file by guessing or
copying its digest. A reply naming ids lists those files on its message
(`Message.attachments`), where the download routes find them by position.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.requests import Request

from frontdesk.accounts.service import Principal
from frontdesk.channels.email.headers import sanitize_filename
from frontdesk.channels.email.storage import attachment_store
from frontdesk.config import Settings
from frontdesk.core.errors import InvalidInput

UPLOAD_ID_PREFIX = "up1"
MAX_UPLOADS_PER_REPLY = 20
_CONTENT_TYPE_LIMIT = 255


class UploadTooLarge(InvalidInput):
    status_code = 413
    code = "upload_too_large"


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
    body = _b64(json.dumps({"w": principal.workspace_id, "s": digest, "n": name, "t": kind,
                            "z": len(data)}, separators=(",", ":")).encode())
    upload_id = f"{UPLOAD_ID_PREFIX}.{body}.{_sign(upload_key(settings), body)}"
    return StoredUpload(upload_id, name, kind, len(data), digest)


def resolve_uploads(key: bytes, principal: Principal,
                    upload_ids: Sequence[str]) -> list[StoredUpload]:
    """The files behind the ids of an upload, in the order given (each once). An id that
    is not ours, altered, or of another workspace answers 422 `unknown_upload`."""
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
