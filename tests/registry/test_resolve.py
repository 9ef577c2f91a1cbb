"""GET /api/v1/resolve: every rule of CONTRACTS.md section 1."""

from __future__ import annotations

import pytest

from adapters_client.configs import config_hash, load_config
from registry.choices import VersionStatus

from .factories import clear_cache, make_adapter, make_org, make_task_subtask, make_version  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/api/v1/resolve"
SEQ_BN = config_hash(load_config("seq_bn"))
LORA = config_hash(load_config("lora"))


def resolve(client, ident, **params):
    return client.get(URL, {"id": ident, **params})


@pytest.fixture
def sst():
    return make_task_subtask("sentiment", "sst-2")


def test_single_candidate_with_its_default_version_and_files(client, sst):
    adapter = make_adapter(make_org("ukp"), sst, config_hash=SEQ_BN, method="seq_bn")
    make_version(adapter, "1", age_minutes=10)
    make_version(adapter, "2", files=("adapter.safetensors", "adapter_config.json"))
    body = resolve(client, "sentiment/sst-2@ukp").json()
    assert body["identifier"] == "sentiment/sst-2@ukp" and body["adapter_id"] == adapter.pk
    assert (body["version"], body["status"], body["yanked"], body["warning"]) == ("2", "valid", False, "")
    assert (body["model_name"], body["method"], body["config_hash"]) == ("bert-base-uncased", "seq_bn", SEQ_BN)
    files = {f["name"]: f for f in body["files"]}
    assert set(files) == {"adapter.safetensors", "adapter_config.json"}
    file_row = adapter.versions.get(version="2").files.get(name="adapter.safetensors")
    assert files["adapter.safetensors"]["sha256"] == file_row.sha256
    assert files["adapter.safetensors"]["url"].endswith(f"/api/v1/files/{file_row.pk}/download")


def test_org_filter_is_never_ignored(client, sst):
    make_version(make_adapter(make_org("ukp"), sst))
    response = resolve(client, "sentiment/sst-2@other")
    assert response.status_code == 404 and response.json()["code"] == "adapter_not_found"
    # without an org the only candidate is taken
    assert resolve(client, "sentiment/sst-2").json()["identifier"] == "sentiment/sst-2@ukp"


def test_backbone_filter(client, sst):
    org = make_org("ukp")
    bert = make_adapter(org, sst, model_name="bert-base-uncased")
    roberta = make_adapter(org, sst, model_name="roberta-base")
    make_version(bert), make_version(roberta)
    assert resolve(client, "sentiment/sst-2@ukp", model_name="roberta-base").json()["adapter_id"] == roberta.pk
    missing = resolve(client, "sentiment/sst-2@ukp", model_name="gpt2").json()
    assert missing["code"] == "adapter_not_found"
    assert {a["model_name"] for a in missing["available"]} == {"bert-base-uncased", "roberta-base"}


@pytest.mark.parametrize("config", ["seq_bn", "pfeiffer", "SEQ_BN", SEQ_BN])
def test_config_by_name_alias_or_hash(client, sst, config):
    org = make_org("ukp")
    seq = make_adapter(org, sst, method="seq_bn", config_hash=SEQ_BN)
    lora = make_adapter(org, sst, method="lora", config_hash=LORA)
    make_version(seq), make_version(lora)
    assert resolve(client, "sentiment/sst-2@ukp", config=config).json()["adapter_id"] == seq.pk
    assert resolve(client, "sentiment/sst-2@ukp", config="lora").json()["adapter_id"] == lora.pk


def test_config_with_overrides_matches_only_that_configuration(client, sst):
    org = make_org("ukp")
    r16 = make_adapter(org, sst, method="lora", config_hash=config_hash(load_config("lora[r=16]")))
    make_adapter(org, sst, method="lora", config_hash=LORA, model_name="roberta-base")
    make_version(r16)
    assert resolve(client, "sentiment/sst-2@ukp", config="lora[r=16]").json()["adapter_id"] == r16.pk
    assert resolve(client, "sentiment/sst-2@ukp", config="lora[r=4]").status_code == 404


def test_several_candidates_take_the_default_adapter(client, sst):
    a = make_adapter(make_org("ukp"), sst)
    b = make_adapter(make_org("lab"), sst, is_default=True)
    make_version(a), make_version(b)
    assert resolve(client, "sentiment/sst-2").json()["adapter_id"] == b.pk


def test_several_candidates_without_one_default_are_ambiguous(client, sst):
    org = make_org("ukp")
    a = make_adapter(org, sst, model_name="bert-base-uncased", is_default=True)
    b = make_adapter(org, sst, model_name="roberta-base", is_default=True)
    make_version(a), make_version(b)
    response = resolve(client, "sentiment/sst-2@ukp")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "ambiguous_identifier"
    assert {c["id"] for c in body["candidates"]} == {a.pk, b.pk}
    assert {c["model_name"] for c in body["candidates"]} == {"bert-base-uncased", "roberta-base"}
    # naming the backbone makes it unique again
    assert resolve(client, "sentiment/sst-2@ukp", model_name="roberta-base").json()["adapter_id"] == b.pk


def test_not_found_suggests_close_identifiers(client, sst):
    make_version(make_adapter(make_org("ukp"), sst))
    body = resolve(client, "sentiment/sst2@ukp").json()
    assert body["code"] == "adapter_not_found"
    assert "sentiment/sst-2@ukp" in body["suggestions"]
    assert resolve(client, "zzz/qqq").json()["suggestions"] == []


@pytest.mark.parametrize("bad", ["sentiment", "Sentiment/sst-2", "a/b@", "a/../b", "a//b", "a/b c"])
def test_invalid_identifier_is_400(client, bad):
    response = resolve(client, bad)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_identifier" and "task" in response.json()["detail"]


def test_missing_id_is_400(client):
    assert client.get(URL).json()["code"] == "invalid_input"


def test_version_pinning(client, sst):
    adapter = make_adapter(make_org("ukp"), sst)
    make_version(adapter, "1", age_minutes=5)
    make_version(adapter, "2")
    assert resolve(client, "sentiment/sst-2@ukp", version="1").json()["version"] == "1"
    missing = resolve(client, "sentiment/sst-2@ukp", version="9")
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"


def test_owner_default_version_wins_over_newest(client, sst):
    adapter = make_adapter(make_org("ukp"), sst)
    first = make_version(adapter, "1", age_minutes=5)
    make_version(adapter, "2")
    adapter.default_version = first
    adapter.save()
    assert resolve(client, "sentiment/sst-2@ukp").json()["version"] == "1"


def test_yanked_default_is_skipped_but_pinned_works_with_warning(client, sst):
    adapter = make_adapter(make_org("ukp"), sst)
    make_version(adapter, "1", age_minutes=5)
    yanked = make_version(adapter, "2", yanked=True, yank_reason="broken head")
    adapter.default_version = yanked
    adapter.save()
    assert resolve(client, "sentiment/sst-2@ukp").json()["version"] == "1"
    pinned = resolve(client, "sentiment/sst-2@ukp", version="2").json()
    assert pinned["version"] == "2" and pinned["yanked"] is True
    assert "yanked" in pinned["warning"] and "broken head" in pinned["warning"]


def test_only_valid_versions_by_default(client, sst):
    adapter = make_adapter(make_org("ukp"), sst)
    make_version(adapter, "1", age_minutes=9)
    for number, state in enumerate(["pending", "validating", "rejected", "error"], start=2):
        make_version(adapter, str(number), status=state, age_minutes=9 - number)
    assert resolve(client, "sentiment/sst-2@ukp").json()["version"] == "1"
    rejected = resolve(client, "sentiment/sst-2@ukp", version="4")
    assert rejected.status_code == 409 and rejected.json()["code"] == "version_not_valid"


def test_no_valid_version_is_404(client, sst):
    make_version(make_adapter(make_org("ukp"), sst), status=VersionStatus.PENDING)
    response = resolve(client, "sentiment/sst-2@ukp")
    assert response.status_code == 404 and response.json()["code"] == "no_valid_version"


def test_resolution_is_cached_and_invalidated_by_writes(client, sst):
    adapter = make_adapter(make_org("ukp"), sst)
    make_version(adapter, "1", age_minutes=5)
    assert resolve(client, "sentiment/sst-2@ukp").json()["version"] == "1"
    make_version(adapter, "2")
    assert resolve(client, "sentiment/sst-2@ukp").json()["version"] == "2"
