"""Typed errors of the validator, each with a stable ``code`` (RELIABILITY.md, "The validator does not trust
what it loads").

Two branches: ``AdapterFault`` (the adapter is at fault: the version is ``rejected``, final) and
``PlatformFault`` (the backbone, the allow-list, the machine: the version is ``error``, retried).
A failed check carries an ``AdapterFault``; a ``PlatformFault`` aborts the whole validation.
"""

from __future__ import annotations


class ValidatorError(Exception):
    """Base class; ``code`` is stable, ``detail`` human text, ``extra`` structured facts (keys, shapes)."""

    code = "validator_error"
    fault = "platform"

    def __init__(self, detail: str = "", *, code: str | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.extra = extra

    def to_dict(self) -> dict:
        return {"code": self.code, "fault": self.fault, "detail": self.detail, **self.extra}


# --- the adapter's fault: rejected -------------------------------------------------------------
class AdapterFault(ValidatorError, ValueError):
    """The adapter itself is wrong; the version is rejected (final)."""

    code = "rejected"
    fault = "adapter"


class InvalidFiles(AdapterFault):
    """A refused file set (names, pickles, missing files); the registry's own code is kept when it has one."""

    code = "invalid_files"


class InvalidSafetensors(AdapterFault):
    code = "invalid_safetensors"


class InvalidConfig(AdapterFault):
    code = "invalid_config"


class UnknownBackbone(AdapterFault):
    code = "unknown_backbone"


class ShapeMismatch(AdapterFault):
    code = "shape_mismatch"


class MissingKeys(AdapterFault):
    code = "missing_keys"


class UnexpectedKeys(AdapterFault):
    code = "unexpected_keys"


class NonFiniteWeights(AdapterFault):
    code = "non_finite_weights"


class LoadFailed(AdapterFault):
    code = "load_failed"


class ForwardFailed(AdapterFault):
    code = "forward_failed"


class NonFiniteOutput(AdapterFault):
    code = "non_finite_output"


class HeadShape(AdapterFault):
    code = "head_shape"


class NoEffect(AdapterFault):
    """The adapter leaves the backbone's output unchanged (a warning unless the caller rejects it)."""

    code = "no_effect"


class NotScorable(ValidatorError, ValueError):
    """The version cannot get a verified score (no fitting classification head, labels not in its label2id,
    no tokenizer, a shape-only backbone). Not a rejection: the version simply has no verified score."""

    code = "not_scorable"
    fault = "none"


# --- the platform's fault: error, retried ------------------------------------------------------
class PlatformFault(ValidatorError, RuntimeError):
    """The validator could not do its work; not the adapter's fault (the version becomes ``error``)."""

    code = "platform_error"
    fault = "platform"


class InvalidAllowList(PlatformFault):
    """The backbone allow-list (settings or JSON file) is malformed."""

    code = "invalid_allow_list"


class BackboneUnavailable(PlatformFault):
    """An allow-listed backbone could not be loaded (missing folder, not in the offline cache, broken files)."""

    code = "backbone_unavailable"


class UsageError(PlatformFault):
    """The command line or the call was wrong (exit status 2)."""

    code = "usage"


# Every code a failed check may carry, for the docs and the API's schema.
REJECTION_CODES = (
    "invalid_files", "invalid_filename", "pickle_not_accepted", "missing_file", "invalid_readme",
    "invalid_safetensors", "invalid_config", "unknown_backbone", "shape_mismatch", "missing_keys",
    "unexpected_keys", "non_finite_weights", "load_failed", "forward_failed", "non_finite_output",
    "head_shape", "no_effect",
)
