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


def _imports_of(room: str, banned: tuple[str, ...]) -> list[str]:
    """Where files of ``room`` import one of ``banned``."""
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / room).rglob("*.py")
        for name in IMPORT.findall(path.read_text(encoding="utf-8"))
        if name in banned
    ]


def test_imports_flow_one_way():
    assert [hit for room, banned in FORBIDDEN.items() for hit in _imports_of(room, banned)] == []


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


#: rooms below the HTTP front door: no web framework or HTTP client in them
BELOW_API = ("geo", "layers", "tiles", "fixtures")
WEB = ("fastapi", "starlette", "httpx")
#: names that say nothing of what a function does
VAGUE_NAMES = re.compile(r"^\s*def (_layer|_layers|_do|_handle|_helper|_process)\(", re.MULTILINE)


def _modules() -> list[Path]:
    return [
        p
        for room in ("geo", "layers", "tiles", "api", "fixtures")
        for p in (ROOT / room).rglob("*.py")
        if "versions" not in p.parts
    ]


def test_no_web_framework_below_the_api():
    assert [hit for room in BELOW_API for hit in _imports_of(room, WEB)] == []


def test_no_two_modules_share_a_name():
    """A reader finds a behaviour by its noun: one module (or package) per name."""
    seen: dict[str, list[str]] = {}
    for path in _modules():
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if path.name == "__init__.py" and path.parent.name in ("geo", "layers", "tiles", "api"):
            continue
        seen.setdefault(name, []).append(str(path.relative_to(ROOT)))
    shared = {n: ps for n, ps in seen.items() if len(ps) > 1 and n not in ("env",)}
    assert shared == {}


def test_functions_say_what_they_do():
    hits = [
        f"{p.relative_to(ROOT)}: {m.group(1)}"
        for p in _modules()
        for m in VAGUE_NAMES.finditer(p.read_text(encoding="utf-8"))
    ]
    assert hits == []


def test_every_business_area_has_a_home():
    for area in ("policy", "records", "checkup", "assets", "safety", "models"):
        init = ROOT / "geo" / area / "__init__.py"
        assert init.exists(), area
        assert init.read_text(encoding="utf-8").lstrip().startswith('"""'), area


def test_domain_code_does_not_read_the_environment():
    """Settings are read where the program starts and handed down (create_app, the CLI)."""
    readers = re.compile(r"\b(os\.environ|os\.getenv|Settings\.from_env|\w+Settings\(\))")
    allowed = {"geo/settings.py", "geo/database.py"}  # the defaults themselves
    hits = []
    for room in ("geo", "layers", "tiles"):
        for path in (ROOT / room).rglob("*.py"):
            rel = str(path.relative_to(ROOT))
            if rel in allowed or "migrations" in path.parts:
                continue
            if readers.search(path.read_text(encoding="utf-8")):
                hits.append(rel)
    assert hits == []
