"""One click: every indicator for the district, every street/town, community and grid, and H3
cells for the surface-like ones, against their targets; stored as one run, in one transaction.

Each indicator computes its parts once (``registry``); the levels are sums of the same parts, so a
street's figure is always its grids' added up. A run can be repeated at will: each is kept, with
the day its data stood for and the settings it used, so that any two can be compared.
"""

from __future__ import annotations

import io
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import h3
import numpy as np
import pandas as pd
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from geo.checkup.registry import Indicator, indicators
from geo.checkup.staging import TEMPORARY, Context, stage
from geo.errors import BadRequest, NotFound


class CheckupError(BadRequest):
    """A check-up that cannot be run as asked (an unknown area, a malformed settings file)."""


@dataclass
class CheckupConfig:
    """A city's own targets and settings (radii, thresholds), over DOMAIN.md's defaults.

    The file is TOML, one table per indicator: ``[park_radius_coverage]`` then ``target = 90`` and
    any of its settings (``large_radius_m = 500``). Unknown indicators or settings are errors.
    """

    targets: dict[str, float | None] = field(default_factory=dict)
    settings: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str | None) -> CheckupConfig:
        if not path:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CheckupError(f"check-up settings {path}: {exc}") from exc
        return cls.parse(data, str(path))

    @classmethod
    def parse(cls, data: dict, origin: str = "settings") -> CheckupConfig:
        known = indicators()
        out = cls()
        for key, table in data.items():
            if key not in known or not isinstance(table, dict):
                raise CheckupError(
                    f"{origin}: [{key}] is not an indicator; known: {', '.join(sorted(known))}"
                )
            table = dict(table)
            if "target" in table:
                out.targets[key] = table.pop("target")
            unknown = set(table) - set(known[key].settings)
            if unknown:
                raise CheckupError(
                    f"{origin}: [{key}] has no setting {', '.join(sorted(unknown))}; it takes "
                    f"target and {', '.join(sorted(known[key].settings)) or 'nothing else'}"
                )
            out.settings[key] = table
        return out

    def target(self, item: Indicator) -> float | None:
        return self.targets.get(item.id, item.target)

    def as_json(self) -> dict:
        return {"targets": self.targets, "settings": self.settings}


@dataclass
class Areas:
    """The areas loaded: names by code, and the code of the whole a run covers by default: the
    district (one loaded), or the city (several: a pseudo-code, ``3201`` + zeros, 全市)."""

    district: str
    names: dict[str, str]
    levels: dict[str, str]  # code → district | street | community | grid
    districts: tuple[str, ...] = ()

    @classmethod
    def read(cls, conn: Connection) -> Areas:
        names, levels = {}, {}
        ladder = {1: "district", 2: "street", 3: "community"}
        for code, name, level in conn.execute(text("SELECT code, name, level FROM admin_areas")):
            names[code], levels[code] = name, ladder.get(level, "community")
        for code, name in conn.execute(text("SELECT code, name FROM grids")):
            names[code], levels[code] = name, "grid"
        districts = tuple(sorted(c for c, lv in levels.items() if lv == "district"))
        if not districts:
            raise CheckupError("no district is loaded: load the demo city or import a district")
        whole = districts[0]
        if len(districts) > 1:
            whole = districts[0][:4] + "00000000"
            names[whole] = "全市 whole city"
        return cls(whole, names, levels, districts)

    @property
    def city(self) -> bool:
        """Several districts are loaded: a run without an area covers the city."""
        return self.district not in self.districts

    def home(self, code: str | None) -> str:
        """The district (or, for the whole, the city) a run for ``code`` is filed under."""
        return code[:6] + "000000" if code and self.city else self.district

    def prefix(self, code: str | None) -> str:
        """Codes inside ``code`` start with this (the whole district or city: '')."""
        if code is None or code == self.district:
            return ""
        if code not in self.levels:
            raise CheckupError(
                f"no area has the code {code}: give a district, street, community or grid"
            )
        return {"district": code[:6], "street": code[:9], "community": code[:12], "grid": code}[
            self.levels[code]
        ]


LADDER = ("grid", "community", "street", "district")
#: how many leading digits of a code name the area of each level (a grid: all of them)
PREFIX = {"district": 6, "street": 9, "community": 12, "grid": 99}


def _up(level: str, codes: pd.Series, district: str) -> pd.Series:
    if level == "grid":
        return codes
    if level == "community":
        return codes.str[:12]
    if level == "street":
        return codes.str[:9] + "000"
    return codes.str[:6] + "000000"


def aggregate(
    item: Indicator, parts: pd.DataFrame, areas: Areas, target: float | None, within: str = ""
) -> pd.DataFrame:
    """The indicator's results for every area: level, area_code, value, numerator, denominator,
    passed, basis."""
    parts = parts[parts.code.notna()]
    counted = not item.summed  # a ratio (numerator ÷ denominator), or a plain sum
    # every area is listed, with nothing to count where nothing is (a street without a tower: 0)
    codes = [c for c, lv in areas.levels.items() if lv == item.base]
    parts = pd.concat(
        [parts, pd.DataFrame({"code": codes, "num": 0.0, "den": 0.0, "h3_9": None})],
        ignore_index=True,
    )
    if within:
        parts = parts[parts.code.str.startswith(within)]
    parts = parts.assign(
        num=pd.to_numeric(parts.num).astype(float),
        den=pd.to_numeric(parts.den).astype(float) if counted else np.nan,
        source=parts.source if "source" in parts else None,
    )
    groups = []
    levels = LADDER[LADDER.index(item.base) :]
    # a street's run has no district line, a community's none for its street
    levels = [lv for lv in levels if PREFIX[lv] >= len(within)]
    for level in levels:
        groups.append((level, _up(level, parts.code, areas.district)))
    if areas.city and not within:  # the city's own line, kept with the districts'
        groups.append(("district", pd.Series(areas.district, index=parts.index)))
    if item.surface and "h3_9" in parts and parts.h3_9.notna().any():
        cells = parts.h3_9.where(parts.h3_9.notna())
        groups.append(("h3_9", cells))
        parents = {c: h3.cell_to_parent(c, 8) for c in cells.dropna().unique()}
        groups.append(("h3_8", cells.map(parents)))
    out = []
    for level, keys in groups:
        frame = parts.assign(key=keys.to_numpy()).dropna(subset=["key"])
        sums = frame.groupby("key").agg(num=("num", "sum"), den=("den", "sum"))
        value = (sums.num / sums.den * item.scale).where(sums.den > 0) if counted else sums.num
        sources = frame.dropna(subset=["source"]).groupby(["key", "source"]).size()
        result = pd.DataFrame(
            {
                "level": level,
                "area_code": sums.index,
                "area_name": [
                    areas.names.get(k, k if level.startswith("h3") else None) for k in sums.index
                ],
                "value": value.astype(object).where(value.notna(), None).to_numpy(),
                "numerator": sums.num.to_numpy(),
                "denominator": sums.den.to_numpy() if counted else None,
                "basis": _basis(sources).reindex(sums.index).to_numpy(),
            }
        )
        result["passed"] = [item.judge(v, target) for v in result.value]
        out.append(result)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


WORDS = {
    "houses": "houses (房屋 records)",
    "residents": "residents (人口 records)",
    "buildings": "the buildings' own counts (楼栋户数/人数)",
}


def _basis(sources: pd.Series) -> pd.Series:
    """Per area, what its counts came from: one source named, or how many buildings from each."""
    if sources.empty:
        return pd.Series(dtype=object)
    table = sources.unstack(fill_value=0)
    single = (table > 0).sum(axis=1) == 1
    named = table.idxmax(axis=1).map(lambda s: WORDS.get(s, s))
    mixed = table.apply(
        lambda row: "; ".join(
            f"{n:,} buildings from {WORDS.get(s, s)}" for s, n in row.items() if n
        ),
        axis=1,
    )
    return named.where(single, mixed)


@dataclass
class RunResult:
    id: int
    as_of: date
    seconds: float
    timings: dict[str, float]
    summary: dict


def data_day(conn: Connection) -> date:
    """The day the loaded data stands for: the last hazard found or closed, or status change
    (a live district: about today), else today."""
    row = conn.execute(
        text("""SELECT greatest((SELECT max(found_at) FROM hazards),
                                (SELECT max(closed_at) FROM hazards),
                                (SELECT max(changed_at) FROM asset_status_history))""")
    ).scalar()
    return row.date() if row else date.today()


def run_checkup(
    engine: Engine,
    srid: int,
    as_of: date | None = None,
    area: str | None = None,
    config: CheckupConfig | None = None,
    label: str | None = None,
    user: str | None = None,
    only: list[str] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> RunResult:
    """Run every indicator (or ``only`` these) and store the run; one transaction."""
    config = config or CheckupConfig()
    chosen = indicators()
    if only:
        unknown = set(only) - set(chosen)
        if unknown:
            raise CheckupError(f"no indicator {', '.join(sorted(unknown))}")
        chosen = {k: v for k, v in chosen.items() if k in only}
    started = time.perf_counter()
    timings: dict[str, float] = {}
    with engine.begin() as conn:
        areas = Areas.read(conn)
        within = areas.prefix(area)
        as_of = as_of or data_day(conn)
        clock = time.perf_counter()
        stage(conn, srid, area, within)  # an area's run reads its own buildings, not the city's
        timings["staging"] = time.perf_counter() - clock
        ctx = Context(conn, as_of, srid, config.settings, within=within)
        run_id = conn.execute(
            text("""INSERT INTO checkup_runs (label, as_of, area_code, district_code,
                        district_name, created_by, settings)
                    VALUES (:label, :as_of, :area, :district, :name, :user,
                            CAST(:settings AS jsonb)) RETURNING id"""),
            {
                "label": label,
                "as_of": as_of,
                "area": area,
                "district": areas.home(area),
                "name": areas.names.get(areas.home(area)),
                "user": user,
                "settings": _json(config.as_json()),
            },
        ).scalar_one()
        frames = []
        for n, item in enumerate(chosen.values(), start=1):
            if progress:
                progress(n, len(chosen), item.id)
            clock = time.perf_counter()
            parts = item.compute(ctx, item)
            frames.append(
                aggregate(item, parts, areas, config.target(item), within).assign(indicator=item.id)
            )
            timings[item.id] = time.perf_counter() - clock
        results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        _store(conn, run_id, results)
        seconds = time.perf_counter() - started
        conn.execute(
            text("""UPDATE checkup_runs SET seconds = :s, timings = CAST(:t AS jsonb),
                    indicators = :n WHERE id = :id"""),
            {"s": seconds, "t": _json(timings), "n": len(chosen), "id": run_id},
        )
        conn.execute(text(f"DROP TABLE IF EXISTS {TEMPORARY}"))
        summary = summarise(conn, run_id)
    return RunResult(run_id, as_of, seconds, timings, summary)


COLUMNS = [
    "indicator",
    "level",
    "area_code",
    "area_name",
    "value",
    "numerator",
    "denominator",
    "passed",
    "basis",
]


def _store(conn: Connection, run_id: int, results: pd.DataFrame) -> None:
    if results.empty:
        return
    frame = results[COLUMNS].assign(run_id=run_id)
    buffer = io.StringIO()
    frame[["run_id", *COLUMNS]].to_csv(buffer, index=False, header=False)
    cursor = conn.connection.dbapi_connection.cursor()
    sql = f"COPY checkup_results (run_id, {', '.join(COLUMNS)}) FROM STDIN WITH (FORMAT csv)"
    with cursor, cursor.copy(sql) as copy:
        copy.write(buffer.getvalue())


def _json(value) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=float)


def run_row(conn: Connection, run_id: int):
    row = conn.execute(
        text("SELECT * FROM checkup_runs WHERE id = :id"), {"id": run_id}
    ).one_or_none()
    if row is None:
        raise NotFound(f"no check-up run {run_id}")
    return row


def summarise(conn: Connection, run_id: int) -> dict:
    """The run's top-level figures: each indicator's value for the area run for, and passed /
    failed / report-only counts per dimension."""
    run = run_row(conn, run_id)
    top = run.area_code or run.district_code
    rows = conn.execute(
        text("""SELECT indicator, value, passed, basis FROM checkup_results
                WHERE run_id = :id AND area_code = :top"""),
        {"id": run_id, "top": top},
    ).all()
    registry = indicators()
    targets = (run.settings or {}).get("targets", {})
    by_dimension: dict[str, dict[str, int]] = {}
    listed = []
    for row in rows:
        item = registry.get(row.indicator)
        if item is None:
            continue
        state = "report" if row.passed is None else ("passed" if row.passed else "failed")
        counts = by_dimension.setdefault(item.dimension, {"passed": 0, "failed": 0, "report": 0})
        counts[state] += 1
        failing = conn.execute(
            text("""SELECT level, count(*) FROM checkup_results
                    WHERE run_id = :id AND indicator = :ind AND passed = false
                      AND level IN ('street', 'community', 'grid') GROUP BY level"""),
            {"id": run_id, "ind": row.indicator},
        ).all()
        listed.append(
            {
                **item.describe(targets.get(item.id)),
                "value": row.value,
                "status": state,
                "basis": row.basis,
                "failing_areas": dict(failing),
            }
        )
    order = list(registry)
    listed.sort(key=lambda d: order.index(d["id"]))
    return {
        "run": run.id,
        "label": run.label,
        "as_of": run.as_of.isoformat(),
        "area": top,
        "district": run.district_name,
        "seconds": run.seconds,
        "dimensions": by_dimension,
        "indicators": listed,
    }
