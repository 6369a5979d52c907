"""The schema as GeoAlchemy2 models; Alembic migrations in ``geo/migrations`` create it."""

from geo.models.base import Base
from geo.models.baselayers import LandUseParcel, Park, Road, WaterBody
from geo.models.checkup_runs import CheckupResult, CheckupRun
from geo.models.divisions import AdminArea, Grid
from geo.models.editing import RecordReview, RecordVersion, SyncReceipt
from geo.models.facts import Facility, House, Organisation, Resident
from geo.models.hazards import (
    DutyContact,
    FireAlarm,
    Hazard,
    HazardStep,
    Inspection,
    InspectionHazard,
    Sensor,
    SensorReading,
    SensorWarning,
)
from geo.models.idle_assets import Asset, AssetPhoto, AssetStatusChange, AssetView
from geo.models.standards import Address, Building
from geo.models.system import (
    ApiToken,
    AuditEntry,
    CatalogueEntry,
    Patrol,
    User,
    UserGrid,
    Verification,
)
from geo.policy.access import LayerAccess

#: Tables whose rows carry version/created_at/updated_at and the touch trigger.
EDITABLE_TABLES = tuple(
    m.__tablename__
    for m in (
        AdminArea,
        Grid,
        Address,
        Building,
        House,
        Resident,
        Organisation,
        Facility,
        LandUseParcel,
        Road,
        WaterBody,
        Park,
        Hazard,
        Inspection,
        Sensor,
        Asset,
        CatalogueEntry,
        User,
    )
)


def access_of(table: str) -> LayerAccess:
    """The access rules declared with a base table's model (none: everything is open)."""
    for mapper in Base.registry.mappers:
        model = mapper.class_
        if getattr(model, "__tablename__", None) == table:
            return getattr(model, "__access__", None) or LayerAccess()
    return LayerAccess()


__all__ = [
    "access_of",
    "AdminArea",
    "Address",
    "ApiToken",
    "Asset",
    "AssetPhoto",
    "AssetStatusChange",
    "AssetView",
    "AuditEntry",
    "Base",
    "Building",
    "CatalogueEntry",
    "CheckupResult",
    "CheckupRun",
    "EDITABLE_TABLES",
    "Facility",
    "Grid",
    "DutyContact",
    "FireAlarm",
    "Hazard",
    "HazardStep",
    "InspectionHazard",
    "SensorWarning",
    "House",
    "Inspection",
    "LandUseParcel",
    "Organisation",
    "Park",
    "RecordReview",
    "RecordVersion",
    "Resident",
    "Road",
    "Sensor",
    "SensorReading",
    "SyncReceipt",
    "User",
    "UserGrid",
    "Patrol",
    "Verification",
    "WaterBody",
]
