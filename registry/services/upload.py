"""Upload a new adapter version: check everything, store the objects, then record the rows.

Order matters (RELIABILITY.md): refuse before storing; store (content-addressed) before the
database transaction; enqueue validation only after commit, and never fail the upload for a
broker outage. Whatever happens, the temporary files are removed, and a refused or failed
upload leaves no row and (best effort) no object behind.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass

from adapters_client.errors import InvalidIdentifier
from adapters_client.identifiers import AdapterId
from adapters_client.rules import MODEL_NAME_HELP, is_public_model_name
from django.conf import settings
from django.db import DatabaseError, IntegrityError, OperationalError, transaction

from ..checks import (
    check_declared_digests, check_file_set, check_folder, check_limits, sha256_file, version_digest,
)
from ..checks.archives import extract_archive
from ..checks.configs import AdapterMeta
from ..choices import Visibility
from ..errors import (
    InvalidConfig, InvalidIdentifierError, InvalidInput, InvalidModelName, NotFound, PlatformError, VersionExists,
)
from ..models import Adapter, AdapterVersion, Organisation, Subtask, Task, VersionFile
from ..permissions import ensure_can_write
from ..storage import delete_object, key_for, object_exists, object_lock, put_file
from . import lifecycle
from .backbones import allow_list_names

log = logging.getLogger(__name__)

_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}\Z")


@dataclass
class IncomingFile:
    """One uploaded file on local disk; ``sha256`` when the streaming handler computed it."""

    name: str
    path: str
    sha256: str | None = None
    size: int | None = None
    source: object = None

    def discard(self) -> None:
        if self.source is not None and hasattr(self.source, "close"):
            with contextlib.suppress(Exception):
                self.source.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@dataclass
class UploadResult:
    version: AdapterVersion
    created: bool


def as_incoming(item) -> IncomingFile:
    """Accept an IncomingFile, a (name, path) pair or a Django uploaded file on disk."""
    if isinstance(item, IncomingFile):
        return item
    if isinstance(item, tuple):
        return IncomingFile(name=item[0], path=item[1])
    if not hasattr(item, "temporary_file_path"):
        raise InvalidInput(f"{item.name!r} was not streamed to disk", code="invalid_upload")
    return IncomingFile(
        name=item.name, path=item.temporary_file_path(), sha256=getattr(item, "sha256", None),
        size=getattr(item, "size", None), source=item,
    )


@contextlib.contextmanager
def unpacked_archive(archive):
    """Unpack an uploaded archive into a private temp dir; yields IncomingFiles; always cleans up."""
    source = as_incoming(archive)
    os.makedirs(settings.HUB_UPLOAD_TMP_DIR, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix="unpack-", dir=settings.HUB_UPLOAD_TMP_DIR)
    try:
        paths = extract_archive(source.path, source.name, tmp_dir)
        yield [IncomingFile(name=name, path=path) for name, path in paths.items()]
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        source.discard()


def upload_version(user, auth, identifier, files, model_name, version, claimed_score=None, description="",
                   license="", declared_sha256: dict | None = None,
                   visibility=Visibility.PUBLIC) -> UploadResult:
    """Check, store and record a new version (status pending); see the module docstring.

    ``files`` (uploaded files on disk, IncomingFiles or (name, path) pairs) are consumed: their
    files are deleted whatever the outcome. Returns the version and whether it was created
    (False: an identical re-upload). Raises the typed errors of registry.errors.
    """
    files = list(files)
    incoming: list[IncomingFile] = []
    try:
        incoming = [as_incoming(f) for f in files]
        org, task, subtask = _target(user, auth, identifier)
        fields = _check_fields(version, claimed_score, license, visibility, description)
        hashes, meta = _check_files(incoming, declared_sha256)
        model_name = _model_name(model_name, meta)
        digest = version_digest(hashes)
        existing = _existing_version(org, subtask, model_name, meta.config_hash, fields["version"], digest)
        if existing is not None:
            return UploadResult(existing, created=False)
        created_keys = _store(incoming, hashes)
        try:
            return _record(user, org, task, subtask, model_name, meta, fields, incoming, hashes, digest)
        except Exception:
            _undo_store(created_keys)
            raise
    finally:
        for item in incoming:
            item.discard()
        for item in files:
            if not isinstance(item, (IncomingFile, tuple)) and hasattr(item, "close"):
                with contextlib.suppress(Exception):
                    item.close()


def _target(user, auth, identifier):
    try:
        aid = AdapterId.parse(identifier)
    except InvalidIdentifier as exc:
        raise InvalidIdentifierError(exc.detail, field="identifier") from None
    if aid.org is None:
        raise InvalidIdentifierError(
            f"an upload needs the organisation: '{aid.path}@<org>'", field="identifier"
        )
    org = Organisation.objects.filter(slug=aid.org).first()
    if org is None:
        raise NotFound(f"no organisation '{aid.org}'", code="organisation_not_found")
    ensure_can_write(user, org, auth)
    task = Task.objects.filter(slug=aid.task).first()
    if task is None:
        raise NotFound(f"no task '{aid.task}'; tasks are created by the hub's administrators",
                       code="task_not_found")
    subtask = Subtask.objects.filter(task=task, slug=aid.subtask).first()
    if subtask is None:
        raise NotFound(f"task '{aid.task}' has no subtask '{aid.subtask}'", code="subtask_not_found")
    return org, task, subtask


def _check_fields(version, claimed_score, license, visibility, description) -> dict:
    if not isinstance(version, str) or not _VERSION.match(version):
        raise InvalidInput(
            "version must be 1-64 letters, digits, '.', '_', '-' or '+', starting with a letter or digit",
            field="version",
        )
    if claimed_score not in (None, ""):
        try:
            claimed_score = float(claimed_score)
        except (TypeError, ValueError):
            raise InvalidInput("claimed_score must be a number", field="claimed_score") from None
        if not math.isfinite(claimed_score):
            raise InvalidInput("claimed_score must be finite", field="claimed_score")
    else:
        claimed_score = None
    if visibility not in Visibility.values:
        raise InvalidInput(f"visibility must be one of {', '.join(Visibility.values)}", field="visibility")
    for field, value, cap in (("description", description, settings.HUB_MAX_DESCRIPTION_CHARS),
                              ("license", license, settings.HUB_MAX_LICENSE_CHARS)):
        if not isinstance(value or "", str) or len(value or "") > cap:
            raise InvalidInput(f"{field} is at most {cap} characters", field=field, limit=cap)
    return {"version": version, "claimed_score": claimed_score, "license": license or "",
            "visibility": visibility, "description": description or ""}


def _check_files(incoming: list[IncomingFile], declared: dict | None) -> tuple[dict[str, str], AdapterMeta]:
    if declared is not None and not isinstance(declared, dict):
        raise InvalidInput("sha256 must map file names to hex digests", field="sha256")
    check_limits({f.name: os.path.getsize(f.path) for f in incoming})
    check_file_set([f.name for f in incoming])
    meta = check_folder({f.name: f.path for f in incoming})
    hashes = {}
    for f in incoming:
        if f.sha256 is None:
            f.sha256, _ = sha256_file(f.path)
        f.size = os.path.getsize(f.path)
        hashes[f.name] = f.sha256
    check_declared_digests(hashes, declared)
    return hashes, meta


def _model_name(model_name, meta: AdapterMeta) -> str:
    model_name = (model_name or "").strip()
    # a config saved from a local backbone folder records its path: the form's public name then wins
    if meta.model_name and model_name and meta.model_name != model_name and is_public_model_name(meta.model_name):
        raise InvalidConfig(
            f"adapter_config.json: model_name: says {meta.model_name!r} but the upload says {model_name!r}",
            field="model_name", filename="adapter_config.json",
        )
    model_name = model_name or meta.model_name
    if not model_name or len(model_name) > 200 or any(c.isspace() for c in model_name):
        raise InvalidInput("model_name (the backbone, e.g. 'bert-base-uncased') is required", field="model_name")
    if not is_public_model_name(model_name) and model_name not in allow_list_names():
        raise InvalidModelName(f"model_name {model_name!r} is not an allow-listed backbone; use {MODEL_NAME_HELP}",
                               field="model_name")
    return model_name


def _existing_version(org, subtask, model_name, config_hash, version, digest) -> AdapterVersion | None:
    """The same version again: a no-op when identical, 409 when the bytes differ."""
    existing = (
        AdapterVersion.objects.select_related("adapter")
        .filter(adapter__organisation=org, adapter__subtask=subtask, adapter__model_name=model_name,
                adapter__config_hash=config_hash, version=version)
        .first()
    )
    if existing is None:
        return None
    if existing.digest == digest:
        return existing
    raise VersionExists(
        f"version {version!r} already exists with different files; versions are immutable, upload a new one",
        version=version,
    )


def _store(incoming: list[IncomingFile], hashes: dict[str, str]) -> list[str]:
    """Store every file; on failure remove what this upload created and re-raise."""
    created: list[str] = []
    try:
        for f in incoming:
            key, new = put_file(f.path, hashes[f.name])
            if new:
                created.append(key)
    except Exception:
        _undo_store(created)
        raise
    return created


def _undo_store(keys: list[str]) -> None:
    """Best effort: delete the objects this upload stored that no VersionFile references.

    Under the object's lock, so a concurrent upload of identical bytes, which found the object
    already stored, cannot record a reference to it while it is being removed."""
    for key in keys:
        try:
            with transaction.atomic(), object_lock(key):
                if VersionFile.objects.filter(storage_key=key).exists():
                    continue
                if not delete_object(key):
                    log.warning("could not delete orphan object %s; the orphan sweeper will", key)
        except DatabaseError:
            log.warning("cannot check references of %s; the orphan sweeper will decide", key)


def _ensure_stored(incoming: list[IncomingFile], hashes: dict[str, str]) -> None:
    """Inside the recording transaction: lock each object and store it again if a cleanup
    removed it after this upload found it present (the temporary file is still on disk)."""
    for f in incoming:
        key = key_for(hashes[f.name])
        with object_lock(key):
            if not object_exists(key):
                put_file(f.path, hashes[f.name])


def _record(user, org, task, subtask, model_name, meta, fields, incoming, hashes, digest) -> UploadResult:
    try:
        with transaction.atomic():
            _ensure_stored(incoming, hashes)
            adapter, _ = Adapter.objects.get_or_create(
                organisation=org, subtask=subtask, model_name=model_name, config_hash=meta.config_hash,
                defaults={
                    "task": task, "model_type": meta.model_type, "method": meta.method, "config": meta.config,
                    "description": fields["description"], "license": fields["license"],
                    "visibility": fields["visibility"], "created_by": user,
                },
            )
            version = AdapterVersion.objects.create(
                adapter=adapter, version=fields["version"], digest=digest,
                claimed_score=fields["claimed_score"], description=fields["description"], uploaded_by=user,
            )
            VersionFile.objects.bulk_create(
                VersionFile(version=version, name=f.name, size=f.size, sha256=hashes[f.name],
                            storage_key=key_for(hashes[f.name]))
                for f in incoming
            )
            lifecycle.enqueue_on_commit(version)
    except IntegrityError:
        # A concurrent upload of the same version won the race.
        existing = _existing_version(org, subtask, model_name, meta.config_hash, fields["version"], digest)
        if existing is not None:
            return UploadResult(existing, created=False)
        raise
    except OperationalError as exc:
        raise PlatformError("the database is unavailable; try again later", code="database_unavailable") from exc
    return UploadResult(version, created=True)
