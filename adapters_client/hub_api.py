"""Talking to the hub's REST API: resolve, file downloads, uploads. Errors become typed errors.

Settings come from the environment (CONTRACTS.md section 3): ADAPTERS_HUB_URL, ADAPTERS_HUB_TOKEN,
ADAPTERS_OFFLINE. Without ADAPTERS_HUB_TOKEN the token saved by ``adapters-client login`` is used
(``token_path()``: ``$ADAPTERS_HOME/token``, else ``$XDG_CONFIG_HOME/adapters_client/token``, else
``~/.config/adapters_client/token``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urljoin

import requests

from .errors import (
    AdapterNotFound, AmbiguousIdentifier, HubError, InvalidIdentifier, OfflineCacheMiss,
)
from .rules import ErrorCodes

DEFAULT_HUB_URL = "http://127.0.0.1:8000"
USER_AGENT = "adapters_client/0.1"

# Hub error codes that map to a specific client error class.
_ERRORS_BY_CODE = {
    ErrorCodes.ADAPTER_NOT_FOUND: AdapterNotFound,
    ErrorCodes.NO_VALID_VERSION: AdapterNotFound,
    ErrorCodes.VERSION_NOT_FOUND: AdapterNotFound,
    ErrorCodes.AMBIGUOUS_IDENTIFIER: AmbiguousIdentifier,
    ErrorCodes.INVALID_IDENTIFIER: InvalidIdentifier,
}


def is_offline() -> bool:
    return os.environ.get("ADAPTERS_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def config_home() -> Path:
    """Where ``login`` keeps the token: ``$ADAPTERS_HOME`` or the user's config folder."""
    if os.environ.get("ADAPTERS_HOME"):
        return Path(os.environ["ADAPTERS_HOME"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base).expanduser() / "adapters_client"


def token_path() -> Path:
    return config_home() / "token"


def read_token() -> str | None:
    """ADAPTERS_HUB_TOKEN, else the token saved by ``adapters-client login``, else None."""
    if os.environ.get("ADAPTERS_HUB_TOKEN"):
        return os.environ["ADAPTERS_HUB_TOKEN"]
    try:
        return token_path().read_text(encoding="utf-8").strip() or None
    except (FileNotFoundError, NotADirectoryError, PermissionError, UnicodeDecodeError):
        return None


def save_token(token: str) -> Path:
    """Store ``token`` readable by the user only (atomic replace); returns the file."""
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token.strip() + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def delete_token() -> bool:
    try:
        token_path().unlink()
    except FileNotFoundError:
        return False
    return True


def is_unreachable(exc: Exception) -> bool:
    """A connection failure or a 5xx: the hub, not the request, is at fault."""
    return isinstance(exc, HubError) and (exc.status is None or exc.status >= 500)


@dataclass
class HubClient:
    base_url: str = field(default_factory=lambda: os.environ.get("ADAPTERS_HUB_URL", DEFAULT_HUB_URL))
    token: str | None = field(default_factory=read_token)
    timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/"))

    def _headers(self) -> dict:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, path: str, headers: dict | None = None, **kwargs) -> requests.Response:
        if is_offline():
            raise OfflineCacheMiss(f"ADAPTERS_OFFLINE is set: not contacting the hub for {path}")
        try:
            response = self.session.request(
                method, self.url(path), headers={**self._headers(), **(headers or {})}, timeout=self.timeout,
                **kwargs,
            )
        except requests.RequestException as exc:
            raise HubError(f"cannot reach the hub at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def resolve(self, identifier: str, *, model_name=None, config=None, version=None, direct: bool = False) -> dict:
        """The hub's resolution; ``direct``: ask for each file's presigned object URL (``direct_url``) too,
        which the hub gives when its store signs URLs (and then counts the download)."""
        params = {"id": str(identifier)}
        for key, value in (("model_name", model_name), ("config", config), ("version", version)):
            if value is not None:
                params[key] = value
        if direct:
            params["direct"] = "1"
        return self.request("GET", "/api/v1/resolve", params=params).json()

    def open_file(self, url: str) -> requests.Response:
        """A streaming response for a file URL from a resolution (redirects are followed)."""
        return self.request("GET", url, stream=True, allow_redirects=True)

    def open_object(self, url: str) -> requests.Response:
        """A streaming response for a presigned object-store URL (``direct_url``): no hub credentials are
        sent to the store. HubError (with the store's status) when it refuses, e.g. an expired URL."""
        if is_offline():
            raise OfflineCacheMiss("ADAPTERS_OFFLINE is set: not fetching from the object store")
        try:
            response = self.session.get(url, headers={"User-Agent": USER_AGENT}, timeout=self.timeout, stream=True)
        except requests.RequestException as exc:
            raise HubError(f"cannot reach the object store: {exc}") from exc
        if response.status_code >= 400:
            response.close()
            raise HubError(f"the object store answered {response.status_code} for a presigned URL",
                           status=response.status_code, hub_code="object_store")
        return response

    def upload(self, files: list[tuple[str, str]], fields: dict, progress=None) -> dict:
        """POST a version: ``files`` is [(name, path)], ``fields`` the form fields.

        The body is streamed from disk (``publish.MultipartStream``); ``progress`` is called with
        the number of file bytes sent so far."""
        from .publish import MultipartStream

        data = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items() if v is not None}
        with MultipartStream(data, files, progress=progress) as body:
            return self.request("POST", "/api/v1/adapters/upload", data=body,
                                headers={"Content-Type": body.content_type,
                                         "Content-Length": str(len(body))}).json()

    def version(self, adapter_id: int, version: str) -> dict:
        """The version record (status, validation report, files) of one adapter version."""
        return self.request("GET", f"/api/v1/adapters/{int(adapter_id)}/versions/{quote(str(version), safe='')}").json()


def error_from_response(response: requests.Response) -> Exception:
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    detail = (body.get("detail") if isinstance(body, dict) else None) or response.reason or "hub error"
    cls = _ERRORS_BY_CODE.get(code)
    extra = {k: v for k, v in body.items() if k not in {"code", "detail"}} if isinstance(body, dict) else {}
    if cls is AdapterNotFound:
        detail = _with_suggestions(detail, extra)
    if cls is not None:
        return cls(f"{detail}", status=response.status_code, hub_code=code, **extra)
    return HubError(f"hub answered {response.status_code} ({code or 'no code'}): {detail}",
                    status=response.status_code, hub_code=code, **extra)


def _with_suggestions(detail: str, extra: dict) -> str:
    """``no adapter 'x'`` + the hub's ``suggestions`` and ``available`` backbones/configs, in words."""
    available = [a for a in extra.get("available") or [] if isinstance(a, dict)]
    if available:
        shown = ", ".join(f"{a.get('identifier')} ({a.get('model_name')}, {a.get('method')})" for a in available[:5])
        return f"{detail}; available: {shown}"
    suggestions = [str(s) for s in extra.get("suggestions") or []]
    if suggestions:
        return f"{detail}; did you mean {', '.join(repr(s) for s in suggestions[:5])}?"
    return detail
