"""区自然资源和规划局's land-use parcels of the third national land survey (第三次全国国土调查, 三调).

Handed over as a zipped Shapefile in CGCS2000 / 3-degree Gauss-Krüger CM 120°E (EPSG:4549), its
text GBK-encoded (a .cpg says so), with the survey's field abbreviations: BSM 标识码, TBBH 图斑编号,
DLBM 地类编码 and DLMC 地类名称 (GB/T 21010-2017), QSXZ 权属性质, QSDWMC 权属单位名称, ZLDWMC 坐落单位
名称, TBMJ 图斑面积 (m²). Each parcel is matched to the grid holding its point on surface.
"""

from __future__ import annotations

from layers.catalogue import NATURAL_RESOURCES, Ingest
from layers.declaration import Field, departmental_layer

LAYER = departmental_layer(
    id="landuse_nrb",
    title_zh="三调地类图斑",
    title_en="Land-use parcels (third land survey)",
    department=NATURAL_RESOURCES,
    description="区自然资源和规划局提供的第三次国土调查（三调）地类图斑。"
    "Land-use parcels of the third national land survey (三调) by GB/T 21010-2017 "
    "class, from the natural resources bureau's Shapefile (EPSG:4549).",
    ingest=Ingest(
        key="parcel_id",
        match=("grid",),
        department_aliases=("自然资源局", "自然资源和规划局", "natural resources"),
    ),
    fields=(
        Field("parcel_id", ("BSM", "标识码"), title_zh="标识码", required=True),
        Field("parcel_number", ("TBBH", "图斑编号"), title_zh="图斑编号"),
        Field("class_code", ("DLBM", "地类编码"), title_zh="地类编码", required=True),
        Field("class_name", ("DLMC", "地类名称"), title_zh="地类名称"),
        Field("tenure", ("QSXZ", "权属性质"), title_zh="权属性质"),
        Field("owner_unit", ("QSDWMC", "权属单位名称"), title_zh="权属单位名称"),
        Field("located_unit", ("ZLDWMC", "坐落单位名称"), title_zh="坐落单位名称"),
        Field("area_m2", ("TBMJ", "图斑面积"), type="number", title_zh="图斑面积(平方米)"),
    ),
    sharing_level="conditional",
    opening_level="restricted",
    update_frequency="yearly",
)
