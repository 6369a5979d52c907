"""城市体检, the one-click city check-up (issue: the check-up): an indicator registry, one module
per indicator (id, names, dimension, level, unit, definition, target and direction, source
standard, and its PostGIS or geopandas computation), and the engine that runs every indicator for
every area against its target and compares runs year on year. Empty until that issue lands."""
