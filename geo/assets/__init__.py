"""存量资产, the idle-asset register (issue: the asset map): the status lifecycle (entered →
promoted → negotiating → revitalised, or withdrawn) with its history, search, an asset's
surroundings, and promotion to the public. Empty until that issue lands; the table is in
geo.models.idle_assets."""
