"""四标四实 records: the grid workers' write path (types and checks, store, edits and reviews,
history, offline sync). Knows nothing of HTTP: api/routes translate. What a caller sees of a record
is the layer's read plan (geo.policy.plan), the same one the features path obeys."""

from geo.records.types import TYPES, RecordType, record_type

__all__ = ["TYPES", "RecordType", "record_type"]
