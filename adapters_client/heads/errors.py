"""Errors raised by the prediction heads (typed, with a stable ``code``)."""

from __future__ import annotations

from ..errors import AdaptersClientError


class InvalidHead(AdaptersClientError, ValueError):
    """A head that does not exist, already exists, or does not fit the model or the batch."""

    code = "invalid_head"
