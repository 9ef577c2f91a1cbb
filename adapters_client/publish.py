"""What ``push`` does before and after the upload: check the folder, name the backbone, stream the
body with a progress bar, and wait for the hub's verdict.

Kept apart from ``api`` (which exports ``push``) so that the module name never shadows the function.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path

from .configs.files import (
    CONFIG_FILE, FUSION_CONFIG_FILE, FUSION_WEIGHTS_FILE, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, HUB_FILES,
    PICKLE_WEIGHTS_FILE, WEIGHTS_FILE,
)
from .errors import (
    AdaptersClientError, InvalidAdapterFolder, LocalModelName, ValidatorUnavailable, WaitTimeout,
)

FINAL_STATUSES = ("valid", "rejected", "error")
PROGRESS_MIN_BYTES = 1024 * 1024  # a bar is shown on a terminal for uploads at least this large
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_PAIRS = ((HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE), (FUSION_CONFIG_FILE, FUSION_WEIGHTS_FILE))
_MAX_HEADER = 100 * 1024 * 1024


# --- the backbone's name -------------------------------------------------------------------
def is_local_path(name) -> bool:
    """True for an absolute path, ``./``, ``../``, ``~``, a Windows path, or an existing folder."""
    if not isinstance(name, str) or not name:
        return False
    if os.path.isabs(name) or name.startswith(("./", "../", "~", ".\\", "..\\")) or name in (".", ".."):
        return True
    if "\\" in name or re.match(r"^[A-Za-z]:[\\/]", name):
        return True
    return Path(name).expanduser().is_dir()


def backbone_name(folder: Path, model_name: str | None) -> str:
    """The public backbone name to send: ``model_name`` or the config's; never a local path."""
    recorded = _read_config(folder).get("model_name")
    if model_name is not None:
        if is_local_path(model_name):
            raise LocalModelName(
                f"model_name={model_name!r} is a local path; pass the backbone's public name "
                "(e.g. model_name='bert-base-uncased'), a local path is never sent to the hub", model_name=model_name)
        return model_name
    if not isinstance(recorded, str) or not recorded:
        raise LocalModelName(f"{folder / CONFIG_FILE} records no model_name: pass model_name= (the public name "
                             "of the backbone, e.g. 'bert-base-uncased')", model_name=None)
    if is_local_path(recorded):
        raise LocalModelName(
            f"{CONFIG_FILE} records the local path {recorded!r} as its backbone (the model was loaded from a "
            "folder): pass model_name= with the backbone's public name, e.g. model_name='bert-base-uncased'",
            model_name=recorded)
    return recorded


def _read_config(folder: Path) -> dict:
    try:
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- local checks --------------------------------------------------------------------------
def upload_files(folder: Path) -> list[tuple[str, str]]:
    """The (name, path) pairs that go to the hub, after the format checks (InvalidAdapterFolder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidAdapterFolder(f"{str(folder)!r} is not a folder", problems=[{"code": "missing_file"}])
    present = {p.name for p in folder.iterdir() if p.is_file()}
    problems = []
    pickles = sorted(n for n in present if n.lower().endswith(_PICKLE_SUFFIXES))
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if name not in present:
            hint = (f" ({PICKLE_WEIGHTS_FILE} is pickle: the hub accepts safetensors only; convert the folder with "
                    f"`adapters-client convert {folder} <new folder>`)"
                    if name == WEIGHTS_FILE and PICKLE_WEIGHTS_FILE in present else "")
            problems.append({"code": "missing_file", "file": name, "detail": f"{name} is missing{hint}"})
    for a, b in _PAIRS:
        if (a in present) != (b in present):
            lacking = b if a in present else a
            problems.append({"code": "missing_file", "file": lacking, "detail": f"{a} and {b} go together"})
    problems += _config_problems(folder, present)
    for name in sorted(present & set(HUB_FILES)):
        if name.endswith(".safetensors"):
            problems += _safetensors_problems(folder / name)
    if problems:
        raise InvalidAdapterFolder(f"{folder} cannot be pushed: " + "; ".join(p["detail"] for p in problems),
                                   problems=problems, ignored=pickles)
    return [(name, str(folder / name)) for name in HUB_FILES if name in present]


def _config_problems(folder: Path, present: set) -> list:
    from .configs.files import read_adapter_config_json

    if CONFIG_FILE not in present:
        return []
    try:
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        read_adapter_config_json(data)
    except (ValueError, UnicodeDecodeError, AdaptersClientError) as exc:
        return [{"code": "invalid_config", "file": CONFIG_FILE, "detail": f"{CONFIG_FILE}: {exc}"}]
    for name in (HEAD_CONFIG_FILE, FUSION_CONFIG_FILE):
        if name in present:
            try:
                json.loads((folder / name).read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                return [{"code": "invalid_config", "file": name, "detail": f"{name} is not valid JSON: {exc}"}]
    return []


def _safetensors_problems(path: Path) -> list:
    """The header of a safetensors file parses and its tensors fit in the file (nothing is loaded)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > min(_MAX_HEADER, size - 8):
                raise ValueError("header length beyond the file")
            header = json.loads(handle.read(length))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
        if max(ends, default=0) > size - 8 - length:
            raise ValueError("tensor data beyond the end of the file")
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return [{"code": "invalid_safetensors", "file": path.name,
                 "detail": f"{path.name} is not a valid safetensors file ({exc})"}]
    return []


def load_validator():
    """The validator's static checks, or ValidatorUnavailable (it needs the hub's checks: Django)."""
    try:
        from validator import pipeline as validator_pipeline  # noqa: F401
        from validator import static_checks
        import registry.checks  # noqa: F401
    except ImportError as exc:
        raise ValidatorUnavailable(
            f"the validator is not installed here ({exc}); install the hub extra: pip install 'adapter-hub[hub]'"
        ) from exc
    return static_checks


def validator_problems(files: list[tuple[str, str]]) -> list:
    """The hub's static checks (files, safetensors headers, configs) on exactly the files to upload;
    an empty list when the validator is not installed."""
    try:
        static_checks = load_validator()
    except ValidatorUnavailable:
        return []
    from validator.errors import AdapterFault

    staging = Path(tempfile.mkdtemp(prefix="adapters-push-"))
    try:
        for name, path in files:
            try:
                os.link(path, staging / name)
            except OSError:
                shutil.copyfile(path, staging / name)
        ctx = static_checks.Context(folder=staging)
        problems = []
        for check in (static_checks.check_files, static_checks.check_config):
            try:
                problems += check(ctx)
            except AdapterFault as exc:
                return problems + [{"code": exc.code, "detail": exc.detail}]
        return problems
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- the upload body -----------------------------------------------------------------------
class MultipartStream:
    """A multipart/form-data body read from disk piece by piece, with a known length."""

    def __init__(self, fields: dict, files: list[tuple[str, str]], progress=None):
        self.boundary = f"adapters-client-{uuid.uuid4().hex}"
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self.progress, self.sent = progress, 0
        self._pieces: list = []
        for key, value in fields.items():
            self._pieces.append(self._head(key) + str(value).encode() + b"\r\n")
        for name, path in files:
            self._pieces.append(self._head("files", name))
            self._pieces.append(Path(path))
            self._pieces.append(b"\r\n")
        self._pieces.append(f"--{self.boundary}--\r\n".encode())
        self._length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self._pieces)
        self._index, self._handle = 0, None

    def _head(self, field: str, filename: str | None = None) -> bytes:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: application/octet-stream\r\n" if filename else ""
        return f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode()

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        while chunk := self.read(1024 * 1024):
            yield chunk

    def read(self, size: int = -1) -> bytes:
        size = size if size and size > 0 else 1024 * 1024
        while self._index < len(self._pieces):
            piece = self._pieces[self._index]
            if isinstance(piece, bytes):
                self._index += 1
                return piece
            if self._handle is None:
                self._handle = open(piece, "rb")
            chunk = self._handle.read(size)
            if chunk:
                self.sent += len(chunk)
                if self.progress:
                    self.progress(self.sent)
                return chunk
            self._handle.close()
            self._handle, self._index = None, self._index + 1
        return b""

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress_bar(files: list[tuple[str, str]], progress):
    """(callback, bar) for the upload: a tqdm bar when wanted (None: on a terminal, for large uploads)."""
    total = sum(os.path.getsize(path) for _, path in files)
    if progress is None:
        progress = sys.stderr.isatty() and total >= PROGRESS_MIN_BYTES
    if not progress:
        return None, None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc="upload", leave=False)

    def update(sent: int) -> None:
        bar.update(sent - bar.n)

    return update, bar


# --- waiting for the verdict ---------------------------------------------------------------
def adapter_id_of(answer: dict):
    """The adapter's id from an upload answer (``adapter_id``, or the version URL)."""
    if answer.get("adapter_id") is not None:
        return int(answer["adapter_id"])
    found = re.search(r"/adapters/(\d+)/versions/", str(answer.get("url", "")))
    return int(found.group(1)) if found else None


def wait_for_verdict(hub, adapter_id: int, version: str, *, timeout: float = 600.0, first_delay: float = 0.5,
                     max_delay: float = 10.0, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Poll the version until its status is final; returns the record (with its report).

    Connection errors, 5xx and 429 are retried until ``timeout``; then WaitTimeout."""
    from .hub_api import is_unreachable

    deadline, delay, last = clock() + timeout, first_delay, None
    while True:
        try:
            last = hub.version(adapter_id, version)
            if last.get("status") in FINAL_STATUSES:
                return last
        except AdaptersClientError as exc:
            if not (is_unreachable(exc) or getattr(exc, "status", None) == 429):
                raise
        if clock() + delay > deadline:
            status = (last or {}).get("status", "unknown")
            raise WaitTimeout(f"version {version} is still {status} after {timeout:g} s; the hub keeps validating "
                              "it: check again later", last=last, adapter_id=adapter_id, version=version)
        sleep(delay)
        delay = min(delay * 1.6, max_delay)
