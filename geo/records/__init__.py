"""四标四实 records: the grid workers' write path (types and checks, store, edits and reviews,
history, offline sync). Knows nothing of HTTP: api/routes/records.py translates."""

from geo.records.types import TYPES, RecordError, RecordType, record_type

__all__ = ["TYPES", "RecordError", "RecordType", "record_type"]
