"""Logs never carry personal data: mobile and identity numbers (and password hashes) are masked
in every line the service writes, at the formatter, after the line is put together, so that the
message, its arguments and any traceback (SQL parameters included) are all covered, and uvicorn's
access-line formatting is left intact."""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import unquote_plus

from geo.policy.masks import mask_id_number, mask_phone

# an 18-character identity number, or an 11-digit mobile number, not inside a longer run of digits
ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")
PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
#: a password hash (argon2 or bcrypt), should one reach a line (a failed statement's parameters)
PASSWORD_HASH = re.compile(r"\$(argon2(?:id|i|d)|2[abxy])\$[^\s'\")\]]+")
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "onemap")


def redact(text: str) -> str:
    text = ID_NUMBER.sub(lambda m: mask_id_number(m.group()), text)
    text = PHONE.sub(lambda m: mask_phone(m.group()), text)
    return PASSWORD_HASH.sub(lambda m: f"${m.group(1)}$***", text)


class MaskingFormatter(logging.Formatter):
    """Formats as the formatter it wraps would, then masks the whole line."""

    def __init__(self, inner: logging.Formatter | None = None):
        super().__init__()
        self.inner = inner or logging.Formatter("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        masked = redact(line)
        if "%" in line:  # %27 before a number would hide it from the patterns: decode, then mask
            decoded = unquote_plus(line)
            if redact(decoded) != decoded:
                return redact(decoded)
        return masked


def install() -> None:
    """Wrap the formatter of every handler of the service's loggers (idempotent); give the
    ``onemap`` logger a masked handler of its own if nothing would print it."""
    onemap = logging.getLogger("onemap")
    if not onemap.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        onemap.addHandler(handler)
        onemap.propagate = False
        onemap.setLevel(logging.INFO)
    for name in LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler.formatter, MaskingFormatter):
                handler.setFormatter(MaskingFormatter(handler.formatter))
