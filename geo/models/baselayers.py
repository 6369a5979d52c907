"""The natural-resource base map (自然资源底图): land use, roads, water, parks."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import Base, Editable, geometry, geometry_checks, id_column

#: Road classes of CJJ 37-2012 (urban) plus rural roads.
ROAD_CLASSES = ("expressway", "arterial", "secondary", "branch", "rural")
WATER_KINDS = ("river", "lake", "reservoir", "pond", "canal")
PARK_KINDS = ("comprehensive", "community", "pocket", "linear", "scenic")


class LandUseParcel(Editable, Base):
    """地类图斑: a land-use parcel classed by GB/T 21010-2017 (三调 land-use classification).

    ``class_code`` is the classification code (e.g. 0701 urban residential, 0601 industrial);
    ``area_m2`` is measured in the metric CRS at load time.
    """

    __tablename__ = "landuse_parcels"
    __table_args__ = (
        CheckConstraint("class_code ~ '^[0-9]{2}([0-9H][0-9])?$'", name="class_code_format"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    class_code: Mapped[str] = mapped_column(String(5), nullable=False, index=True)
    class_name: Mapped[str] = mapped_column(String(50), nullable=False)
    area_m2: Mapped[float] = mapped_column(Numeric(14, 1), nullable=False)
    geom = geometry("MULTIPOLYGON")


class Road(Editable, Base):
    """道路: centre lines by class."""

    __tablename__ = "roads"
    __table_args__ = (
        CheckConstraint(f"class IN {ROAD_CLASSES!r}", name="class_known"),
        CheckConstraint("width_m > 0 AND width_m < 200", name="width_range"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    road_class: Mapped[str] = mapped_column("class", String(16), nullable=False)
    width_m: Mapped[float] = mapped_column(Numeric(5, 1), nullable=False)
    length_m: Mapped[float] = mapped_column(Numeric(12, 1), nullable=False)
    geom = geometry("LINESTRING")


class WaterBody(Editable, Base):
    """水系: rivers, lakes, reservoirs and ponds as areas."""

    __tablename__ = "water"
    __table_args__ = (
        CheckConstraint(f"kind IN {WATER_KINDS!r}", name="kind_known"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    area_m2: Mapped[float] = mapped_column(Numeric(14, 1), nullable=False)
    geom = geometry("MULTIPOLYGON")


class Park(Editable, Base):
    """公园绿地: parks and green spaces, the denominator of the park-radius indicator."""

    __tablename__ = "parks"
    __table_args__ = (
        CheckConstraint(f"kind IN {PARK_KINDS!r}", name="kind_known"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    area_m2: Mapped[float] = mapped_column(Numeric(14, 1), nullable=False)
    geom = geometry("MULTIPOLYGON")
