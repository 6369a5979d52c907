"""城市安全, the safety map (issue: the safety map): the hazard workflow (reported → assigned →
rectifying → verified → closed, with deadlines by level), inspections from three sources, sensors
with thresholds and warnings, risk, and the 119 five-level linkage. Empty until that issue lands;
the tables are in geo.models.hazards."""
