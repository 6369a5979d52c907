"""Logs never carry personal data: mobile numbers and identity numbers are masked in every record
the service's loggers write (access lines print query strings, and a filter may name a phone)."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

from geo.policy.masks import mask_id_number, mask_phone

# an 18-character identity number, or an 11-digit mobile number, not inside a longer run of digits
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")
PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
LOGGERS = ("uvicorn.access", "uvicorn.error", "uvicorn", "onemap")


def redact(text: str) -> str:
    text = ID_NUMBER.sub(lambda m: mask_id_number(m.group()), text)
    return PHONE.sub(lambda m: mask_phone(m.group()), text)


class PersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        decoded = unquote_plus(message)  # %27 before a number would hide it from the patterns
        cleaned = redact(decoded)
        if cleaned != decoded:
            record.msg, record.args = cleaned, None
        return True


def install() -> None:
    """Attach the filter to the service's loggers (idempotent)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, PersonalDataFilter) for f in logger.filters):
            logger.addFilter(PersonalDataFilter())
