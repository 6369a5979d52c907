"""区应急管理局's list of emergency shelters (应急避难场所), handed over as a CSV.

The bureau picks positions in a consumer map app, so the coordinates are GCJ-02 (``--crs gcj02``).
Each shelter has an effective sheltering area and a capacity: the numerator of the city check-up's
shelter area per resident (人均避难场所面积). The contact person and phone are personal data.
Shelters are public information (无条件共享, 无条件开放); their contacts are masked for the public.
"""

from __future__ import annotations

from layers.catalogue import EMERGENCY, Ingest
from layers.declaration import Field, departmental_layer

LAYER = departmental_layer(
    id="emergency_shelters",
    title_zh="应急避难场所",
    title_en="Emergency shelters",
    department=EMERGENCY,
    description="区应急管理局提供的应急避难场所名录，含有效避难面积与可容纳人数。"
    "Emergency shelters with their effective area and capacity, from the emergency "
    "management bureau's list (GCJ-02 picks, converted to CGCS2000 at ingest).",
    ingest=Ingest(
        key="code",
        match=("grid", "building", "address"),
        address_field="address",
        building_within_m=100.0,
        address_within_m=300.0,
        department_aliases=("应急局", "emergency"),
    ),
    fields=(
        Field("code", ("编号", "场所编号", "code"), title_zh="编号", required=True),
        Field("name", ("名称", "场所名称", "避难场所名称", "name"), title_zh="名称", required=True),
        Field("address", ("地址", "详细地址", "address"), title_zh="地址"),
        Field("shelter_type", ("类型", "场所类型", "type"), title_zh="类型"),
        Field(
            "effective_area_m2",
            ("有效避难面积(平方米)", "有效避难面积", "有效面积(平方米)", "effective_area_m2"),
            type="number",
            title_zh="有效避难面积(平方米)",
        ),
        Field(
            "capacity",
            ("可容纳人数", "容纳人数", "capacity"),
            type="integer",
            title_zh="可容纳人数",
        ),
        Field("manager", ("管理单位", "manager"), title_zh="管理单位"),
        Field("contact_name", ("联系人", "contact"), title_zh="联系人", personal="name"),
        Field(
            "contact_phone", ("联系电话", "电话", "phone"), title_zh="联系电话", personal="phone"
        ),
    ),
    sharing_level="unconditional",
    opening_level="open",
    update_frequency="quarterly",
)
