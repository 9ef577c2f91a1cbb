"""Talking to the hub's REST API: resolve, file downloads, uploads. Errors become typed errors.

Settings come from the environment (CONTRACTS.md section 3): ADAPTERS_HUB_URL, ADAPTERS_HUB_TOKEN,
ADAPTERS_OFFLINE.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests

from .errors import (
    AdapterNotFound, AmbiguousIdentifier, HubError, InvalidIdentifier, OfflineCacheMiss,
)

DEFAULT_HUB_URL = "http://127.0.0.1:8000"
USER_AGENT = "adapters_client/0.1"

# Hub error codes that map to a specific client error class.
_ERRORS_BY_CODE = {
    "adapter_not_found": AdapterNotFound,
    "no_valid_version": AdapterNotFound,
    "version_not_found": AdapterNotFound,
    "ambiguous_identifier": AmbiguousIdentifier,
    "invalid_identifier": InvalidIdentifier,
}


def is_offline() -> bool:
    return os.environ.get("ADAPTERS_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


@dataclass
class HubClient:
    base_url: str = field(default_factory=lambda: os.environ.get("ADAPTERS_HUB_URL", DEFAULT_HUB_URL))
    token: str | None = field(default_factory=lambda: os.environ.get("ADAPTERS_HUB_TOKEN") or None)
    timeout: float = 30.0
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/"))

    def _headers(self) -> dict:
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        if is_offline():
            raise OfflineCacheMiss(f"ADAPTERS_OFFLINE is set: not contacting the hub for {path}")
        try:
            response = self.session.request(
                method, self.url(path), headers=self._headers(), timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise HubError(f"cannot reach the hub at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def resolve(self, identifier: str, *, model_name=None, config=None, version=None) -> dict:
        params = {"id": str(identifier)}
        for key, value in (("model_name", model_name), ("config", config), ("version", version)):
            if value is not None:
                params[key] = value
        return self.request("GET", "/api/v1/resolve", params=params).json()

    def open_file(self, url: str) -> requests.Response:
        """A streaming response for a file URL from a resolution (redirects are followed)."""
        return self.request("GET", url, stream=True, allow_redirects=True)

    def upload(self, files: list[tuple[str, str]], fields: dict) -> dict:
        """POST a version: ``files`` is [(name, path)], ``fields`` the form fields."""
        handles = []
        try:
            parts = []
            for name, path in files:
                handle = open(path, "rb")
                handles.append(handle)
                parts.append(("files", (name, handle, "application/octet-stream")))
            data = {k: (json.dumps(v) if isinstance(v, dict) else str(v)) for k, v in fields.items() if v is not None}
            return self.request("POST", "/api/v1/adapters/upload", files=parts, data=data).json()
        finally:
            for handle in handles:
                handle.close()


def error_from_response(response: requests.Response) -> Exception:
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    detail = (body.get("detail") if isinstance(body, dict) else None) or response.reason or "hub error"
    cls = _ERRORS_BY_CODE.get(code)
    extra = {k: v for k, v in body.items() if k not in {"code", "detail"}} if isinstance(body, dict) else {}
    if cls is not None:
        return cls(f"{detail}", status=response.status_code, hub_code=code, **extra)
    return HubError(f"hub answered {response.status_code} ({code or 'no code'}): {detail}",
                    status=response.status_code, hub_code=code, **extra)
