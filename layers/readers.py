"""Reading departmental files: GeoJSON, zipped Shapefile, GeoPackage, CSV with lon/lat or address.

Each reader returns a :class:`Source`: the records' attributes, their geometries as shapely
objects in the file's own coordinates (``None`` where a record has none), the CRS the file
declares (if any) and how it was found, the text encoding used, and per-record problems found
while reading (an unparsable coordinate). Vector formats go through GDAL (pyogrio); CSV through
pandas, because departmental CSVs name their coordinate columns every which way (经度, lng, X …)
and arrive in UTF-8 or GBK, with or without a byte-order mark.

Chinese Shapefiles are usually GBK (CP936): GDAL honours a .cpg; without one the .dbf's language
driver byte is read, and failing that the bytes are tried as UTF-8, then GB18030 (a superset of
GBK and GB2312). Records are numbered from 1 in file order: the row numbers of the report.
"""

from __future__ import annotations

import csv
import io
import re
import sqlite3
import tempfile
import time
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import geopandas
import numpy as np
import pandas as pd
import pyogrio
import shapely

from geo.errors import IngestError

#: lower-cased, space-free header names of coordinate and address columns, in order of preference
LON_NAMES = ("经度", "lon", "lng", "long", "longitude", "东经", "x", "x坐标", "横坐标")
LAT_NAMES = ("纬度", "lat", "latitude", "北纬", "y", "y坐标", "纵坐标")
WKT_NAMES = ("wkt", "geometry", "geom", "shape", "几何", "图形", "空间信息")
ADDRESS_NAMES = ("地址", "详细地址", "标准地址", "门牌地址", "场所地址", "address", "addr")


@dataclass(frozen=True)
class ReadLimits:
    """How much one file may ask of the service: what a zip may unpack to and hold, and how many
    records a file may have. Bounds, not expectations: a district's largest layer is ~500,000."""

    unzipped_bytes: int = 512 * 1024**2
    zip_members: int = 64
    rows: int = 2_000_000
    sqlite_check_seconds: float = 5.0


LIMITS = ReadLimits()
#: the GDAL driver each verified format is read with; any other driver GDAL would pick is refused
DRIVERS = {"GeoJSON": "GeoJSON", "GeoPackage": "GPKG", "Shapefile": "ESRI Shapefile"}
SHP_MAGIC = b"\x00\x00\x27\x0a"
SQLITE_MAGIC = b"SQLite format 3\x00"
#: .dbf language driver ids of the Chinese code pages
_LDID = {0x4D: "CP936", 0x7A: "CP936", 0x4E: "CP949", 0x4F: "CP950", 0x57: None}
_CPG = {"936": "CP936", "65001": "UTF-8", "utf8": "UTF-8", "gb2312": "GB2312", "gbk": "GBK"}

FORMATS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".zip": "Shapefile (zip)",
    ".shp": "Shapefile",
    ".gpkg": "GeoPackage",
    ".csv": "CSV",
    ".txt": "CSV",
}


@dataclass
class Source:
    """What was read from a file, before any CRS or validity work."""

    file_name: str
    format: str
    attributes: pd.DataFrame
    geometry: np.ndarray | None  # object array of shapely geometries or None; None for address CSV
    crs: object | None = None  # pyproj CRS from the file, or None
    crs_found_in: str | None = None  # .prj, GeoPackage, GeoJSON
    encoding: str | None = None
    addresses: pd.Series | None = None  # address texts of an address-only CSV
    row_problems: dict[int, str] = field(default_factory=dict)  # row number → reason
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.attributes)


def read(
    path: Path,
    file_name: str | None = None,
    layer_hint: str | None = None,
    limits: ReadLimits = LIMITS,
) -> Source:
    """Read any accepted file; IngestError (naming the problem) when it cannot be read at all.

    ``file_name`` is the name the file came under (an upload's name; the format is chosen by its
    suffix, or by the file's first bytes when the suffix says nothing); ``layer_hint`` picks the
    layer of a multi-layer GeoPackage or the Shapefile of a zip holding several.

    A file is read only as the format its own bytes show (a GDAL VRT, an XML file that would
    make GDAL read other files, is not GeoJSON whatever its name says), only with that format's
    GDAL driver, within ``limits``; an unreadable file's content is never echoed back.
    """
    path = Path(path)
    name = file_name or path.name
    if not path.is_file():
        raise IngestError(f"no file at {path}")
    if path.stat().st_size == 0:
        raise IngestError(f"'{name}' is empty")
    sniffed = _sniff(path)
    kind = FORMATS.get(Path(name).suffix.lower()) or sniffed
    if kind is None:
        raise IngestError(
            f"cannot tell the format of '{name}': send GeoJSON (.geojson), a zipped Shapefile "
            "(.zip), a GeoPackage (.gpkg) or a CSV (.csv)"
        )
    _verify(path, name, kind, sniffed)
    if kind == "CSV":
        source = _read_csv(path, name)
    elif kind == "Shapefile (zip)":
        source = _read_zip(path, name, layer_hint, limits)
    elif kind == "Shapefile":
        source = _read_shapefile(path, name, limits)
    else:
        source = _read_vector(path, name, kind, layer_hint, limits)
    if source.rows == 0:
        raise IngestError(f"'{name}' holds no records")
    if source.rows > limits.rows:
        raise IngestError(f"'{name}' holds more than {limits.rows:,} records: split it")
    return source


def _verify(path: Path, name: str, kind: str, sniffed: str | None) -> None:
    """The file's bytes must be the format its name claims (or, nameless, was sniffed as)."""
    expected = {
        "GeoJSON": "GeoJSON",
        "GeoPackage": "GeoPackage",
        "Shapefile (zip)": "Shapefile (zip)",
    }.get(kind)
    if kind == "Shapefile":
        with path.open("rb") as handle:
            if handle.read(4) != SHP_MAGIC:
                raise IngestError(f"'{name}' is not a Shapefile (its bytes are not a .shp)")
    elif kind == "CSV":
        if sniffed in ("Shapefile (zip)", "GeoPackage") or _looks_like_markup(path):
            raise IngestError(f"'{name}' is not a CSV text file")
    elif expected is not None and sniffed != expected:
        raise IngestError(
            f"'{name}' is not {kind}: its content is of another kind. Send the file in the "
            "format its name says"
        )


def _looks_like_markup(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(512).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def _sniff(path: Path) -> str | None:
    with path.open("rb") as handle:
        head = handle.read(16)
    if head.startswith(b"PK\x03\x04"):
        return "Shapefile (zip)"
    if head.startswith(b"SQLite format 3\x00"):
        return "GeoPackage"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return "GeoJSON"
    return None


# --- GDAL formats -------------------------------------------------------------------------------


def _gdal_read(
    path: Path, name: str, kind: str, limits: ReadLimits, read_geometry: bool = True, **kwargs
) -> pd.DataFrame:
    """Read with GDAL, only through the verified format's driver and within the row limit."""
    unreadable = f"cannot read '{name}' as {kind}: the file is damaged or not valid {kind}"
    try:
        driver = pyogrio.read_info(path, **kwargs).get("driver")
    except Exception as exc:  # GDAL's messages may quote the file: none is passed on
        raise IngestError(unreadable) from exc
    if driver != DRIVERS[kind]:
        raise IngestError(f"'{name}' is not {kind}: refused")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            frame = pyogrio.read_dataframe(
                path,
                force_2d=True,
                on_invalid="ignore",
                max_features=limits.rows + 1,
                read_geometry=read_geometry,
                **kwargs,
            )
    except Exception as exc:
        raise IngestError(unreadable) from exc
    if len(frame) > limits.rows:
        raise IngestError(f"'{name}' holds more than {limits.rows:,} records: split it")
    return frame


def _split(frame, name: str, kind: str) -> tuple[pd.DataFrame, np.ndarray, object]:
    """Attributes, geometries and CRS of what GDAL read; IngestError if it has no geometry."""
    if not isinstance(frame, geopandas.GeoDataFrame) or frame.active_geometry_name is None:
        raise IngestError(f"'{name}' ({kind}) has no geometry column: nothing to place on the map")
    geometry_name = frame.active_geometry_name
    geoms = np.asarray(frame[geometry_name].array, dtype=object)
    attrs = pd.DataFrame(frame.drop(columns=[geometry_name])).reset_index(drop=True)
    return attrs, geoms, frame.crs


def _read_vector(
    path: Path, name: str, kind: str, layer_hint: str | None, limits: ReadLimits
) -> Source:
    layer = None
    if kind == "GeoPackage":
        _check_sqlite(path, name, limits)
        layer = _pick_gpkg_layer(path, name, layer_hint)
    kwargs = {"layer": layer} if layer else {}
    frame = _gdal_read(path, name, kind, limits, **kwargs)
    attrs, geoms, crs = _split(frame, name, kind)
    found_in = "GeoPackage" if kind == "GeoPackage" else None
    notes = []
    if kind == "GeoJSON":
        found_in = "GeoJSON crs member" if _has_crs_member(path) else None
        if found_in is None:
            crs = None  # RFC 7946 default: the caller decides (WGS 84 lon/lat unless told)
            notes.append("GeoJSON without a crs member: RFC 7946 says WGS 84 lon/lat")
    if layer:
        notes.append(f"GeoPackage layer '{layer}'")
    return Source(name, kind, attrs, geoms, crs, found_in, "UTF-8", notes=notes)


def _has_crs_member(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    return re.search(rb'"crs"\s*:\s*\{', head) is not None


def _check_sqlite(path: Path, name: str, limits: ReadLimits) -> None:
    """A GeoPackage is a SQLite database, and SQLite can hide work in it: views (a recursive one
    never ends) and virtual tables that reach outside the file. Before GDAL opens it, refuse
    them (an R*Tree spatial index is the one virtual table a GeoPackage needs), with a time
    bound on the look itself."""
    deadline = time.monotonic() + limits.sqlite_check_seconds
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error as exc:
        raise IngestError(f"cannot read '{name}' as GeoPackage: not a SQLite database") from exc
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        rows = db.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master").fetchall()
    except sqlite3.Error as exc:
        raise IngestError(f"cannot read '{name}' as GeoPackage: the database is damaged") from exc
    finally:
        db.close()
    for kind, object_name, sql in rows:
        virtual = sql.upper().startswith("CREATE VIRTUAL TABLE")
        if kind == "view":  # triggers fire on writes only, and GDAL reads
            raise IngestError(
                f"'{name}' holds a {kind} ({object_name}): send a GeoPackage of plain tables"
            )
        if virtual and " USING RTREE" not in sql.upper().replace('"', ""):
            raise IngestError(
                f"'{name}' holds a virtual table ({object_name}): send a GeoPackage of plain tables"
            )


def _pick_gpkg_layer(path: Path, name: str, hint: str | None) -> str:
    try:
        listed = pyogrio.list_layers(path)
    except Exception as exc:
        raise IngestError(f"cannot read '{name}' as GeoPackage: the file is damaged") from exc
    spatial = [str(n) for n, gtype in listed if gtype]
    if not spatial:
        raise IngestError(f"'{name}' (GeoPackage) has no layer with geometry")
    if len(spatial) == 1:
        return spatial[0]
    if hint in spatial:
        return hint
    raise IngestError(
        f"'{name}' holds {len(spatial)} layers with geometry ({', '.join(spatial)}): "
        "send one layer per file, or name the GeoPackage layer like the target layer"
    )


# --- Shapefiles ---------------------------------------------------------------------------------


def _read_zip(path: Path, name: str, hint: str | None, limits: ReadLimits) -> Source:
    """Unpack a zip into a temporary folder (member names flattened, so nothing lands outside it)
    and read the Shapefile it holds (or its one GeoPackage / GeoJSON)."""
    with tempfile.TemporaryDirectory(prefix="onemap-unzip-") as folder:
        target = Path(folder)
        try:
            with zipfile.ZipFile(path) as archive:
                members = [
                    m
                    for m in archive.infolist()
                    if not m.is_dir()
                    and "__MACOSX" not in m.filename
                    and not Path(m.filename).name.startswith(".")
                ]
                if len(members) > limits.zip_members:
                    raise IngestError(
                        f"'{name}' holds more than {limits.zip_members} files: send one layer"
                    )
                too_big = IngestError(
                    f"'{name}' unpacks to more than {limits.unzipped_bytes:,} bytes: send less"
                )
                if sum(m.file_size for m in members) > limits.unzipped_bytes:
                    raise too_big
                budget = limits.unzipped_bytes  # counted as unpacked: a header may lie
                for member in members:
                    flat = Path(member.filename.replace("\\", "/")).name
                    with archive.open(member) as src, (target / flat).open("wb") as dst:
                        while chunk := src.read(1 << 20):
                            budget -= len(chunk)
                            if budget < 0:
                                raise too_big
                            dst.write(chunk)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
            raise IngestError(f"'{name}' is not a readable zip file") from exc
        shapefiles = sorted(p for p in target.iterdir() if p.suffix.lower() == ".shp")
        if not shapefiles:
            inner = [
                p for p in target.iterdir() if p.suffix.lower() in (".gpkg", ".geojson", ".json")
            ]
            if len(inner) == 1:
                return read(inner[0], inner[0].name, hint, limits)
            raise IngestError(f"'{name}' holds no Shapefile (a .shp with its .shx and .dbf)")
        if len(shapefiles) > 1:
            chosen = [p for p in shapefiles if p.stem.lower() == (hint or "").lower()]
            if len(chosen) != 1:
                raise IngestError(
                    f"'{name}' holds {len(shapefiles)} Shapefiles "
                    f"({', '.join(p.name for p in shapefiles)}): send one per file"
                )
            shapefiles = chosen
        source = _read_shapefile(shapefiles[0], name, limits)
    source.format = "Shapefile (zip)"
    return source


def _sibling(shp: Path, suffix: str) -> Path | None:
    for candidate in shp.parent.iterdir():
        if candidate.stem == shp.stem and candidate.suffix.lower() == suffix:
            return candidate
    return None


def _read_shapefile(shp: Path, name: str, limits: ReadLimits) -> Source:
    for needed in (".shx", ".dbf"):
        if _sibling(shp, needed) is None:
            raise IngestError(f"'{name}': the Shapefile {shp.name} has no {needed} beside it")
    _verify(shp, name, "Shapefile", None)
    shapes, records = _shapefile_counts(shp)
    if shapes != records:
        raise IngestError(
            f"'{name}': {shp.name} holds {shapes} shapes but its .dbf {records} attribute rows; "
            "the files do not belong together (re-export the Shapefile)"
        )
    encoding, how = _shapefile_encoding(shp)
    kwargs = {"encoding": encoding} if how != ".cpg" else {}
    frame = _gdal_read(shp, name, "Shapefile", limits, **kwargs)
    attrs, geoms, crs = _split(frame, name, "Shapefile")
    prj = _sibling(shp, ".prj")
    notes = [f"text encoding {encoding} (from {how})"]
    if prj is None:
        crs = None
    return Source(
        name,
        "Shapefile",
        attrs,
        geoms,
        crs,
        ".prj" if prj is not None else None,
        encoding,
        notes=notes,
    )


def _shapefile_counts(shp: Path) -> tuple[int, int]:
    """Shapes (from the .shx: 100-byte header, then 8 bytes a shape) and .dbf records."""
    shx, dbf = _sibling(shp, ".shx"), _sibling(shp, ".dbf")
    shapes = max(0, (shx.stat().st_size - 100) // 8)
    with dbf.open("rb") as handle:
        header = handle.read(8)
    records = int.from_bytes(header[4:8], "little") if len(header) == 8 else -1
    return shapes, records


def _shapefile_encoding(shp: Path) -> tuple[str, str]:
    """The .dbf's text encoding and where it was learnt: .cpg, the language byte, or the bytes."""
    cpg = _sibling(shp, ".cpg")
    if cpg is not None:
        declared = cpg.read_text(encoding="ascii", errors="ignore").strip()
        if declared:
            key = declared.lower().replace("-", "").replace("_", "")
            return _CPG.get(key, _CPG.get(declared.lower(), declared)), ".cpg"
    dbf = _sibling(shp, ".dbf")
    raw = dbf.read_bytes() if dbf is not None else b""
    ldid = raw[29] if len(raw) > 29 else 0
    if _LDID.get(ldid):
        return _LDID[ldid], "the .dbf language driver byte"
    header_end = int.from_bytes(raw[8:10], "little") if len(raw) > 10 else 0
    body = raw[header_end:]
    try:
        body.decode("utf-8")
        return "UTF-8", "the text itself (valid UTF-8)"
    except UnicodeDecodeError:
        return "GB18030", "the text itself (not UTF-8: read as GBK/GB18030)"


# --- CSV ----------------------------------------------------------------------------------------


def _header_key(name: str) -> str:
    folded = unicodedata.normalize("NFKC", str(name)).strip().lower()
    return re.sub(r"\s+", "", folded)


def _find_column(columns: list[str], names: tuple[str, ...]) -> str | None:
    """The column named by the first of ``names`` (exactly, or followed by a bracketed unit)."""
    keys = {c: _header_key(c) for c in columns}
    for wanted in names:
        for column, key in keys.items():
            if key == wanted or re.fullmatch(re.escape(wanted) + r"[(\[].*", key):
                return column
    return None


def _decode(raw: bytes, name: str) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding), "UTF-8" if encoding == "utf-8-sig" else "GB18030"
        except UnicodeDecodeError:
            continue
    raise IngestError(f"'{name}' is neither UTF-8 nor GBK/GB18030 text")


def _read_csv(path: Path, name: str) -> Source:
    frame, encoding = _csv_frame(path, name)
    columns = list(frame.columns)
    lon_col, lat_col = _find_column(columns, LON_NAMES), _find_column(columns, LAT_NAMES)
    address_col = _find_column(columns, ADDRESS_NAMES)
    wkt_col = _find_column(columns, WKT_NAMES)
    if wkt_col and not (lon_col and lat_col):
        geoms, problems = _wkt(frame[wkt_col].tolist(), wkt_col)
        return Source(
            name,
            "CSV (WKT)",
            frame.drop(columns=[wkt_col]).reset_index(drop=True),
            geoms,
            encoding=encoding,
            row_problems=problems,
            notes=[f"geometries from the WKT column '{wkt_col}'"],
        )
    if lon_col and lat_col:
        geoms, problems = _points(frame, lon_col, lat_col)
        attrs = frame.drop(columns=[lon_col, lat_col]).reset_index(drop=True)
        return Source(
            name,
            "CSV (lon/lat)",
            attrs,
            geoms,
            encoding=encoding,
            row_problems=problems,
            notes=[f"coordinates from columns '{lon_col}' and '{lat_col}'"],
        )
    if address_col:
        return Source(
            name,
            "CSV (address)",
            frame.reset_index(drop=True),
            None,
            encoding=encoding,
            addresses=frame[address_col].reset_index(drop=True),
            notes=[f"no coordinate columns: geocoding column '{address_col}'"],
        )
    raise IngestError(
        f"'{name}' has no coordinate columns (经度/纬度, lon/lat, lng/lat, x/y), no WKT column "
        f"(wkt, geometry) and no address column (地址, address): its columns are "
        f"{', '.join(columns)}"
    )


def has_positions(columns: list[str]) -> bool:
    """Whether a CSV with these columns has coordinate (lon/lat) or WKT columns."""
    columns = [str(c) for c in columns]
    lonlat = _find_column(columns, LON_NAMES) and _find_column(columns, LAT_NAMES)
    return bool(lonlat or _find_column(columns, WKT_NAMES))


def _csv_frame(path: Path, name: str) -> tuple[pd.DataFrame, str]:
    """A CSV's cells as stripped text, in UTF-8 or GBK/GB18030, with the delimiter sniffed."""
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise IngestError(f"'{name}' is not a text CSV (it holds binary data)")
    text, encoding = _decode(raw, name)
    try:
        dialect = csv.Sniffer().sniff(text[:65536], delimiters=",\t;|")
        sep = dialect.delimiter
    except csv.Error:
        sep = ","
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise IngestError(f"cannot read '{name}' as CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.map(lambda v: v.strip() if isinstance(v, str) else v), encoding


def _wkt(texts: list[str], column: str) -> tuple[np.ndarray, dict[int, str]]:
    """Geometries from WKT cells (an optional ``SRID=n;`` prefix is dropped: the CRS is decided
    for the file as a whole); an unparsable cell is that row's problem."""
    geoms = np.full(len(texts), None, dtype=object)
    problems: dict[int, str] = {}
    for i, cell in enumerate(texts):
        cell = re.sub(r"^\s*SRID=\d+;", "", cell or "")
        if not cell.strip():
            continue
        try:
            geoms[i] = shapely.from_wkt(cell)
        except shapely.errors.GEOSException:
            problems[i + 1] = f"unparsable WKT in column '{column}': {cell[:40]!r}"
    return geoms, problems


def read_table(
    path: Path, file_name: str | None = None, layer_hint: str | None = None
) -> tuple[pd.DataFrame, str]:
    """The attribute table of a file that needs no geometry (readings, status histories): a CSV,
    or a GeoPackage table (spatial or not, picked by ``layer_hint``). Returns (frame, format)."""
    path = Path(path)
    name = file_name or path.name
    if not path.is_file():
        raise IngestError(f"no file at {path}")
    sniffed = _sniff(path)
    kind = FORMATS.get(Path(name).suffix.lower()) or sniffed
    if kind not in ("CSV", "GeoPackage"):
        raise IngestError(f"'{name}': a table without geometry is read from a CSV or a GeoPackage")
    _verify(path, name, kind, sniffed)
    if kind == "CSV":
        frame, _ = _csv_frame(path, name)
        return frame, "CSV"
    _check_sqlite(path, name, LIMITS)
    try:
        layers = [str(n) for n, _ in pyogrio.list_layers(path)]
    except Exception as exc:
        raise IngestError(f"cannot read '{name}' as GeoPackage: the file is damaged") from exc
    layer = layer_hint if layer_hint in layers else (layers[0] if len(layers) == 1 else None)
    if layer is None:
        raise IngestError(
            f"'{name}' has no table named '{layer_hint}': it holds {', '.join(layers)}"
        )
    frame = _gdal_read(path, name, kind, LIMITS, layer=layer, read_geometry=False)
    return pd.DataFrame(frame).reset_index(drop=True), "GeoPackage"


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _number(value: str) -> float | None:
    """A coordinate as written in a CSV cell (full-width digits and a trailing ° allowed)."""
    cleaned = unicodedata.normalize("NFKC", value).strip().rstrip("°").strip()
    if not _NUMBER.match(cleaned):
        return None
    return float(cleaned)


def _points(frame: pd.DataFrame, lon_col: str, lat_col: str) -> tuple[np.ndarray, dict[int, str]]:
    lon_texts, lat_texts = frame[lon_col].tolist(), frame[lat_col].tolist()
    xs = np.full(len(frame), np.nan)
    ys = np.full(len(frame), np.nan)
    problems: dict[int, str] = {}
    for i, (lon_text, lat_text) in enumerate(zip(lon_texts, lat_texts, strict=True)):
        if not lon_text and not lat_text:
            continue  # no geometry: rejected as missing by validation
        lon, lat = _number(lon_text), _number(lat_text)
        if lon is None or lat is None or not (np.isfinite(lon) and np.isfinite(lat)):
            problems[i + 1] = (
                f"unparsable coordinates: {lon_col}={lon_text!r}, {lat_col}={lat_text!r}"
            )
            continue
        xs[i], ys[i] = lon, lat
    geoms = np.full(len(frame), None, dtype=object)
    ok = np.isfinite(xs) & np.isfinite(ys)
    geoms[ok] = shapely.points(xs[ok], ys[ok])
    return geoms, problems
