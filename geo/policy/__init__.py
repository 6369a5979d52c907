"""Who may read, unmask and edit what: roles, per-layer access rules, the read plan, masks, users
and tokens, and the audit log. Declared once, here and with each layer, and asked by every path."""
