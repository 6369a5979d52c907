"""CQL2 filters (OGC API – Features Part 3) to SQLAlchemy expressions, through pygeofilter.

We parse with pygeofilter and evaluate with its SQLAlchemy backend, changing three things: an
attribute must be a queryable of the layer (an unknown name is the caller's mistake, not NULL),
geometry literals are bound parameters in the layer's CRS (the backend assumes EPSG:4326), and
personal fields the caller may not see cannot be filtered on (a filter is an oracle).
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime

import shapely
import shapely.geometry
from geoalchemy2 import Geometry
from pygeofilter import ast, values
from pygeofilter.backends.evaluator import handle
from pygeofilter.backends.sqlalchemy.evaluate import SQLAlchemyFilterEvaluator
from pygeofilter.parsers.cql2_json import parse as parse_cql2_json
from pygeofilter.parsers.cql2_text import parse as parse_cql2_text
from sqlalchemy import bindparam, func
from sqlalchemy.sql import ColumnElement

from geo.errors import BadRequest
from geo.settings import STORAGE_SRID
from geo.text import text_problem


class FilterError(BadRequest):
    """The filter cannot be used; the message says why, for the caller."""


#: bounds on one filter: its text, its nodes, its nesting, a geometry literal's vertices
MAX_FILTER_CHARS = 8_000
MAX_NODES = 300
MAX_DEPTH = 40
MAX_VERTICES = 10_000
#: the kinds of value a queryable holds (from the catalogue's JSON types and database types)
NUMERIC = ("integer", "number")
RELATE_PATTERN = re.compile(r"^[012TF*]{9}$")


def parse(text: str, lang: str = "cql2-text"):
    """The filter's syntax tree, or a FilterError (400) that says what is wrong with it."""
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"the filter is longer than {MAX_FILTER_CHARS:,} characters: simplify it")
    problem = text_problem(text)
    if problem:
        raise FilterError(f"the filter {problem}")
    try:
        if lang == "cql2-json":
            node = parse_cql2_json(json.loads(text, parse_constant=_no_constant))
        else:
            node = parse_cql2_text(text)
    except FilterError:
        raise
    except RecursionError as exc:
        raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels: simplify it") from exc
    except Exception as exc:  # the parsers raise many kinds; all mean "malformed"
        raise FilterError(f"the {lang} filter could not be parsed: {_first_line(exc)}") from exc
    if not isinstance(node, ast.Condition | ast.Predicate):
        raise FilterError(
            "the filter must be a condition (e.g. floors > 3), not a bare value or expression"
        )
    return node


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _no_constant(name: str):
    raise FilterError(f"the cql2-json filter holds {name}: numbers must be finite")


def check(node, kinds: dict[str, str]) -> set[str]:
    """Refuse, before any SQL, a filter whose values do not fit the queryables' types (``kinds``:
    name → string, integer, number, boolean, date, datetime, geometry, array, object), or which
    is too large or too deep; return the names it reads."""
    names: set[str] = set()
    stack = [(node, 1)]
    count = 0
    while stack:
        current, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise FilterError(f"the filter has more than {MAX_NODES} terms: simplify it")
        if depth > MAX_DEPTH:
            raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels: simplify it")
        if isinstance(current, ast.Attribute):
            if not isinstance(current.name, str):
                raise FilterError('a property is named by a text: {"property": "floors"}')
            names.add(current.name)
            continue
        _check_value(current)
        if isinstance(current, ast.Function):
            raise FilterError(f"functions such as {current.name}() are not offered in filters")
        if isinstance(current, ast.Node):
            _check_node(current, kinds)
            stack.extend((sub, depth + 1) for sub in current.get_sub_nodes())
        elif isinstance(current, list | tuple):
            stack.extend((sub, depth + 1) for sub in current)
    return names


def _check_value(value) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise FilterError("the filter holds a number that is not finite")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise FilterError("the filter holds a whole number too large for any field")
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            raise FilterError(f"a text in the filter {problem}")
    if isinstance(value, values.Geometry):
        vertices = len(shapely.get_coordinates(shapely.geometry.shape(value.geometry)))
        if vertices > MAX_VERTICES:
            raise FilterError(f"a geometry in the filter has over {MAX_VERTICES:,} vertices")


def _is_field(operand) -> bool:
    return isinstance(operand, ast.Attribute | ast.Arithmetic)


def _kind_of(operand, kinds: dict[str, str]) -> str | None:
    """The kind of an operand: a queryable's kind (None for a name that is not one: the
    evaluator refuses it, listing the queryables), or a literal's ("other" when it is no value
    a field can hold: a list, an interval, an object)."""
    if isinstance(operand, ast.Attribute):
        return kinds.get(operand.name) if isinstance(operand.name, str) else "other"
    if isinstance(operand, ast.Arithmetic):
        return "number"
    if isinstance(operand, bool):
        return "boolean"
    if isinstance(operand, int | float):
        return "number"
    if isinstance(operand, str):
        return "string"
    if isinstance(operand, datetime):
        return "datetime"
    if isinstance(operand, date):
        return "date"
    if isinstance(operand, values.Geometry | values.Envelope):
        return "geometry"
    return "other"


def _comparable(a: str | None, b: str | None) -> bool:
    if "other" in (a, b):
        return False
    if a is None or b is None:
        return True  # unknown names are refused by the evaluator, with the list of queryables
    if a in NUMERIC and b in NUMERIC:
        return True
    if {a, b} <= {"date", "datetime"}:
        return True
    return a == b


def _fits(node, lhs, rhs, kinds: dict[str, str]) -> None:
    left, right = _kind_of(lhs, kinds), _kind_of(rhs, kinds)
    if not _comparable(left, right):
        what = lhs.name if isinstance(lhs, ast.Attribute) else str(lhs)
        hint = {
            "date": "DATE('2024-01-31')",
            "datetime": "TIMESTAMP('2024-01-31T08:00:00Z')",
            "string": "'text'",
            "number": "a number",
            "integer": "a whole number",
            "boolean": "true or false",
        }.get(left or "", "a value of its type")
        raise FilterError(
            f"'{what}' holds {left} values and cannot be compared with {right}: compare it with {hint}"
        )


def _check_node(node, kinds: dict[str, str]) -> None:
    if isinstance(node, ast.Between | ast.In | ast.Like | ast.IsNull) and not _is_field(node.lhs):
        raise FilterError("a condition tests a field (or arithmetic on one), not a bare value")
    if isinstance(node, ast.In) and not isinstance(node.sub_nodes, list):
        raise FilterError("IN takes a list of values, e.g. kind IN ('school', 'clinic')")
    if isinstance(node, ast.Comparison) and not (_is_field(node.lhs) or _is_field(node.rhs)):
        raise FilterError("a comparison needs a field on one side, e.g. floors > 3")
    if isinstance(node, ast.Comparison | ast.Between | ast.In):
        lhs = node.lhs
        others = (
            [node.rhs]
            if isinstance(node, ast.Comparison)
            else [node.low, node.high]
            if isinstance(node, ast.Between)
            else list(node.sub_nodes)
        )
        for other in others:
            _fits(node, lhs, other, kinds)
        ordered = isinstance(node, ast.Between | ast.Comparison) and not isinstance(
            node, ast.Equal | ast.NotEqual
        )
        if ordered and _kind_of(lhs, kinds) in ("boolean", "geometry", "array", "object"):
            raise FilterError("only numbers, dates and texts can be ordered in a filter")
    elif isinstance(node, ast.Like):
        if _kind_of(node.lhs, kinds) not in ("string", None) or not isinstance(node.pattern, str):
            raise FilterError(
                "LIKE compares a text field with a text pattern, e.g. name LIKE '%路%'"
            )
    elif isinstance(node, ast.Arithmetic):
        for operand in (node.lhs, node.rhs):
            if _kind_of(operand, kinds) not in (*NUMERIC, None):
                raise FilterError("arithmetic in a filter works on numbers only")
        if isinstance(node, ast.Div) and isinstance(node.rhs, int | float) and node.rhs == 0:
            raise FilterError("the filter divides by zero")
    elif isinstance(node, ast.SpatialComparisonPredicate | ast.BBox | ast.Relate):
        operands = [node.lhs] if isinstance(node, ast.BBox) else [node.lhs, node.rhs]
        if any(_kind_of(o, kinds) not in ("geometry", None) for o in operands) or any(
            not isinstance(o, ast.Attribute | values.Geometry | values.Envelope) for o in operands
        ):
            raise FilterError(
                "spatial predicates compare geometries, e.g. S_INTERSECTS(geom, POINT(119 31.6))"
            )
        if isinstance(node, ast.Relate) and not RELATE_PATTERN.fullmatch(str(node.pattern)):
            raise FilterError("a RELATE pattern is 9 characters of 0, 1, 2, T, F or *")
    elif isinstance(node, ast.TemporalPredicate):
        if _kind_of(node.lhs, kinds) not in ("date", "datetime", None):
            raise FilterError("temporal predicates take a date or time field")
    elif isinstance(node, ast.Combination):
        for operand in (node.lhs, node.rhs):
            if not isinstance(operand, ast.Condition | ast.Predicate):
                raise FilterError("AND and OR join conditions, not bare values")
    elif isinstance(node, ast.Not) and not isinstance(node.sub_node, ast.Condition | ast.Predicate):
        raise FilterError("NOT applies to a condition, not a bare value")


class _Evaluator(SQLAlchemyFilterEvaluator):
    def __init__(self, columns: dict[str, ColumnElement], forbidden: set[str], srid: int):
        super().__init__(columns, undefined_as_null=False)
        self.forbidden = forbidden
        self.srid = srid

    @handle(ast.Attribute)
    def attribute(self, node):
        if node.name in self.forbidden:
            raise FilterError(
                f"'{node.name}' is personal data: filtering on it needs a role that may see it"
            )
        if node.name not in self.field_mapping:
            known = ", ".join(sorted(self.field_mapping))
            raise FilterError(f"unknown property '{node.name}' in filter; queryables are: {known}")
        return self.field_mapping[node.name]

    @handle(values.Geometry)
    def geometry(self, node):
        return self._geometry(json.dumps(node.__geo_interface__))

    @handle(values.Envelope)
    def envelope(self, node):
        return func.ST_MakeEnvelope(node.x1, node.y1, node.x2, node.y2, STORAGE_SRID)

    @handle(ast.BBox)
    def bbox(self, node, lhs):
        return func.ST_Intersects(
            lhs, func.ST_MakeEnvelope(node.minx, node.miny, node.maxx, node.maxy, STORAGE_SRID)
        )

    def _geometry(self, geojson: str):
        geom = func.ST_GeomFromGeoJSON(bindparam(None, geojson, unique=True))
        geom = func.ST_SetSRID(geom, 4326)  # CQL2 literals are CRS84 (lon/lat)
        return (
            func.ST_Transform(geom, self.srid)
            if self.srid not in (4326, 4490)
            else func.ST_SetSRID(geom, self.srid)
        )


def to_sql(
    node,
    columns: dict[str, ColumnElement],
    forbidden: set[str] = frozenset(),
    srid: int = STORAGE_SRID,
) -> ColumnElement:
    """The filter as a boolean SQL expression over ``columns`` (name → column)."""
    try:
        return _Evaluator(columns, set(forbidden), srid).evaluate(node)
    except FilterError:
        raise
    except RecursionError as exc:
        raise FilterError(f"the filter nests deeper than {MAX_DEPTH} levels: simplify it") from exc
    except (KeyError, NotImplementedError, AttributeError, TypeError, ValueError) as exc:
        raise FilterError(
            f"the filter uses something this service does not support: {exc}"
        ) from exc


__all__ = ["FilterError", "Geometry", "check", "parse", "to_sql"]
