"""The upload API's multipart parser: a request that did not arrive whole never reaches a view.

Django's parser accepts a body that stops short of its Content-Length or lacks the closing
boundary: the last field then holds whatever arrived (a cut ``version``), and a file cut
mid-stream is dropped after its handler cleaned up. ``HubMultiPartParser`` reads the body
through ``VerifiedBody``, which counts the bytes, watches for the closing delimiter and for
``filename*=`` part headers, and refuses the request after parsing when it is incomplete.
File names are refused rather than rewritten (HTML entities, encodings, paths).
"""

from __future__ import annotations

import contextlib
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from django.utils.http import parse_header_parameters
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles
from rest_framework.parsers import MultiPartParser as DRFMultiPartParser

from .checks.files import check_filename
from .errors import IncompleteUpload, InvalidFilename, InvalidInput, RegistryError, TooLarge, TooManyFiles

# A part header asking for an RFC 2231 / RFC 5987 encoded file name.
_ENCODED_PARAM = re.compile(rb"filename\*\s*=", re.IGNORECASE)
_MAX_PART_HEADER = 16 * 1024  # Django refuses part headers over 10 KiB anyway


class VerifiedBody:
    """A read-only stream over the request body that records whether it arrived whole.

    ``received`` counts the bytes read; ``closed`` is set when the closing delimiter
    ``--boundary--`` went past; ``encoded_name`` when a part header used ``filename*=``.
    A read that fails (the client went away) raises IncompleteUpload."""

    def __init__(self, stream, boundary: bytes):
        self._stream = stream
        self._delimiter = b"--" + boundary
        self._window = b""
        self.received = 0
        self.closed = False
        self.encoded_name = False

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._stream.read(size)
        except OSError as exc:  # UnreadablePostError, ConnectionResetError, a socket timeout
            raise IncompleteUpload(f"the request body could not be read whole ({exc})") from None
        self.received += len(data)
        if data and not self.closed:
            self._scan(data)
        return data

    def _scan(self, data: bytes) -> None:
        buf = self._window + data
        pos = 0
        size = len(self._delimiter)
        while (index := buf.find(self._delimiter, pos)) >= 0:
            after = index + size
            if len(buf) < after + 2:
                self._window = buf[index:]
                return
            if buf[after:after + 2] == b"--":
                self.closed = True
                self._window = b""
                return
            end = buf.find(b"\r\n\r\n", after, after + _MAX_PART_HEADER)
            if end < 0 and len(buf) - after < _MAX_PART_HEADER:
                self._window = buf[index:]  # the part's headers are not all here yet
                return
            if end >= 0 and _ENCODED_PARAM.search(buf, after, end):
                self.encoded_name = True
            pos = after
        self._window = buf[max(pos, len(buf) - size - 1):]


def _boundary(content_type: str) -> bytes:
    _, params = parse_header_parameters(content_type or "")
    boundary = params.get("boundary") or ""
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise ParseError("Multipart form parse error - invalid boundary") from None


class _StrictNamesParser(DjangoMultiPartParser):
    def sanitize_file_name(self, file_name):
        check_filename_syntax(file_name)
        cleaned = super().sanitize_file_name(file_name)
        if cleaned != file_name:
            raise InvalidFilename(
                f"file name {file_name!r} would be rewritten (HTML entities, paths or unprintable characters); "
                "send the plain file name",
                filename=file_name,
            )
        return cleaned


def check_filename_syntax(file_name: str) -> None:
    """Refuse names the stock parser would rewrite (paths, '..', control characters)."""
    try:
        check_filename(file_name)
    except InvalidFilename as exc:
        if "allowed" not in exc.extra:
            raise
    # Other refusals (pickle names, names not on the list) are reported after parsing, by the service.


def _framework_limit(exc: Exception) -> RegistryError:
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return TooLarge(f"the form fields are over the limit of {limit} bytes; send large content as a file",
                        limit=limit)
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return TooManyFiles(f"more than {limit} files sent", limit=limit)
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    return InvalidInput(f"more than {limit} form fields sent", limit=limit)


def _close_all(files) -> None:
    for _, items in files.lists():
        for item in items:
            with contextlib.suppress(Exception):
                item.close()


class HubMultiPartParser(DRFMultiPartParser):
    """DRF's multipart parser with strict names, JSON-mapped limits and a whole-body check."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        request = parser_context["request"]
        meta = request.META.copy()
        meta["CONTENT_TYPE"] = media_type
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        body = VerifiedBody(stream, _boundary(media_type))
        try:
            parser = _StrictNamesParser(meta, body, request.upload_handlers, encoding)
            data, files = parser.parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent) as exc:
            raise _framework_limit(exc) from None
        try:
            _check_whole(body, _content_length(meta))
        except RegistryError:
            _close_all(files)
            raise
        return DataAndFiles(data, files)


def _content_length(meta) -> int:
    try:
        return max(int(meta.get("CONTENT_LENGTH") or 0), 0)
    except (TypeError, ValueError):
        return 0


def _check_whole(body: VerifiedBody, content_length: int) -> None:
    if body.encoded_name:
        raise InvalidFilename("encoded file names (filename*=) are not accepted; send the plain file name")
    if body.received < content_length:
        raise IncompleteUpload(
            f"the request body ended after {body.received} of {content_length} bytes; nothing was created",
            received=body.received, expected=content_length,
        )
    if not body.closed:
        raise IncompleteUpload("the request body has no closing multipart boundary; nothing was created")
