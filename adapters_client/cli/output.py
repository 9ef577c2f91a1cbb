"""Printing results (text or ``--json``) and turning errors into exit codes.

Exit codes: 0 ok; 1 the adapter or the request was refused (a 4xx from the hub, an unknown or
ambiguous identifier, a rejected verdict, a checksum mismatch, a folder that fails the checks);
2 a usage or platform error (bad options, hub unreachable or 5xx, offline cache miss, validator not
installed, no verdict in time).
"""

from __future__ import annotations

import json
import sys

from ..errors import (
    AdaptersClientError, HubError, LocalModelName, OfflineCacheMiss, TokenizerUnavailable, ValidatorUnavailable,
    WaitTimeout,
)

EXIT_OK, EXIT_REFUSED, EXIT_ERROR = 0, 1, 2
# Client errors that are the user's setup or the platform, not a refusal of the adapter or request.
_PLATFORM = (OfflineCacheMiss, ValidatorUnavailable, WaitTimeout, TokenizerUnavailable, LocalModelName)


class UsageError(Exception):
    """A command line that cannot run as given (exit 2)."""

    code = "usage"


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, HubError):
        return EXIT_ERROR if exc.status is None or exc.status >= 500 else EXIT_REFUSED
    if isinstance(exc, _PLATFORM):
        return EXIT_ERROR
    if isinstance(exc, AdaptersClientError):
        return EXIT_REFUSED
    return EXIT_ERROR


def error_body(exc: BaseException) -> dict:
    if isinstance(exc, AdaptersClientError):
        body = exc.to_dict()
    else:
        body = {"code": getattr(exc, "code", None) or type(exc).__name__.lower(), "detail": str(exc)}
    return {"error": body, "exit_code": exit_code(exc)}


def emit(data, as_json: bool, text: str | None = None) -> None:
    """``data`` as JSON on stdout, or ``text`` (or the data, plainly) for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    elif text is not None:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    else:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def fail(exc: BaseException, as_json: bool) -> int:
    """Report ``exc`` (JSON on stdout with ``--json``, one line on stderr always); returns the exit code."""
    body = error_body(exc)
    if as_json:
        emit(body, True)
    detail = body["error"].get("detail") or str(exc)
    print(f"error [{body['error']['code']}]: {detail}", file=sys.stderr)
    return body["exit_code"]


def describe_resolution(info: dict) -> str:
    lines = [f"{info.get('identifier')}  version {info.get('version')}  ({info.get('status')})"]
    for key in ("model_name", "method", "config_hash", "digest", "warning"):
        if info.get(key):
            lines.append(f"  {key}: {info[key]}")
    for f in info.get("files", []):
        lines.append(f"  {f.get('name')}  {f.get('size')} bytes  sha256 {str(f.get('sha256'))[:16]}")
    return "\n".join(lines)


def describe_version(record: dict) -> str:
    lines = [f"{record.get('identifier')} version {record.get('version')}: {record.get('status')}"]
    if record.get("error_code"):
        lines.append(f"  error_code: {record['error_code']}")
    if record.get("verified_score") is not None:
        lines.append(f"  verified_score: {record['verified_score']}")
    report = record.get("validation_report") or {}
    for check in report.get("checks", []) if isinstance(report, dict) else []:
        if check.get("outcome") not in (None, "passed"):
            lines.append(f"  {check.get('name')}: {check.get('outcome')} {check.get('code') or ''} "
                         f"{check.get('detail') or ''}".rstrip())
    return "\n".join(lines)
