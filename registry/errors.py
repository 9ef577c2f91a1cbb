"""Typed errors of the registry. Each has a stable ``code`` and the HTTP status it maps to.

User faults (a refused upload: final) and platform faults (storage or broker trouble:
retryable, 503) are separate branches of the hierarchy.
"""

from __future__ import annotations


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
    code = "invalid_input"


class InvalidIdentifierError(UserError):
    code = "invalid_identifier"


class InvalidSafetensors(UserError):
    code = "invalid_safetensors"


class PickleNotAccepted(UserError):
    code = "pickle_not_accepted"
    status = 415


class UnsupportedFileType(UserError):
    code = "unsupported_file_type"
    status = 415


class InvalidConfig(UserError):
    code = "invalid_config"


class InvalidFilename(UserError):
    code = "invalid_filename"


class InvalidArchive(UserError):
    code = "invalid_archive"


class TooLarge(UserError):
    code = "too_large"
    status = 413


class TooManyFiles(UserError):
    code = "too_many_files"
    status = 413


class DigestMismatch(UserError):
    code = "digest_mismatch"


class VersionExists(UserError):
    code = "version_exists"
    status = 409


class NotFound(UserError, LookupError):
    code = "not_found"
    status = 404


class AdapterNotFoundError(NotFound):
    code = "adapter_not_found"


class AmbiguousIdentifierError(UserError, LookupError):
    code = "ambiguous_identifier"
    status = 409


class PublicAdapterDelete(UserError):
    """Only private adapters can be deleted; public versions are yanked instead."""

    code = "public_adapter_not_deletable"
    status = 409


class VersionNotDefaultable(UserError):
    code = "version_not_valid"
    status = 409


class PermissionDeniedError(UserError, PermissionError):
    code = "permission_denied"
    status = 403


class PlatformError(RegistryError, ConnectionError):
    """Ours, not the user's: a dependency is down. Answered 503 with Retry-After."""

    code = "service_unavailable"
    status = 503
    retry_after = 30


class StorageUnavailable(PlatformError):
    code = "storage_unavailable"
