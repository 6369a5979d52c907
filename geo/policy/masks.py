"""Personal data: the display masks of DOMAIN.md and the keyed hash used to join on identity.

These are the Python twins of the SQL functions ``onemap_mask_*`` (migration 0002) that the
features path applies inside PostgreSQL; tests/test_policy.py checks that both give the same text
on a corpus of names, phones and identity numbers. Which field is masked, for whom, is the read
plan's business (geo.policy.plan), declared with each layer.

Masks are for display to roles that may not see the value (mobile 138****1234; identity number
first 6 + last 4; name first character). Datasets are joined on HMAC-SHA256 of the identity number
under a secret key, never on the number itself (a plain hash of an 18-digit number with a
checksum and a birth date is easily reversed by enumeration; a keyed one is not).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date


def keyed_hash(value: str, key: str) -> str:
    """HMAC-SHA256 of ``value`` under ``key``, as 64 hex characters."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def mask_phone(value: str | None) -> str | None:
    """138****1234"""
    if not value:
        return value
    return (
        value[:3] + "*" * max(0, len(value) - 7) + value[-4:]
        if len(value) > 7
        else "*" * len(value)
    )


def mask_id_number(value: str | None) -> str | None:
    """320117************: the region kept; birth date, sequence (with the sex) and check hidden.

    Not "first 6 + last 4": beside a served birth date those 4 leave nothing to guess, and the
    last 4 carry the sex and the check character. See DOMAIN.md's masking rule."""
    if not value:
        return value
    return value[:6] + "*" * (len(value) - 6) if len(value) > 6 else "*" * len(value)


def mask_birth_date(value) -> str | None:
    """1990: the year only (enough for age groups; the day would narrow an identity number)."""
    if value is None or value == "":
        return value
    text = value.isoformat() if isinstance(value, date) else str(value)
    return text[:4]


def mask_name(value: str | None) -> str | None:
    """李**: the first character, then one star per hidden character."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)


#: How each kind of personal field is masked; the catalogue names the kind of each field.
MASKS = {
    "phone": mask_phone,
    "id_number": mask_id_number,
    "name": mask_name,
    "birth_date": mask_birth_date,
}


def mask_value(kind: str, value):
    if isinstance(value, str) or (kind == "birth_date" and isinstance(value, date)):
        return MASKS[kind](value)
    return value
