"""Files of the e-mail channel on disk: attachments and the raw source of every mail.

Both are content-addressed (`<root>/<sha256[:2]>/<sha256>`): the name on disk comes from
the bytes, never from anything the sender wrote, so no attachment name can reach the file
system (`../`, absolute paths, look-alike slashes); the name shown for download is the
sanitised one stored with the message. A file is written (and fsynced) before the row that
names it is committed, so a stored message never lacks its files; a crash in between
leaves at worst an unreferenced file, which the same mail delivered again reuses.

Storing bytes that are already there refreshes the file's modification time: that time
is when the file was last stored, which the sweep of unused uploads
(`conversations.uploads.delete_unused_uploads`) goes by.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

_SHA256 = re.compile(r"[0-9a-f]{64}")


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, sha256: str | None = None) -> str:
        """Store `data` (once: the same bytes again are a no-op); returns its digest."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if target.is_file():
            try:
                os.utime(target)  # stored again now: fresh for the sweep of unused files
                return digest
            except FileNotFoundError:
                pass  # swept away this instant: written anew below
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.path_of(sha256).is_file()


def attachment_store(data_dir: Path) -> FileStore:
    return FileStore(Path(data_dir) / "attachments")


def raw_mail_store(data_dir: Path) -> FileStore:
    return FileStore(Path(data_dir) / "mail")
