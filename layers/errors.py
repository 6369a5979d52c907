"""The one error of departmental ingest: the file fails as a whole, and nothing is changed.

Per-feature problems are not errors: they are rejections or repairs in the quality report. An
IngestError is for what makes the whole file unusable (unreadable, no geometry, unknown or wrong
CRS, an undeclared layer); its message says what to fix.
"""

from __future__ import annotations


class IngestError(ValueError):
    """The file cannot be ingested as a whole; the database is left as it was."""
