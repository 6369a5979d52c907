"""The indicator registry: each indicator declared once, with what a planner needs to read it
(names, dimension, level, unit, definition, target and direction, source standard) and the
function that computes it.

A computation returns *parts*: rows keyed by the finest area they belong to (a grid code, or a
community code for indicators that only make sense per community) and, for surface-like
indicators, an H3 cell at resolution 9, each with a numerator and a denominator. The engine sums
parts up the ladder (grid → community → street → district, and cell 9 → cell 8), so that every
level is computed from the same parts and always adds up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: the eight MOHURD dimensions (城市体检指标体系)
DIMENSIONS = {
    "ecology": "生态宜居",
    "health": "健康舒适",
    "safety": "安全韧性",
    "transport": "交通便捷",
    "townscape": "风貌特色",
    "tidiness": "整洁有序",
    "inclusion": "多元包容",
    "vitality": "创新活力",
}
#: the levels of the 2023 indicator system
LEVELS = {"dwelling": "住房", "community": "小区(社区)", "block": "街区", "city": "城区"}
DIRECTIONS = (">=", "<=", "report")


@dataclass(frozen=True)
class Indicator:
    id: str
    name_zh: str
    name_en: str
    dimension: str
    level: str
    unit: str
    definition: str
    standard: str
    compute: Callable
    target: float | None = None
    direction: str = "report"
    scale: float = 1.0  # value = numerator / denominator × scale (100 for a percentage)
    base: str = "grid"  # the finest area its parts are keyed by: grid or community
    surface: bool = False  # also given per H3 cell (resolution 8 and 9)
    settings: dict = field(default_factory=dict)  # radii, thresholds: overridable per city
    better: str | None = None  # higher | lower: which way is an improvement (from direction)
    summed: bool = False  # the value is a sum (a count, an area), not numerator ÷ denominator

    @property
    def improves(self) -> str | None:
        """Which way a change is an improvement: higher, lower, or None (neither)."""
        if self.better:
            return self.better
        return {">=": "higher", "<=": "lower"}.get(self.direction)

    def judge(self, value: float | None, target: float | None) -> bool | None:
        """Whether ``value`` meets ``target`` (None: report only, or nothing to judge)."""
        if value is None or target is None or self.direction == "report":
            return None
        return value >= target - 1e-9 if self.direction == ">=" else value <= target + 1e-9

    def describe(self, target: float | None = None) -> dict:
        target = self.target if target is None else target
        return {
            "id": self.id,
            "name_zh": self.name_zh,
            "name_en": self.name_en,
            "dimension": self.dimension,
            "dimension_zh": DIMENSIONS[self.dimension],
            "level": self.level,
            "level_zh": LEVELS[self.level],
            "unit": self.unit,
            "definition": self.definition,
            "standard": self.standard,
            "target": target,
            "direction": self.direction,
            "surface": self.surface,
            "better": self.improves,
        }


REGISTRY: dict[str, Indicator] = {}


def indicator(**declared) -> Callable[[Callable], Callable]:
    """Register the decorated function as an indicator's computation."""

    def register(compute: Callable) -> Callable:
        item = Indicator(compute=compute, **declared)
        if item.id in REGISTRY:
            raise ValueError(f"indicator {item.id} is declared twice")
        if item.dimension not in DIMENSIONS or item.level not in LEVELS:
            raise ValueError(f"indicator {item.id}: unknown dimension or level")
        if item.direction not in DIRECTIONS:
            raise ValueError(f"indicator {item.id}: direction must be one of {DIRECTIONS}")
        REGISTRY[item.id] = item
        return compute

    return register


def indicators() -> dict[str, Indicator]:
    """Every registered indicator (importing the modules that declare them)."""
    from geo.checkup import (  # noqa: F401  (each module registers its indicators)
        coverage,
        fire,
        housing_stock,
        land,
        life_circle,
        per_capita,
        stewardship,
    )

    return REGISTRY
