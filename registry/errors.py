"""Typed errors of the registry. Each has a stable ``code`` and the HTTP status it maps to.

User faults (a refused upload: final) and platform faults (storage or broker trouble:
retryable, 503) are separate branches of the hierarchy.
"""

from __future__ import annotations

from adapters_client.rules import ErrorCodes as C  # codes shared with the client, defined once


class RegistryError(Exception):
    code = "registry_error"
    status = 400

    def __init__(self, detail: str = "", *, code: str | None = None, status: int | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra

    def to_dict(self) -> dict:
        return {"code": self.code, "detail": self.detail, **self.extra}


class UserError(RegistryError, ValueError):
    """The request or the uploaded adapter is at fault."""


class InvalidInput(UserError):
    code = C.INVALID_INPUT


class InvalidIdentifierError(UserError):
    code = C.INVALID_IDENTIFIER


class InvalidSafetensors(UserError):
    code = C.INVALID_SAFETENSORS


class PickleNotAccepted(UserError):
    code = C.PICKLE_NOT_ACCEPTED
    status = 415


class UnsupportedFileType(UserError):
    code = "unsupported_file_type"
    status = 415


class InvalidConfig(UserError):
    code = C.INVALID_CONFIG


class InvalidModelName(UserError):
    code = C.INVALID_MODEL_NAME


class InvalidFilename(UserError):
    code = C.INVALID_FILENAME


class InvalidArchive(UserError):
    code = C.INVALID_ARCHIVE


class IncompleteUpload(UserError):
    """The request body did not arrive whole (short of Content-Length, no closing boundary, client gone)."""

    code = C.INCOMPLETE_UPLOAD


class TooLarge(UserError):
    code = C.TOO_LARGE
    status = 413


class TooManyFiles(UserError):
    code = C.TOO_MANY_FILES
    status = 413


class DigestMismatch(UserError):
    code = C.DIGEST_MISMATCH


class VersionExists(UserError):
    code = C.VERSION_EXISTS
    status = 409


class NotFound(UserError, LookupError):
    code = C.NOT_FOUND
    status = 404


class AdapterNotFoundError(NotFound):
    code = C.ADAPTER_NOT_FOUND


class AmbiguousIdentifierError(UserError, LookupError):
    code = C.AMBIGUOUS_IDENTIFIER
    status = 409


class PublicAdapterDelete(UserError):
    """Only private adapters can be deleted; public versions are yanked instead."""

    code = "public_adapter_not_deletable"
    status = 409


class VersionNotDefaultable(UserError):
    code = "version_not_valid"
    status = 409


class PermissionDeniedError(UserError, PermissionError):
    code = C.PERMISSION_DENIED
    status = 403


class PlatformError(RegistryError, ConnectionError):
    """Ours, not the user's: a dependency is down. Answered 503 with Retry-After."""

    code = C.SERVICE_UNAVAILABLE
    status = 503
    retry_after = 30


class StorageUnavailable(PlatformError):
    code = "storage_unavailable"
