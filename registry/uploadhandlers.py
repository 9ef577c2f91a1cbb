"""Streaming uploads: limits enforced while the bytes arrive, sha256 computed on the way.

``LimitedUploadHandler`` writes each file to its own temporary file in
settings.HUB_UPLOAD_TMP_DIR, raises TooLarge / TooManyFiles (413) as soon as a limit is
passed and removes every temporary file it created in ``cleanup()`` (the view calls it in a
``finally``). The parser that feeds it, ``HubMultiPartParser``, lives in registry.multipart.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from .errors import TooLarge, TooManyFiles
from .multipart import HubMultiPartParser, check_filename_syntax  # noqa: F401 - imported from here by views


class StreamedFile(UploadedFile):
    """An uploaded file on disk with the sha256 of its bytes; closing it deletes it."""

    def __init__(self, file, name, content_type, size, charset, sha256, content_type_extra=None):
        super().__init__(file, name, content_type, size, charset, content_type_extra)
        self.sha256 = sha256

    def temporary_file_path(self) -> str:
        return self.file.name

    def close(self):
        path = self.file.name
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class LimitedUploadHandler(FileUploadHandler):
    """Stream files to disk with per-file, per-request and file-count limits."""

    def __init__(self, request=None):
        super().__init__(request)
        self.paths: list[str] = []
        self.count = 0
        self.total = 0
        self._fh = None
        self._hash = None
        self._size = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length and content_length > settings.HUB_MAX_UPLOAD_BYTES + 64 * 1024:
            raise TooLarge(
                f"the request has {content_length} bytes; the upload limit is {settings.HUB_MAX_UPLOAD_BYTES}",
                limit=settings.HUB_MAX_UPLOAD_BYTES,
            )
        return None

    def new_file(self, field_name, file_name, content_type, content_length, charset=None, content_type_extra=None):
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        self.count += 1
        if self.count > settings.HUB_MAX_FILES:
            raise TooManyFiles(f"more than {settings.HUB_MAX_FILES} files sent", limit=settings.HUB_MAX_FILES)
        os.makedirs(settings.HUB_UPLOAD_TMP_DIR, exist_ok=True)
        self._fh = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed by StreamedFile / cleanup()
            dir=settings.HUB_UPLOAD_TMP_DIR, prefix="upload-", suffix=".part", delete=False
        )
        self.paths.append(self._fh.name)
        self._hash = hashlib.sha256()
        self._size = 0

    def receive_data_chunk(self, raw_data, start):
        self._size += len(raw_data)
        self.total += len(raw_data)
        if self._size > settings.HUB_MAX_FILE_BYTES:
            raise TooLarge(f"{self.file_name!r} is over the limit of {settings.HUB_MAX_FILE_BYTES} bytes",
                           filename=self.file_name, limit=settings.HUB_MAX_FILE_BYTES)
        if self.total > settings.HUB_MAX_UPLOAD_BYTES:
            raise TooLarge(f"the upload is over the limit of {settings.HUB_MAX_UPLOAD_BYTES} bytes",
                           limit=settings.HUB_MAX_UPLOAD_BYTES)
        self._fh.write(raw_data)
        self._hash.update(raw_data)
        return None

    def file_complete(self, file_size):
        self._fh.flush()
        self._fh.seek(0)
        streamed = StreamedFile(
            self._fh, self.file_name, self.content_type, self._size, self.charset, self._hash.hexdigest(),
            self.content_type_extra,
        )
        self._fh = None
        return streamed

    def upload_interrupted(self):
        self.cleanup()

    def cleanup(self) -> None:
        """Close and delete every temporary file this handler created."""
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None
        for path in self.paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.paths = []
