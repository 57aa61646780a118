"""The csv module's field-size limit is process-wide state: set it only around one read, then restore it.

Text CSVs hold long fields (a review, an article), so their readers lift the limit; numeric CSVs keep the
module's default (128 KiB), so an unclosed quote is reported instead of swallowing the rest of the file.
Neither may leak into the other through the global setting.
"""

from __future__ import annotations

import csv
from contextlib import contextmanager

__all__ = ["field_limit", "NUMERIC_FIELD_LIMIT", "TEXT_FIELD_LIMIT"]

NUMERIC_FIELD_LIMIT = 131_072  # the csv module's default
TEXT_FIELD_LIMIT = 2**31 - 1  # the largest limit every platform's C long accepts


@contextmanager
def field_limit(limit: int):
    """Read with ``csv.field_size_limit(limit)``; the previous limit is restored afterwards."""
    old = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(old)
