"""Typed errors of the client library.

Every error carries a stable ``code`` string (CONTRACTS.md section 3) and subclasses the
built-in exception that fits, so callers can catch either.
"""

from __future__ import annotations


class AdaptersClientError(Exception):
    """Base class of every error raised by ``adapters_client``."""

    code = "adapters_client_error"

    def __init__(self, message: str = "", **details):
        super().__init__(message)
        self.detail = message
        self.details = details
        # Set when the error came from the hub over HTTP.
        self.status = details.get("status")
        self.hub_code = details.get("hub_code")

    def to_dict(self) -> dict:
        return {"code": self.code, "detail": self.detail, **self.details}


class InvalidIdentifier(AdaptersClientError, ValueError):
    code = "invalid_identifier"


class InvalidAdapterConfig(AdaptersClientError, ValueError):
    """A method configuration that cannot be parsed or validated; ``field`` names the culprit."""

    code = "invalid_config"

    def __init__(self, message: str = "", field: str | None = None, **details):
        super().__init__(message, field=field, **details)
        self.field = field


class AdapterNotFound(AdaptersClientError, LookupError):
    code = "adapter_not_found"


class AmbiguousIdentifier(AdaptersClientError, LookupError):
    code = "ambiguous_identifier"


class ChecksumMismatch(AdaptersClientError, ValueError):
    code = "checksum_mismatch"


class OfflineCacheMiss(AdaptersClientError, FileNotFoundError):
    code = "offline_cache_miss"


class IncompatibleAdapter(AdaptersClientError, ValueError):
    """Weights that do not fit the config or the model: wrong backbone, missing/unexpected key, shape."""

    code = "incompatible_adapter"


class InvalidComposition(AdaptersClientError, ValueError):
    code = "invalid_composition"


class HubError(AdaptersClientError, ConnectionError):
    """The hub answered with an error; ``status`` is the HTTP status, ``hub_code`` the hub's code."""

    code = "hub_error"

    def __init__(self, message: str = "", status: int | None = None, hub_code: str | None = None, **details):
        super().__init__(message, status=status, hub_code=hub_code, **details)


class EngineHookError(AdaptersClientError, RuntimeError):
    """The installed ``transformers`` does not offer what the engine hooks into, or a hook never ran.

    ``architecture``, ``module`` and ``transformers_version`` name the place; the adapter is never
    silently skipped (the backbone's output is not returned in its place).
    """

    code = "engine_hook_error"


class HookTargetMissing(EngineHookError):
    """A module or forward argument the engine attaches to is missing in this ``transformers``."""

    code = "hook_target_missing"


class HookNotRun(EngineHookError):
    """An injected site did not run in a forward pass with its adapter active."""

    code = "hook_not_run"


class AdapterNameNotFound(InvalidAdapterConfig, KeyError):
    """No adapter (or fusion) of that name in the model; also a ``KeyError`` (and, as before, an
    ``InvalidAdapterConfig``, so existing handlers keep working)."""

    code = "adapter_name_not_found"

    def __init__(self, message: str = "", field: str | None = "name", **details):
        super().__init__(message, field=field, **details)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.detail


class LocalModelName(AdaptersClientError, ValueError):
    """A local folder was about to be sent to the hub as the backbone's name: pass ``model_name=``."""

    code = "local_model_name"


class InvalidAdapterFolder(AdaptersClientError, ValueError):
    """A folder refused before upload (files, safetensors only, config); ``problems`` lists every reason."""

    code = "invalid_adapter_folder"


class WaitTimeout(AdaptersClientError, TimeoutError):
    """The hub did not reach a final verdict in time; ``last`` holds the last version record seen."""

    code = "wait_timeout"


class ValidatorUnavailable(AdaptersClientError, ImportError):
    """The ``validator`` package (and the hub's checks it uses) is not installed here."""

    code = "validator_unavailable"


class TokenizerUnavailable(AdaptersClientError, OSError):
    """The backbone's tokenizer could not be loaded for ``pipeline``; pass ``tokenizer=``."""

    code = "tokenizer_unavailable"
