"""The store's invariants after a soak, checked from outside the server (Django set up here).

- every stored object is referenced by at least one VersionFile with that sha256;
- every VersionFile's object exists and hashes to its sha256;
- no temporary file remains under the upload temp dir.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Audit:
    objects: int = 0
    files: int = 0
    versions: int = 0
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


def _stored_keys(hub) -> list[str]:
    if hub.store == "s3":
        client, keys = hub.s3["client"], []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=hub.s3["bucket"]):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return sorted(keys)
    root = Path(hub.weights_dir)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _hash_stream(read) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def _sha256_of(hub, key: str) -> str | None:
    """The object's content hash, or None when it does not exist."""
    if hub.store == "s3":
        from botocore.exceptions import ClientError

        try:
            body = hub.s3["client"].get_object(Bucket=hub.s3["bucket"], Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return _hash_stream(body.read)
    try:
        with open(Path(hub.weights_dir) / key, "rb") as handle:
            return _hash_stream(handle.read)
    except FileNotFoundError:
        return None


def audit(hub) -> Audit:
    from registry.models import AdapterVersion, VersionFile

    result = Audit()
    rows = list(VersionFile.objects.values_list("storage_key", "sha256", "name", "version_id"))
    result.files, result.versions = len(rows), AdapterVersion.objects.count()
    keys = _stored_keys(hub)
    result.objects = len(keys)
    referenced: dict[str, set[str]] = {}
    for key, sha, _, _ in rows:
        referenced.setdefault(key, set()).add(sha)
    for key in keys:
        shas = referenced.get(key)
        if not shas:
            result.violations.append(f"object {key} is referenced by no VersionFile")
        elif key.rsplit("/", 1)[-1] not in shas:
            result.violations.append(f"object {key} is referenced by rows with another sha256 {sorted(shas)}")
    checked: dict[str, str | None] = {}
    for key, sha, name, version_id in rows:
        if key not in checked:
            checked[key] = _sha256_of(hub, key)
        if checked[key] is None:
            result.violations.append(f"version {version_id} file {name}: object {key} does not exist")
        elif checked[key] != sha:
            result.violations.append(f"version {version_id} file {name}: object {key} hashes to {checked[key]}")
    leftovers = sorted(os.listdir(hub.upload_tmp)) if hub.upload_tmp.exists() else []
    result.violations += [f"temporary file left: {name}" for name in leftovers]
    return result
