"""Bring your own district: the base data in and out of files — import a district through a
and export the current district in the same layout (``onemap city import`` / ``export``)."""
