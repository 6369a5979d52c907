"""``onemap assets import``: the idle-asset register (存量资产台账) from a spreadsheet, through the
district import's own machinery, so that a row the district import would reject is rejected here
for the same reason.

The register arrives as the investment office keeps it: an .xlsx or a CSV with Chinese column
names, one asset a row. The sheet is turned into a one-entry manifest for ``assets`` (the column
names recognised without a mapping file; a TOML mapping overrides them) and a CSV the ingest
readers take; then, as in ``layers.basedata.importer``: ``read_entry`` (CRS, geometry repaired or
rejected, rows outside the district rejected, columns and values mapped), ``combine``, the assets
builder (community, grid, land area), ``check_rows`` and the staging of the table's own CHECK /
UNIQUE / FOREIGN KEY / NOT NULL rules, row by row.

What the register adds: a row may give a point (经度/纬度) or an address (地址) instead of a
footprint, and then takes the footprint of the standard building there; each asset is matched to
the standard building it overlaps most and a standard address; a code already in the register is
refused unless ``update``; new assets get one status-history row. The good rows are loaded on the
caller's transaction, the bad ones reported with their spreadsheet row (the header is row 1).
"""

from __future__ import annotations

import re
import tempfile
import time
import tomllib
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo import district
from geo.addressing import Geocoded, geocode
from geo.errors import IngestError
from geo.policy import audit
from geo.policy.roles import Viewer
from layers import readers
from layers.basedata.build import (
    BUILDERS,
    Built,
    Context,
    Work,
    assign_ids,
    check_rows,
    combine,
    resolve_references,
)
from layers.basedata.importer import OPERATOR, Progress, _stage, _tally
from layers.basedata.manifest import ALIASES, Entry, Manifest, ManifestError, _entry, _Reader
from layers.basedata.report import ImportReport
from layers.basedata.rows import read_entry
from layers.basedata.schema import SPECS
from layers.coordinates import to_metric
from layers.fields import convert
from layers.matching import METRES_PER_DEGREE_FLOOR
from layers.vocabulary import field_title

#: the register's column names as offices write them (compared without case, spaces or a unit in
#: brackets: 土地面积(㎡) is 土地面积); the standard English names are recognised too
COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("资产编号", "资产编码", "编号", "编码"),
    "name": ("资产名称", "名称", "项目名称"),
    "category": ("资产类别", "类别", "资产类型", "类型"),
    "status": ("资产状态", "状态"),
    "owner": ("权属单位", "产权单位", "权属人", "产权人"),
    "land_area_m2": ("土地面积", "占地面积", "用地面积"),
    "floor_area_m2": ("建筑面积",),
    "landuse_code": ("用地性质", "地类", "土地用途", "地类编码"),
    "condition": ("房屋状况", "完损等级", "房屋完损等级"),
    "available_from": ("可用日期", "可交付日期", "可招商日期"),
    "suggested_use": ("建议用途", "招商方向"),
    "description": ("资产描述", "简介", "描述"),
    "reserve_price_wan": ("底价", "租金底价", "底价(万元)", "租金底价(万元)"),
    "contact_name": ("联系人",),
    "contact_phone": ("联系电话", "电话"),
    "notes": ("备注",),
    "area_code": ("社区编码", "所属社区编码"),
    "grid_code": ("网格编码", "所属网格编码"),
    "address_code": ("标准地址编码", "地址编码"),
    "building_code": ("建筑编码", "楼栋编码"),
}
#: the columns that place an asset, read here rather than mapped onto fields
FOOTPRINT_NAMES = (
    "范围",
    "空间范围",
    "wkt",
    "几何",
    "geometry",
    "geom",
    "shape",
    "图形",
    "空间信息",
)
LON_NAMES = ("经度", "lon", "lng", "longitude")
LAT_NAMES = ("纬度", "lat", "latitude")
ADDRESS_NAMES = ("地址", "详细地址", "坐落", "坐落地址", "address")
#: the Chinese words of the register for the standard values (the vocabulary's labels are
#: recognised by read_entry as well)
VALUES: dict[str, dict[str, str]] = {
    "category": {
        "行政事业单位": "administrative",
        "行政事业单位闲置资产": "administrative",
        "行政事业性": "administrative",
        "国有经营性": "state_operating",
        "国有经营性资产": "state_operating",
        "农村集体闲置": "rural_collective",
        "农村集体": "rural_collective",
        "农村集体闲置资产": "rural_collective",
        "低效用地再开发": "inefficient_land",
        "低效用地": "inefficient_land",
    },
    "status": {
        "已入库": "entered",
        "入库": "entered",
        "公开推介": "promoted",
        "推介中": "promoted",
        "洽谈中": "negotiating",
        "已盘活": "revitalised",
        "已撤回": "withdrawn",
        "撤回": "withdrawn",
    },
    "condition": {
        "完好": "intact",
        "完好房": "intact",
        "基本完好": "sound",
        "基本完好房": "sound",
        "一般损坏": "damaged",
        "一般损坏房": "damaged",
        "严重损坏": "severely_damaged",
        "严重损坏房": "severely_damaged",
        "危险": "dangerous",
        "危房": "dangerous",
        "危险房": "dangerous",
    },
    # GB/T 21010-2017 classes an idle asset stands on, by their Chinese names
    "landuse_code": {
        "商业服务业设施用地": "05H1",
        "商服用地": "05",
        "物流仓储用地": "0508",
        "仓储用地": "0508",
        "工矿仓储用地": "06",
        "工业用地": "0601",
        "住宅用地": "07",
        "城镇住宅用地": "0701",
        "农村宅基地": "0702",
        "公共管理与公共服务用地": "08",
        "机关团体新闻出版用地": "08H1",
        "机关团体用地": "08H1",
        "科教文卫用地": "08H2",
        "公用设施用地": "0809",
        "公园与绿地": "0810",
        "特殊用地": "09",
    },
}
#: how far (m) a standard address may lie from an asset and still be its address
ADDRESS_WITHIN_M = 100.0
#: the storage CRS: footprints and points in the sheet are CGCS2000 lon/lat unless the mapping says
STORAGE_CRS = "EPSG:4490"
HISTORY_NOTE = "导入 import"


@dataclass
class AssetImportReport(ImportReport):
    """The district import's report, plus what only the register has: inserted and updated
    assets, and how many were matched to a standard building and address (and how)."""

    file: str = ""
    dry_run: bool = False
    update: bool = False
    inserted: int = 0
    updated: int = 0
    matching: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        t = self.tables.get("assets")
        rejected = t.rejected if t else 0
        if self.loaded:
            done = "校验通过，未写入 validated, not written" if self.dry_run else "已导入 loaded"
            return (
                f"{done}: {self.inserted} 新增 new, {self.updated} 更新 updated, "
                f"{rejected} 拒绝 rejected"
            )
        first = self.problems[0] if self.problems else "没有可导入的行 no row could be loaded"
        return f"未导入，台账未改动 nothing was loaded: {first}"


def import_assets(
    conn: Connection,
    path: Path,
    *,
    mapping: Path | None = None,
    update: bool = False,
    metric_srid: int = 4549,
    viewer: Viewer = OPERATOR,
    progress: Progress | None = None,
    tolerance_m: float = 50.0,
    dry_run: bool = False,
    district_code: str | None = None,
) -> AssetImportReport:
    """Import the register in ``path`` on ``conn`` in its transaction: the good rows loaded, each
    bad one reported. ``status`` is ``loaded`` when at least one asset was written (or, with
    ``dry_run``, would be), ``refused`` when none; the caller commits or rolls back (always,
    for a dry run: the flag only says so in the report). ``district_code``: whose register it is,
    when several districts are loaded."""
    path = Path(path)
    chosen, name, _ = district.choose(conn, district_code)
    report = AssetImportReport(
        name or "辖区 district",
        str(mapping) if mapping else "默认列名 default column names",
        datetime.now(UTC),
        file=path.name,
        dry_run=dry_run,
        update=update,
    )
    tr = report.table("assets")
    started = time.perf_counter()
    try:
        district_geom, district_code = _district(conn, chosen)
        sheet, encoding = _read_sheet(path)
        entry = _entry_for(path, list(sheet.columns), mapping)
    except (IngestError, ManifestError) as exc:
        tr.failed = str(exc)
        report.problems.append(f"无法读取 cannot read: {exc}")
        return _close(report, "refused")
    if progress:
        progress("read", "assets", 0, 1)
    ctx = Context(metric_srid, "", district_code, _parents(conn), tolerance_m)
    with tempfile.TemporaryDirectory(prefix="onemap-assets-") as folder:
        staged_csv, placing = _as_csv(sheet, entry, Path(folder))
        manifest = Manifest(
            Path(folder), report.district, district_code, tolerance_m, metric_srid, {}, path.name
        )
        csv_entry = replace(entry, file=staged_csv.name, crs=entry.crs or STORAGE_CRS)
        metric = to_metric(np.array([district_geom], dtype=object), metric_srid)[0]
        lon = float(shapely.centroid(district_geom).x)
        try:
            part = read_entry(manifest, csv_entry, SPECS["assets"], metric, lon, metric_srid)
        except IngestError as exc:
            tr.failed = str(exc)
            report.problems.append(f"无法读取 cannot read: {exc}")
            return _close(report, "refused")
    part.file.file, part.file.encoding = path.name, encoding
    part.file.format = "Excel (xlsx)" if path.suffix.lower() == ".xlsx" else "CSV"
    tr.files.append(part.file)
    footprints = _footprints_from_points(conn, part, placing)
    work = combine(SPECS["assets"], [part])
    work.c["_row"] = [int(r) + 1 for r in work.c["_row"]]  # the spreadsheet's rows: header is 1
    tr.rows_read = len(work.c["_row"])
    for i, (geom, why) in footprints.items():
        if why:
            work.reject(i, why)
        else:
            work.fill("geom", i, geom)
    resolve_references(work, ctx)
    _allocate_codes(conn, work, district_code)
    BUILDERS["assets"](work, ctx)
    check_rows(work)
    assign_ids(work)
    updating = _in_register(conn, work, update)
    how = _match(conn, work, placing, metric_srid)
    _parent_views(conn)
    try:
        _stage(conn, work, ctx)
    finally:
        _drop_parent_views(conn)
    _tally(report, work)
    if "位置取自上级 position from parent" in tr.derived:
        n = tr.derived.pop("位置取自上级 position from parent")
        tr.derived["空间范围取自标准建筑 footprint from the standard building"] = n
    _bilingual(tr)
    alive = [int(i) for i in np.flatnonzero(work.alive())]
    report.matching = _match_counts(work, alive, how)
    report.timings["validate"] = round(time.perf_counter() - started, 3)
    if progress:
        progress("read", "assets", 1, 1)
    if not alive:
        report.problems.append(
            f"{tr.rejected} 行全部被拒绝，台账未改动 — every row ({tr.rejected}) was rejected: "
            "nothing was loaded"
        )
        conn.execute(text("DROP TABLE IF EXISTS pg_temp.import_assets"))
        return _close(report, "refused")
    started = time.perf_counter()
    codes_updating = sorted(work.c["code"][i] for i in alive if i in updating)
    report.inserted = len(alive) - len(codes_updating)
    report.updated = len(codes_updating)
    _load(conn, work, entry, viewer, codes_updating)
    conn.execute(text("DROP TABLE IF EXISTS pg_temp.import_assets"))
    report.timings["load"] = round(time.perf_counter() - started, 3)
    if progress:
        progress("load", "assets", 1, 1)
    report.counts = {"assets": int(conn.execute(text("SELECT count(*) FROM assets")).scalar_one())}
    audit.record(
        conn,
        viewer,
        "import",
        "assets",
        path.name[:100],
        detail={
            "file": path.name,
            "mapping": str(mapping) if mapping else None,
            "inserted": report.inserted,
            "updated": report.updated,
            "rejected": tr.rejected,
            "dry_run": dry_run,
        },
    )
    return _close(report, "loaded")


def _close(report: AssetImportReport, status: str) -> AssetImportReport:
    report.status = status
    report.finished_at = datetime.now(UTC)
    return report


# --- the sheet ----------------------------------------------------------------------------------


def _header_key(name) -> str:
    """A header as compared: NFKC (full-width brackets folded), lower case, no spaces, no unit."""
    folded = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(name)).strip().lower())
    bare = re.sub(r"[(\[].*?[)\]]$", "", folded)
    return bare or folded


def _read_sheet(path: Path) -> tuple[pd.DataFrame, str]:
    """The sheet's cells as text (an .xlsx's first sheet, or a CSV in UTF-8 or GB18030)."""
    if not path.is_file():
        raise IngestError(f"文件不存在 — no file at {path}")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            frame = pd.read_excel(
                path, sheet_name=0, dtype=object, engine="openpyxl", keep_default_na=False
            )
        except Exception as exc:  # a damaged or mislabelled workbook: its content is not echoed
            raise IngestError(
                f"'{path.name}' 不是可读的 Excel 文件 — is not a readable .xlsx"
            ) from exc
        frame.columns = [str(c).strip() for c in frame.columns]
        frame = frame.map(_cell_text)
        encoding = "xlsx"
    elif suffix in (".csv", ".txt"):
        frame, encoding = readers._csv_frame(path, path.name)
    else:
        raise IngestError(
            f"'{path.name}': 台账应为 .xlsx 或 .csv — the register is read from .xlsx or .csv"
        )
    frame = frame.loc[~(frame == "").all(axis=1)].reset_index(drop=True)
    frame = frame.loc[:, [not str(c).startswith("Unnamed:") for c in frame.columns]]
    if frame.empty:
        raise IngestError(f"'{path.name}' 没有数据行 — holds no rows")
    return frame, encoding


def _cell_text(value) -> str:
    """A workbook cell as the text a CSV would hold: whole numbers without '.0', dates as dates."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, datetime):  # pandas' Timestamp is one too
        midnight = value.hour == value.minute == value.second == 0
        return value.date().isoformat() if midnight else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _find(columns: list[str], names) -> str | None:
    keys = {_header_key(c): c for c in reversed(columns)}
    return next((keys[_header_key(n)] for n in names if _header_key(n) in keys), None)


@dataclass
class Placing:
    """The columns that place each row, and what the sheet gives for it by position."""

    footprint: str | None
    lon: str | None
    lat: str | None
    address: str | None
    points: dict[int, tuple[float, float]] = field(default_factory=dict)  # row → lon, lat
    addresses: dict[int, str] = field(default_factory=dict)  # row → address text, every row
    by_address: set[int] = field(default_factory=set)  # rows placed by their address alone
    bad_points: dict[int, str] = field(default_factory=dict)
    geocoded: dict[int, Geocoded] = field(default_factory=dict)  # row → the address text matched


def _entry_for(path: Path, columns: list[str], mapping: Path | None) -> Entry:
    """The one manifest entry the sheet is read through: recognised columns and values, then
    the mapping file's over them (checked as a manifest entry is)."""
    fields: dict[str, str] = {}
    for standard, names in COLUMNS.items():
        found = _find(columns, (standard, *names))
        if found is not None:
            fields[standard] = found
    found = _find(columns, ("id",))
    if found is not None:
        fields["id"] = found
    values = {f: dict(v) for f, v in VALUES.items()}
    defaults: dict[str, object] = {"status": "entered"}
    crs = None
    if mapping is not None:
        given = _mapping(Path(mapping))
        fields |= given.fields
        for name, pairs in given.values.items():
            values.setdefault(name, {}).update(pairs)
        defaults |= given.defaults
        crs = given.crs
    for standard, column in fields.items():
        if _header_key(column) not in {_header_key(c) for c in columns}:
            raise IngestError(
                f"[assets.fields] {standard} = \"{column}\", 但表中没有此列 — '{path.name}' has "
                f"no column '{column}'; its columns are {', '.join(columns)}"
            )
    return Entry(
        table="assets",
        file=path.name,
        crs=crs,
        fields=fields,
        values=values,
        defaults=defaults,
        section="assets",
    )


def _mapping(path: Path) -> Entry:
    """A mapping file: the keys of a manifest's [assets] entry (fields, values, defaults, crs),
    at the top level or under [assets]."""
    if not path.is_file():
        raise ManifestError(f"没有映射文件 — no mapping file at {path}")
    try:
        source = path.read_text(encoding="utf-8")
        data = tomllib.loads(source)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path.name}: 不是有效的 TOML — not valid TOML: {exc}") from exc
    for name in ("assets", *[a for a, (t, _) in ALIASES.items() if t == "assets"]):
        if isinstance(data.get(name), dict):
            data = data[name]
            break
    raw = {"file": path.name, **data}
    return _entry(_Reader(source, path.name), "assets", "assets", raw, None, {})


def _as_csv(sheet: pd.DataFrame, entry: Entry, folder: Path) -> tuple[Path, Placing]:
    """The sheet as the CSV ``read_entry`` reads: the footprint in one WKT column (empty where
    the row gives only a point or an address), the position columns kept aside."""
    columns = list(sheet.columns)
    mapped = {_header_key(c) for c in entry.fields.values()}
    free = [c for c in columns if _header_key(c) not in mapped]
    placing = Placing(
        _find(free, FOOTPRINT_NAMES),
        _find(free, LON_NAMES),
        _find(free, LAT_NAMES),
        _find(free, ADDRESS_NAMES),
    )
    n = len(sheet)
    wkt = sheet[placing.footprint].tolist() if placing.footprint else [""] * n
    for i in range(n):
        row = i + 1
        if placing.address and str(sheet[placing.address].iloc[i]).strip():
            placing.addresses[row] = str(sheet[placing.address].iloc[i]).strip()
        if str(wkt[i]).strip():
            continue
        if placing.lon and placing.lat:
            lon_cell, lat_cell = sheet[placing.lon].iloc[i], sheet[placing.lat].iloc[i]
            if str(lon_cell).strip() or str(lat_cell).strip():
                x, bad_x = convert(lon_cell, "number")
                y, bad_y = convert(lat_cell, "number")
                if bad_x or bad_y or x is None or y is None:
                    placing.bad_points[row] = (
                        f"经纬度无法识别 — unparsable coordinates: {placing.lon}={lon_cell!r}, "
                        f"{placing.lat}={lat_cell!r}"
                    )
                else:
                    placing.points[row] = (float(x), float(y))
                continue
        if row in placing.addresses:
            placing.by_address.add(row)
    drop = {c for c in (placing.footprint, placing.lon, placing.lat) if c}
    out = sheet[[c for c in columns if c not in drop]].copy()
    out.columns = [str(c) for c in out.columns]
    out["wkt"] = [str(w).strip() for w in wkt]
    target = folder / "register.csv"
    out.to_csv(target, index=False, encoding="utf-8")
    return target, placing


# --- places: the district, its areas, the footprint of a point ----------------------------------


def _district(conn: Connection, code: str | None):
    """The chosen district's boundary and code (``geo.district.choose`` chose it)."""
    row = conn.execute(
        text("SELECT code, ST_AsBinary(geom) FROM admin_areas WHERE code = :c"), {"c": code}
    ).first()
    if row is None:
        raise IngestError("数据库中没有辖区 — the database holds no district: import it first")
    return shapely.from_wkb(bytes(row[1])), row[0]


def _parents(conn: Connection) -> dict[str, Built]:
    """The district's communities and grids as the builder looks them up (built from the
    database, as the district import builds them from its files)."""
    out = {}
    for table, columns in (("admin_areas", "code, level"), ("grids", "code")):
        rows = conn.execute(
            text(f"SELECT {columns}, ST_AsBinary(geom) FROM {table} ORDER BY code")
        ).all()
        c: dict[str, list] = {"code": [r[0] for r in rows]}
        if table == "admin_areas":
            c["level"] = [r[1] for r in rows]
        c["geom"] = [shapely.from_wkb(bytes(r[-1])) for r in rows]
        c["_key"] = list(c["code"])
        c["_row"] = list(range(1, len(rows) + 1))
        tree = shapely.STRtree(np.array(c["geom"], dtype=object)) if rows else None
        out[table] = Built(c, {k: i for i, k in enumerate(c["code"])}, {}, tree)
    return out


def _footprints_from_points(conn: Connection, part, placing: Placing) -> dict[int, tuple]:
    """For each row without a footprint: the footprint of the standard building at its point
    (or at its geocoded address), or why there is none. Keyed by position in the frame."""
    out: dict[int, tuple] = {}
    geoms = part.geometry
    for row, why in placing.bad_points.items():
        if geoms[row - 1] is None and row not in part.rejected:
            out[row - 1] = (None, why)
    found = geocode(conn, sorted(placing.addresses.items())) if placing.addresses else []
    placing.geocoded = {g.key: g for g in found}
    for row in range(1, len(geoms) + 1):
        i = row - 1
        if geoms[i] is not None or row in part.rejected or i in out:
            continue
        if row in placing.points:
            lon, lat = placing.points[row]
            where = f"经纬度 ({lon:g}, {lat:g})"
            building = conn.execute(
                text("""SELECT code, ST_AsBinary(geom) FROM buildings
                        WHERE ST_Intersects(geom, ST_SetSRID(ST_MakePoint(:x, :y), 4490))
                        ORDER BY code LIMIT 1"""),
                {"x": lon, "y": lat},
            ).first()
        elif row in placing.by_address:
            g = placing.geocoded.get(row)
            if g is None or not g.matched:
                reason = (g.reason if g is not None else None) or "no standard address matches"
                out[i] = (
                    None,
                    f"地址无法匹配标准地址，且没有空间范围 — the address "
                    f"{placing.addresses[row]!r} matches no standard address ({reason}) and the "
                    "row gives no footprint (范围 WKT) or 经度/纬度",
                )
                continue
            where = f"地址 {g.full_name}"
            building = conn.execute(
                text("""SELECT b.code, ST_AsBinary(b.geom) FROM addresses a
                        JOIN buildings b ON b.id = a.building_id WHERE a.id = :id"""),
                {"id": g.address_id},
            ).first()
        else:
            out[i] = (
                None,
                "缺少空间范围 — no footprint: give 范围 (WKT), or 经度/纬度 or 地址 of a "
                "standard building",
            )
            continue
        if building is None:
            out[i] = (
                None,
                f"{where} 处没有标准建筑，无法取得空间范围 — no standard building at {where}: "
                "give the footprint as WKT (范围)",
            )
            continue
        geom = shapely.from_wkb(bytes(building[1]))
        if geom.geom_type == "Polygon":
            geom = shapely.multipolygons([geom])
        out[i] = (geom, None)
    return out


# --- codes and the register ---------------------------------------------------------------------


def _allocate_codes(conn: Connection, work: Work, district_code: str) -> None:
    """Codes for new assets: ZC + the district's 6 digits + the next free 4-digit number after
    the largest in the register and in the file (the builder finds none left to allocate)."""
    prefix = "ZC" + district_code[:6]
    taken = conn.execute(
        text("SELECT max(substr(code, 9, 4)) FROM assets WHERE code LIKE :p"), {"p": prefix + "%"}
    ).scalar()
    nxt = int(taken) if taken and taken.isdigit() else 0
    for value in work.c["code"]:
        if isinstance(value, str) and value.startswith(prefix) and value[8:12].isdigit():
            nxt = max(nxt, int(value[8:12]))
    for i in np.flatnonzero(work.alive()):
        if work.c["code"][i] is None:
            nxt += 1
            if nxt >= 10_000:
                work.reject(i, f"没有可用的资产编号 — no free code left under {prefix}")
                continue
            work.c["code"][i] = f"{prefix}{nxt:04d}"
            work.generated += 1


def _in_register(conn: Connection, work: Work, update: bool) -> set[int]:
    """Rows whose code the register already holds: rejected, or (``update``) to be updated."""
    alive = np.flatnonzero(work.alive())
    codes = [work.c["code"][i] for i in alive]
    held = set(
        conn.execute(
            text("SELECT code FROM assets WHERE code = ANY(:codes)"), {"codes": codes}
        ).scalars()
    )
    out = set()
    for i in alive:
        code = work.c["code"][i]
        if code not in held:
            continue
        if update:
            out.add(int(i))
        else:
            work.reject(
                i,
                f"资产编号 {code} 已在台账中 — code {code} is already in the register: "
                "update it with --update, or give a new code",
            )
    return out


# --- matching to the standard building and address ----------------------------------------------


def _match(conn: Connection, work: Work, placing: Placing, metric_srid: int) -> dict[int, str]:
    """``building_code``: the standard building the footprint overlaps most; ``address_code``:
    the building's address, else the nearest standard address within 100 m, else the row's
    address text geocoded. Codes the sheet gives are kept. Returns how each address was found."""
    alive = [int(i) for i in np.flatnonzero(work.alive())]
    how: dict[int, str] = {}
    if not alive:
        return how
    c = work.c
    wkb = [shapely.to_wkb(c["geom"][i]) for i in alive]
    rows = conn.execute(
        text("""
        WITH q AS (SELECT ix, ST_GeomFromWKB(w, 4490) AS geom
                   FROM unnest(CAST(:ix AS int[]), CAST(:wkb AS bytea[])) AS t(ix, w))
        SELECT q.ix, b.code,
               (SELECT a.code FROM addresses a WHERE a.building_id = b.id
                ORDER BY a.level <> 'building', a.code LIMIT 1) AS building_address,
               (SELECT a.code FROM addresses a
                WHERE a.geom && ST_Expand(ST_PointOnSurface(q.geom), :deg)
                  AND ST_Distance(ST_Transform(a.geom, :srid),
                                  ST_Transform(ST_PointOnSurface(q.geom), :srid)) <= :within
                ORDER BY ST_Distance(ST_Transform(a.geom, :srid),
                                     ST_Transform(ST_PointOnSurface(q.geom), :srid)), a.code
                LIMIT 1) AS nearest
        FROM q LEFT JOIN LATERAL (
            SELECT b.id, b.code FROM buildings b
            WHERE b.geom && q.geom AND ST_Intersects(b.geom, q.geom)
              AND ST_Area(ST_Intersection(b.geom, q.geom)) > 0
            ORDER BY ST_Area(ST_Intersection(b.geom, q.geom)) DESC, b.code LIMIT 1) b ON true
        """),
        {
            "ix": alive,
            "wkb": wkb,
            "srid": metric_srid,
            "deg": ADDRESS_WITHIN_M / METRES_PER_DEGREE_FLOOR,
            "within": ADDRESS_WITHIN_M,
        },
    ).all()
    for ix, building, building_address, nearest in rows:
        if c["building_code"][ix] is None and building is not None:
            work.fill("building_code", ix, building)
        if c["address_code"][ix] is not None:
            how[ix] = "given"
            continue
        row = int(c["_row"][ix]) - 1  # the record number the sheet's rows were keyed by
        g = placing.geocoded.get(row)
        choices = (
            ("building", building_address),
            ("nearest", nearest),
            ("geocoded", g.code if g is not None and g.matched else None),
        )
        if g is not None and g.matched and row in placing.by_address:
            # placed by its address: that address is the asset's, whatever the building's is
            choices = (("geocoded", g.code), *choices)
        for name, code in choices:
            if code is not None:
                work.fill("address_code", ix, code)
                how[ix] = name
                break
    return how


def _match_counts(work: Work, alive: list[int], how: dict[int, str]) -> dict[str, dict[str, int]]:
    building = sum(1 for i in alive if work.c["building_code"][i] is not None)
    address: dict[str, int] = {"matched": 0}
    for i in alive:
        if work.c["address_code"][i] is not None:
            address["matched"] += 1
            name = how.get(i, "given")
            address[name] = address.get(name, 0) + 1
    address["unmatched"] = len(alive) - address["matched"]
    return {
        "building": {"matched": building, "unmatched": len(alive) - building},
        "address": address,
    }


# --- staging against the register's neighbours, and the load ------------------------------------

#: the parents the staging's foreign-key rules look in: the district as it is in the database
_PARENTS = {"admin_areas": "code", "grids": "code", "addresses": "code", "buildings": "code"}


def _parent_views(conn: Connection) -> None:
    """The staging finds a row's parents in ``pg_temp.import_<parent>``: here, views of the
    tables themselves (the district is not being imported, it is there)."""
    for table, column in _PARENTS.items():
        conn.execute(text(f"DROP VIEW IF EXISTS pg_temp.import_{table}"))
        conn.execute(
            text(
                f'CREATE TEMP VIEW import_{table} AS SELECT "{column}", false AS _rejected '
                f"FROM {table}"
            )
        )


def _drop_parent_views(conn: Connection) -> None:
    for table in _PARENTS:
        conn.execute(text(f"DROP VIEW IF EXISTS pg_temp.import_{table}"))


#: what an update may change: what the sheet gives, and what follows from the footprint; never
#: the code, the status (a move of the lifecycle, with its history) or the page views
_NEVER_UPDATED = {"id", "code", "status", "page_views"}
_FROM_FOOTPRINT = ("geom", "area_code", "grid_code", "building_code", "address_code")


def _load(conn: Connection, work: Work, entry: Entry, viewer: Viewer, updating: list[str]):
    """New assets inserted (ids from the sequence) with their first status-history row; assets
    already in the register (``--update``) changed in place, their history untouched."""
    from geo import district

    cols = [c for c in district.columns("assets") if c != "id"]
    quoted = ", ".join(f'"{c}"' for c in cols)
    inserted = conn.execute(
        text(
            f"INSERT INTO assets ({quoted}) SELECT {quoted} FROM pg_temp.import_assets "
            "WHERE NOT _rejected AND NOT (code = ANY(:updating)) ORDER BY _ix RETURNING id, status"
        ),
        {"updating": updating},
    ).all()
    if inserted:
        conn.execute(
            text("""INSERT INTO asset_status_history (asset_id, status, changed_at, changed_by, note)
                    VALUES (:id, :status, now(), :by, :note)"""),
            [
                {"id": r[0], "status": r[1], "by": viewer.username[:50], "note": HISTORY_NOTE}
                for r in inserted
            ],
        )
    if updating:
        given = set(entry.fields) | set(entry.defaults)
        derived = {"land_area_m2", "floor_area_m2"} if "geom" in given else set()
        changed = [
            c
            for c in cols
            if c not in _NEVER_UPDATED and (c in given or c in _FROM_FOOTPRINT or c in derived)
        ]
        sets = ", ".join(f'"{c}" = s."{c}"' for c in changed)
        conn.execute(
            text(
                f"UPDATE assets a SET {sets} FROM pg_temp.import_assets s "
                "WHERE s.code = a.code AND NOT s._rejected AND s.code = ANY(:updating)"
            ),
            {"updating": updating},
        )


# --- the report in Chinese first ----------------------------------------------------------------

#: the machinery's English reasons, each with the Chinese a data officer reads first
_ZH = (
    (r"^missing category", "缺少资产类别"),
    (r"^missing (geometry|footprint)", "缺少空间范围"),
    (r"^missing (\w+)", "缺少必填字段"),
    (r"^category .* is not a known value", "资产类别无法识别"),
    (r"^status .* is not a known value", "资产状态无法识别"),
    (r"is not (one of|a known value)", "取值无法识别"),
    (r"^duplicate code", "资产编号在表中重复"),
    (r"^duplicate", "表中重复"),
    (r"^code .* is not a valid code", "资产编号格式不对（应为 ZC + 6 位区划 + 4 位序号）"),
    (r"is not a valid code", "编码格式不对"),
    (r"area_range", "面积不能为负数"),
    (r"landuse_code_format", "用地性质代码格式不对（GB/T 21010，如 0601）"),
    (r"condition_known", "房屋状况无法识别"),
    (r"category_known", "资产类别无法识别"),
    (r"geom_valid", "几何图形无效"),
    (r"breaks the rule", "违反台账规则"),
    (r"repeats the", "与其他行重复"),
    (r"refers to no", "引用的编码不存在"),
    (r"lies in no (community|grid): placed in the nearest", "不在任何区域内，已归入最近的区域"),
    (r"outside|lies in no|lies more than", "空间范围在辖区之外"),
    (r"^repaired invalid geometry", "几何图形无效，已自动修复"),
    (r"invalid geometry", "几何图形无效，无法修复"),
    (r"unparsable WKT", "空间范围（WKT）无法解析"),
    (r"where multipolygon geometry is expected", "空间范围应为面"),
    (r"empty geometry", "空间范围为空"),
    (r"is not a number", "数值无法识别"),
    (r"is not a whole number", "应为整数"),
    (r"is not a date", "日期无法识别"),
    (r"characters long", "文字过长"),
    (r"too large", "数值过大"),
    (r"cannot be transformed", "坐标无法转换"),
)


def _bilingual(table_report) -> None:
    """Each issue's reason with the Chinese first (reasons written here already are)."""
    for issue in table_report.issues:
        reason = issue.reason
        if re.match(r"^[\u4e00-\u9fff]", reason):
            continue
        zh = next((z for pattern, z in _ZH if re.search(pattern, reason)), "导入问题")
        if zh == "缺少必填字段":
            missing = re.match(r"^missing (\w+)", reason).group(1)
            zh = f"缺少必填字段「{field_title(missing)}」"
        issue.reason = f"{zh} — {reason}"


__all__ = ["AssetImportReport", "import_assets"]
