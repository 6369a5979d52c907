"""CQL2 filters (OGC API – Features Part 3) to SQLAlchemy expressions, through pygeofilter.

We parse with pygeofilter and evaluate with its SQLAlchemy backend, changing three things: an
attribute must be a queryable of the layer (an unknown name is the caller's mistake, not NULL),
geometry literals are bound parameters in the layer's CRS (the backend assumes EPSG:4326), and
personal fields the caller may not see cannot be filtered on (a filter is an oracle).
"""

from __future__ import annotations

import json

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


class FilterError(BadRequest):
    """The filter cannot be used; the message says why, for the caller."""


def parse(text: str, lang: str = "cql2-text"):
    try:
        if lang == "cql2-json":
            return parse_cql2_json(json.loads(text))
        return parse_cql2_text(text)
    except FilterError:
        raise
    except Exception as exc:  # the parsers raise many kinds; all mean "malformed"
        raise FilterError(
            f"the {lang} filter could not be parsed: {str(exc).splitlines()[0][:200]}"
        ) from exc


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
    except (KeyError, NotImplementedError, AttributeError, TypeError) as exc:
        raise FilterError(
            f"the filter uses something this service does not support: {exc}"
        ) from exc


__all__ = ["FilterError", "Geometry", "parse", "to_sql"]
