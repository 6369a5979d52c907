"""The house rules a reviewer would otherwise check by hand."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: a room may import only the rooms below it: api → (tiles, layers) → geo
FORBIDDEN = {
    "geo": ("api", "layers", "tiles", "fixtures"),
    "tiles": ("api",),
    "layers": ("api",),
    "fixtures": ("api", "layers", "tiles"),
}
IMPORT = re.compile(r"^\s*(?:from|import)\s+(\w+)", re.MULTILINE)
CDN = re.compile(
    r"https?://(cdn\.|unpkg\.com|cdnjs\.|[a-z0-9.-]*jsdelivr|fonts\.googleapis|api\.mapbox|[a-z0-9.-]*tianditu)"
)


def test_imports_flow_one_way():
    broken = []
    for room, banned in FORBIDDEN.items():
        for path in (ROOT / room).rglob("*.py"):
            for name in IMPORT.findall(path.read_text(encoding="utf-8")):
                if name in banned:
                    broken.append(f"{path.relative_to(ROOT)} imports {name}")
    assert broken == []


def test_nothing_served_points_at_the_internet():
    hits = []
    for room in ("api", "tiles", "layers", "geo"):
        for path in (ROOT / room).rglob("*"):
            if (
                path.suffix in (".py", ".html", ".js", ".json", ".j2", ".css")
                and "vendor" not in path.parts
            ) and CDN.search(path.read_text(encoding="utf-8", errors="replace")):
                hits.append(str(path.relative_to(ROOT)))
    assert hits == []
