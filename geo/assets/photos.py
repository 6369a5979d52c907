"""An asset's photos (资产照片), kept on disk under ``<photos>/<database>/<asset id>/<sha256>.<ext>``
with a row in ``asset_photos`` saying what each is and who gave it.

The type is read from the file's first bytes (JPEG, PNG or WebP), never from its name or the
client's content type: a renamed file is refused. The name the client gave is kept as text only;
the path on disk is built from the asset id and the content's hash alone."""

from __future__ import annotations

import hashlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest, Conflict, NotFound, TooLarge, Unsupported

#: the largest photo kept (bytes)
MAX_PHOTO_BYTES = 10 * 1024 * 1024
#: media type → the extension the file is stored with
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def media_type_of(head: bytes) -> str | None:
    """The image type its magic bytes say, or None when it is none of JPEG, PNG, WebP."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _row(r, staff: bool) -> dict:
    out = {
        "id": r.id,
        "asset_id": r.asset_id,
        "media_type": r.media_type,
        "bytes": r.bytes,
        "caption": r.caption,
        "uploaded_at": r.uploaded_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if staff:  # who uploaded it and what their file was called are the office's business
        out |= {"file_name": r.file_name, "uploaded_by": r.uploaded_by}
    return out


_COLUMNS = (
    "id, asset_id, file_name, stored_as, media_type, bytes, caption, uploaded_at, uploaded_by"
)


def save_photo(
    conn: Connection,
    folder: Path,
    asset_id: int,
    data: bytes,
    file_name: str | None,
    by: str,
    caption: str | None = None,
    max_bytes: int = MAX_PHOTO_BYTES,
) -> dict:
    """Keep a photo of an asset: checked first (size, type, the asset), then the row, then the
    file, written whole under a temporary name and renamed, in the caller's transaction.
    ``folder`` is this database's photo folder."""
    if len(data) > max_bytes:
        raise TooLarge(f"a photo may be at most {max_bytes // (1024 * 1024)} MB; this is larger")
    if not data:
        raise BadRequest("the photo is empty: send the image file in the 'file' part")
    media_type = media_type_of(data[:16])
    if media_type is None:
        raise Unsupported("a photo must be a JPEG, PNG or WebP image (its content, not its name)")
    if conn.execute(text("SELECT 1 FROM assets WHERE id = :id"), {"id": asset_id}).first() is None:
        raise NotFound(f"no asset {asset_id}")
    digest = hashlib.sha256(data).hexdigest()
    stored_as = f"{asset_id}/{digest}.{EXTENSIONS[media_type]}"
    same = conn.execute(
        text("SELECT id FROM asset_photos WHERE stored_as = :s"), {"s": stored_as}
    ).first()
    if same is not None:
        raise Conflict(f"this photo is already kept for asset {asset_id}, as photo {same.id}")
    name = (file_name or "photo").replace("\\", "/").rsplit("/", 1)[-1].strip()[:200] or "photo"
    row = conn.execute(
        text(f"""INSERT INTO asset_photos
                 (asset_id, file_name, stored_as, media_type, bytes, caption, uploaded_at,
                  uploaded_by)
                 VALUES (:asset, :name, :stored, :type, :bytes, :caption, :at, :by)
                 RETURNING {_COLUMNS}"""),
        {
            "asset": asset_id,
            "name": name,
            "stored": stored_as,
            "type": media_type,
            "bytes": len(data),
            "caption": (caption or "").strip()[:200] or None,
            "at": datetime.now(UTC),
            "by": by[:50],
        },
    ).one()
    write_whole(folder / stored_as, data)
    return _row(row, staff=True)


def write_whole(target: Path, data: bytes) -> None:
    """Write a file under a temporary name and rename it: a reader never sees half a photo
    (also the safety map's evidence photos)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def list_photos(conn: Connection, asset_id: int, staff: bool = False) -> list[dict]:
    """An asset's photos, oldest first (without who uploaded them unless ``staff``)."""
    rows = conn.execute(
        text(f"SELECT {_COLUMNS} FROM asset_photos WHERE asset_id = :id ORDER BY id"),
        {"id": asset_id},
    ).all()
    return [_row(r, staff) for r in rows]


def photo_path(conn: Connection, folder: Path, asset_id: int, photo_id: int) -> tuple[Path, str]:
    """Where one photo of an asset is on disk, and its media type (404 if it is not there)."""
    row = conn.execute(
        text("SELECT stored_as, media_type FROM asset_photos WHERE id = :p AND asset_id = :a"),
        {"p": photo_id, "a": asset_id},
    ).first()
    path = folder / row.stored_as if row else None
    if path is None or not path.is_file():
        raise NotFound(f"asset {asset_id} has no photo {photo_id}")
    return path, row.media_type
