"""Personal data: the display masks of DOMAIN.md and the keyed hash used to join on identity.

Masks are for display to roles that may not see the value (mobile 138****1234; identity number
first 6 + last 4; name first character). Datasets are joined on HMAC-SHA256 of the identity number
under a secret key, never on the number itself (a plain hash of an 18-digit number with a
checksum and a birth date is easily reversed by enumeration; a keyed one is not).
"""

from __future__ import annotations

import hashlib
import hmac


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
    """110105********1234: region kept, birth date and sequence hidden."""
    if not value:
        return value
    return (
        value[:6] + "*" * max(0, len(value) - 10) + value[-4:]
        if len(value) > 10
        else "*" * len(value)
    )


def mask_name(value: str | None) -> str | None:
    """李**: the first character, then one star per hidden character."""
    if not value:
        return value
    return value[0] + "*" * (len(value) - 1)


#: How each kind of personal field is masked; the catalogue names the kind of each field.
MASKS = {"phone": mask_phone, "id_number": mask_id_number, "name": mask_name}


#: Personal fields of the base tables and how each is masked: one list for every read path
#: (features, records, history, tiles, exports).
PERSONAL_FIELDS: dict[str, dict[str, str]] = {
    "residents": {"name": "name", "id_number": "id_number", "phone": "phone"},
    "organisations": {"legal_person": "name", "contact_phone": "phone"},
    "inspections": {"inspector": "name"},
    "assets": {"contact_name": "name", "contact_phone": "phone"},
}


def mask_value(kind: str, value):
    return MASKS[kind](value) if isinstance(value, str) else value


def mask_properties(properties: dict, personal: dict[str, str]) -> dict:
    """A copy of ``properties`` with every personal field masked."""
    return {k: (mask_value(personal[k], v) if k in personal else v) for k, v in properties.items()}
