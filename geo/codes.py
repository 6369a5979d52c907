"""Standard codes: their formats, check digits, and how they nest.

One place for every code format, so that the database checks, the loader, ingest and the record
editor agree. Nesting follows DOMAIN.md:

- administrative area: GB/T 2260 six digits + 3 street/town + 3 community/village = 12 digits
  (the statistical division code);
- standard grid: its community's 12 digits + a 3-digit sequence = 15 digits;
- standard building: its grid's 15 digits + a 4-digit sequence = 19 digits;
- standard address: its community's 12 digits + an 8-digit sequence = 20 digits;
- resident identity number: GB 11643-1999, 17 digits + a mod 11-2 check character;
- organisation: unified social credit code, GB 32100-2015, 18 characters with a mod-31 check.
"""

from __future__ import annotations

import re

AREA_CODE = r"^[0-9]{12}$"
GRID_CODE = r"^[0-9]{15}$"
BUILDING_CODE = r"^[0-9]{19}$"
ADDRESS_CODE = r"^[0-9]{20}$"
ID_NUMBER = r"^[0-9]{17}[0-9X]$"
PHONE = r"^1[3-9][0-9]{9}$"
CREDIT_CODE = r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$"
HAZARD_CODE = r"^YH[0-9]{20}$"
SENSOR_CODE = r"^GZ[0-9]{6}[0-9]{6}$"
ASSET_CODE = r"^ZC[0-9]{6}[0-9]{4}$"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def matches(pattern: str, value: str | None) -> bool:
    return value is not None and re.fullmatch(pattern, value) is not None


def id_number_check(first17: str) -> str:
    """GB 11643-1999 check character (ISO 7064 MOD 11-2) for the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def valid_id_number(value: str | None) -> bool:
    return matches(ID_NUMBER, value) and id_number_check(value[:17]) == value[17]


def credit_code_check(first17: str) -> str:
    """GB 32100-2015 check character of a unified social credit code."""
    total = sum(_CREDIT_CHARS.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_CHARS[(31 - total % 31) % 31]


def valid_credit_code(value: str | None) -> bool:
    return matches(CREDIT_CODE, value) and credit_code_check(value[:17]) == value[17]
