"""benchmarks.load_soak: the audit finds each kind of broken invariant; the verdict of an answer."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest

from benchmarks.load_soak import client
from benchmarks.load_soak.audit import audit
from benchmarks.load_soak.soak import Expect, Outcome, plan_sizes
from registry.models import AdapterVersion, VersionFile
from registry.storage import key_for
from tests.registry.factories import make_adapter, make_version


def _store(root, content: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(content).hexdigest()
    key = key_for(sha)
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return key, sha


@pytest.fixture
def hub(db, tmp_path):
    """A filesystem store holding two objects, each referenced by one VersionFile of one version."""
    weights, tmp = tmp_path / "weights", tmp_path / "upload-tmp"
    tmp.mkdir()
    version = make_version(make_adapter(), "1", files=())
    for name, content in (("adapter_config.json", b"{}"), ("adapter.safetensors", b"weights")):
        key, sha = _store(weights, content)
        VersionFile.objects.create(version=version, name=name, size=len(content), sha256=sha, storage_key=key)
    return SimpleNamespace(store="fs", weights_dir=weights, upload_tmp=tmp)


def test_a_consistent_store_passes(hub):
    result = audit(hub)
    assert result.ok, result.violations
    assert (result.objects, result.files, result.versions) == (2, 2, 1)


def test_an_unreferenced_object_is_a_violation(hub):
    key, _ = _store(hub.weights_dir, b"orphan")
    result = audit(hub)
    assert result.violations == [f"object {key} is referenced by no VersionFile"]


def test_a_missing_or_altered_object_is_a_violation(hub):
    rows = list(VersionFile.objects.order_by("name"))
    (hub.weights_dir / rows[0].storage_key).unlink()  # adapter.safetensors gone
    (hub.weights_dir / rows[1].storage_key).write_bytes(b"{} ")  # adapter_config.json altered
    violations = audit(hub).violations
    assert len(violations) == 2
    assert "does not exist" in violations[0] and "hashes to" in violations[1]


def test_a_leftover_temporary_file_is_a_violation(hub):
    (hub.upload_tmp / "abc.upload.part").write_bytes(b"x")
    assert audit(hub).violations == ["temporary file left: abc.upload.part"]
    assert AdapterVersion.objects.count() == 1


def test_an_answer_meets_its_expectation_only_with_its_status_and_code():
    answer = client.Answer(400, "invalid_config", {}, 1.0)
    assert Outcome(Expect("nested", (400,), "invalid_config"), answer).ok
    assert not Outcome(Expect("nested", (400,), "invalid_safetensors"), answer).ok
    assert not Outcome(Expect("unique", (201,)), answer).ok
    dropped = client.Answer(client.NO_ANSWER, None, {}, 1.0)
    assert Outcome(Expect("cut", (400, client.NO_ANSWER), "incomplete_upload"), dropped).ok


def test_the_full_soak_is_200_uploads():
    sizes = plan_sizes(1.0)
    total = sizes["unique"] + sizes["identical"] + 6 + 4 * sizes["racing"] + 2 * sizes["versions"] \
        + 10 * sizes["hostile"] + 3 * sizes["cut"]
    assert total == 200
