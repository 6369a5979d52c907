"""The district round trip at whatever scale the database holds (Lishui after ``make demo``):
``city export`` of the loaded district, then ``city import --replace`` of that export into a
fresh database, with the time of each step, rows per second, and whether every table's checksum
came back the same.

    python benchmarks/city_roundtrip.py            # the database of DATABASE_URL / the cluster

There is no peer to run beside: no open-source tool imports a 四标四实 district. The figure to
watch is rows per second of the validated import (every row checked against the tables' rules
before anything is loaded). Results go to benchmarks/results/.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo import district, migrate  # noqa: E402
from geo.database import create_database, database_url, drop_database, engine  # noqa: E402
from geo.policy.roles import Viewer  # noqa: E402
from geo.settings import Settings  # noqa: E402
from layers.basedata import manifest as manifests  # noqa: E402
from layers.basedata.export import export_district  # noqa: E402
from layers.basedata.importer import import_district  # noqa: E402


def main() -> None:
    settings = Settings.from_env()
    source = database_url()
    target = (
        make_url(source)
        .set(database="onemap_bench_roundtrip")
        .render_as_string(hide_password=False)
    )
    who = Viewer(username="bench:roundtrip", role="admin")
    with tempfile.TemporaryDirectory(prefix="onemap-roundtrip-") as folder:
        started = time.perf_counter()
        with engine(source).begin() as conn:
            counts = export_district(conn, Path(folder), who, settings.spatial.metric_srid)
            before = district.checksums(conn)
        exported = time.perf_counter() - started
        size = (Path(folder) / "district.gpkg").stat().st_size
        create_database(target, replace=True)
        migrate.upgrade(target)
        parsed = manifests.load(Path(folder) / "manifest.toml")
        started = time.perf_counter()
        with engine(target).connect() as conn:
            transaction = conn.begin()
            report = import_district(
                conn,
                parsed,
                replace=True,
                metric_srid=settings.spatial.metric_srid,
                hash_key=settings.secrets.id_hash_key,
                viewer=who,
            )
            transaction.commit() if report.loaded else transaction.rollback()
        imported = time.perf_counter() - started
    with engine(target).connect() as conn:
        after = district.checksums(conn)
    drop_database(target)
    rows = sum(counts.values())
    result = {
        "date": dt.date.today().isoformat(),
        "rows": rows,
        "counts": counts,
        "geopackage_bytes": size,
        "export_s": round(exported, 1),
        "import_s": round(imported, 1),
        "import_steps_s": report.timings,
        "import_rows_per_s": round(rows / imported),
        "status": report.status,
        "same_checksums": after[2] == before[2],
        "tables_differing": [t for t in district.TABLES if after[1][t] != before[1][t]],
    }
    print(json.dumps(result, ensure_ascii=False, indent=2))
    out = ROOT / "benchmarks" / "results" / f"city-roundtrip-{result['date']}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
