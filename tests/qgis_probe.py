"""Read our service with Debian's PyQGIS, as a QGIS user would, and write what was seen as JSON.

Run by tests/test_qgis.py under the system Python (never imported by pytest, whose virtualenv has
no QGIS): ``QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_probe.py BASE OUT_DIR``. It
only observes (counts, ids, the requests QGIS sent, rendered PNGs); the test judges.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsFeatureRequest,
    QgsGeometry,
    QgsMapRendererParallelJob,
    QgsMapSettings,
    QgsNetworkAccessManager,
    QgsProject,
    QgsRectangle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSize

#: the date fields the subset-string check may use, by layer
DATE_FIELDS = {"inspections": "inspected_at", "hazards": "found_at"}


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.loads(answer.read())


def all_items(base: str, layer_id: str, query: str = "") -> list[dict]:
    """Every feature of a layer through our API (following next links): the oracle."""
    url = f"{base}/collections/{layer_id}/items?f=json&limit=10000{query}"
    out = []
    while url:
        page = get_json(url)
        out.extend(page["features"])
        url = next((k["href"] for k in page.get("links", []) if k.get("rel") == "next"), None)
    return out


def oapif(base: str, layer_id: str) -> QgsVectorLayer:
    uri = f"url='{base}' typename='{layer_id}' restrictToRequestBBOX='1'"
    return QgsVectorLayer(uri, layer_id, "OAPIF")


def main(base: str, out_dir: Path) -> dict:
    requested: list[str] = []
    # called synchronously in whichever thread sends the request (a signal would need this
    # thread's event loop to run)
    QgsNetworkAccessManager.setRequestPreprocessor(
        lambda request: requested.append(request.url().toString())
    )
    result: dict = {"qgis": QgsApplication.instance().applicationVersion() or "", "layers": {}}
    collections = get_json(f"{base}/collections?f=json")["collections"]
    for collection in collections:
        layer_id = collection["id"]
        matched = get_json(f"{base}/collections/{layer_id}/items?f=json&limit=1")
        layer = oapif(base, layer_id)
        seen = {"valid": layer.isValid(), "numberMatched": matched.get("numberMatched")}
        if layer.isValid():
            features = list(layer.getFeatures())
            seen |= {
                "featureCount": layer.featureCount(),
                "iterated": len(features),
                "fields": layer.fields().names(),
            }
            if matched["features"] and "id" in layer.fields().names():
                first = matched["features"][0]["id"]
                request = QgsFeatureRequest().setFilterExpression(f'"id" = {json.dumps(first)}')
                found = [f["id"] for f in layer.getFeatures(request)]
                seen["id_check"] = {"server": first, "qgis": found}
        result["layers"][layer_id] = seen

    result["bbox"] = bbox_check(base, collections, requested)
    result["subset"] = subset_checks(base, {c["id"] for c in collections}, requested)
    result["projects"] = project_renders(base, out_dir)
    return result


def bbox_check(base: str, collections: list[dict], requested: list[str]) -> dict:
    """A view of a quarter of a small layer's extent: what QGIS fetched and kept."""
    point = next(
        (c for c in collections if c["id"] in ("facilities", "hazards", "sensors", "assets")), None
    )
    if point is None:
        return {"skipped": "no point layer is public"}
    west, south, east, north = point["extent"]["spatial"]["bbox"][0][:4]
    box = (west, south, (west + east) / 2, (south + north) / 2)
    layer = oapif(base, point["id"])
    before = len(requested)
    rect = QgsRectangle(*box)
    got = [f.geometry() for f in layer.getFeatures(QgsFeatureRequest().setFilterRect(rect))]
    expected = get_json(
        f"{base}/collections/{point['id']}/items?f=json&limit=1&bbox={','.join(map(str, box))}"
    )["numberMatched"]
    return {
        "layer": point["id"],
        "box": box,
        "count": len(got),
        "expected": expected,
        "outside": sum(1 for g in got if not g.intersects(QgsGeometry.fromRect(rect))),
        "requests": [u for u in requested[before:] if "/items" in u],
    }


def subset_checks(base: str, public: set[str], requested: list[str]) -> list[dict]:
    """Subset strings on a date field: an open start (<=) and an open end (>=)."""
    out = []
    for layer_id, field in DATE_FIELDS.items():
        if layer_id not in public:
            continue
        values = sorted(f["properties"][field] for f in all_items(base, layer_id))
        values = [v for v in values if v]
        if not values:
            continue
        middle = values[len(values) // 2][:10]
        for op in ("<=", ">="):
            layer = oapif(base, layer_id)
            subset = f"\"{field}\" {op} '{middle}'"
            layer.setSubsetString(subset)
            before = len(requested)
            count = sum(1 for _ in layer.getFeatures())
            expected = sum(1 for v in values if (v[:10] <= middle if op == "<=" else v >= middle))
            out.append(
                {
                    "layer": layer_id,
                    "subset": subset,
                    "count": count,
                    "expected": expected,
                    "requests": [u for u in requested[before:] if "/items" in u],
                }
            )
    return out


def project_renders(base: str, out_dir: Path) -> dict:
    """Each map's project loaded as QGIS opens it and rendered to a PNG."""
    out = {}
    for spec in get_json(f"{base}/maps")["maps"]:
        path = out_dir / f"{spec['id']}.qgs"
        with urllib.request.urlopen(f"{base}/maps/{spec['id']}/project.qgs", timeout=60) as a:
            path.write_bytes(a.read())
        project = QgsProject.instance()
        project.clear()
        read = project.read(str(path))
        root = project.layerTreeRoot()
        shown = [layer for layer in root.layerOrder() if root.findLayer(layer.id()).isVisible()]
        settings = QgsMapSettings()
        settings.setLayers(shown)
        settings.setDestinationCrs(project.crs())
        settings.setBackgroundColor(project.backgroundColor())
        settings.setOutputSize(QSize(800, 600))
        settings.setExtent(project.viewSettings().defaultViewExtent())
        job = QgsMapRendererParallelJob(settings)
        job.start()
        job.waitForFinished()
        image = job.renderedImage()
        png = out_dir / f"{spec['id']}.png"
        image.save(str(png), "PNG")
        background = project.backgroundColor().rgb()
        colours, painted, total = set(), 0, 0
        for y in range(0, image.height(), 3):
            for x in range(0, image.width(), 3):
                pixel = image.pixel(x, y)
                colours.add(pixel)
                painted += pixel != background
                total += 1
        out[spec["id"]] = {
            "read": read,
            "crs": project.crs().authid(),
            "layers": {
                layer.name(): {"valid": layer.isValid(), "provider": layer.providerType()}
                for layer in project.mapLayers().values()
            },
            "shown": [layer.name() for layer in shown],
            "png": str(png),
            "colours": len(colours),
            "painted": painted / total,
            "errors": [e.message for e in job.errors()],
        }
    return out


if __name__ == "__main__":
    app = QgsApplication([], False)
    app.initQgis()
    target = Path(sys.argv[2])
    target.mkdir(parents=True, exist_ok=True)
    found = main(sys.argv[1].rstrip("/"), target)
    (target / "probe.json").write_text(json.dumps(found, ensure_ascii=False, indent=1))
    app.exitQgis()
