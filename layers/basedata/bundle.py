"""A district handed over as one zip: the manifest and the files it names, unpacked safely.

Member paths stay as the zip holds them (a manifest may name ``网格/网格.gpkg``), but no member
may leave the folder (no absolute paths, no ``..``, no links), and the zip may not unpack to more
than the read limits allow, so that an upload cannot write elsewhere or fill the disk.
"""

from __future__ import annotations

import contextlib
import stat
import zipfile
from pathlib import Path, PurePosixPath

from geo.errors import BadRequest
from layers.readers import LIMITS, ReadLimits

MANIFEST = "manifest.toml"
MAX_MEMBERS = 256


def unpack(archive: Path, folder: Path, limits: ReadLimits = LIMITS) -> Path:
    """Unpack ``archive`` into ``folder``; returns the manifest's path (``manifest.toml`` at the
    top, or the zip's only ``.toml``). BadRequest names what is wrong with the zip."""
    try:
        bundle = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadRequest("send the district as a zip of the manifest and its files") from exc
    with bundle:
        members = [m for m in bundle.infolist() if not m.is_dir()]
        if len(members) > MAX_MEMBERS:
            raise BadRequest(f"the zip holds {len(members)} files; at most {MAX_MEMBERS}")
        if sum(m.file_size for m in members) > limits.unzipped_bytes:
            raise BadRequest(
                f"the zip unpacks to more than {limits.unzipped_bytes // 1024**2} MiB: split it"
            )
        root = folder.resolve()
        for member in members:
            name = _member_name(member)
            path = PurePosixPath(name)
            if path.is_absolute() or ".." in path.parts or not path.parts:
                raise BadRequest(f"zip member '{name}' would land outside the upload: refused")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise BadRequest(f"zip member '{name}' is a link: refused")
            target = (root / Path(*path.parts)).resolve()
            if root not in target.parents:
                raise BadRequest(f"zip member '{name}' would land outside the upload: refused")
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as src, target.open("wb") as out:
                copied = 0
                while chunk := src.read(1 << 20):
                    copied += len(chunk)
                    if copied > member.file_size:  # a member lying about its size
                        raise BadRequest(f"zip member '{name}' is larger than the zip says")
                    out.write(chunk)
    top = root / MANIFEST
    if top.is_file():
        return top
    tomls = list(root.rglob("*.toml"))
    if len(tomls) == 1:
        return tomls[0]
    raise BadRequest(f"the zip holds no {MANIFEST} (the district manifest) at its top")


def _member_name(member: zipfile.ZipInfo) -> str:
    """The member's name; names zipped on Chinese Windows (no UTF-8 flag) are GBK."""
    name = member.filename
    if not member.flag_bits & 0x800:
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            name = name.encode("cp437").decode("gb18030")
    return name.replace("\\", "/")
