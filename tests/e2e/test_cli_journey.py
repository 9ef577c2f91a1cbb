"""The adapters-client command line against a live hub (real server, real HTTP): login, push --wait,
resolve, download, then the same adapter offline through the CLI and model.load_adapter."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from celery import _state as celery_state
from django.db import connection

import adapters_client
from adapters_client.cli import main
from registry.models import AdapterVersion, Subtask, Task

from .test_hub_journey import hubtoken

pytestmark = pytest.mark.django_db(transaction=True)
IDENT = "sentiment/sst-2@ukp"


def cli(capsys, *argv) -> tuple[int, dict]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def _mark_valid_when_uploaded(done: list) -> None:
    """Play the worker: once the version exists, record the verdict with the worker's own service
    (the CLI is polling meanwhile)."""
    from registry.services.lifecycle import record_validation

    try:
        deadline = time.monotonic() + 150  # an upload waits for the broker when Redis is slow or down
        while time.monotonic() < deadline and not AdapterVersion.objects.filter(version="1").exists():
            time.sleep(0.1)
        time.sleep(1.0)  # let the CLI see "pending" at least once
        version = AdapterVersion.objects.get(version="1")
        report = {"verdict": "valid", "checks": [{"name": "forward", "outcome": "passed"}]}
        done.append(record_validation(version.pk, version.digest, "valid", report, verified_score=0.5))
    except Exception as exc:  # reported by the test's assertion
        done.append(exc)
    finally:
        connection.close()


def _trained(tmp_path: Path):
    import torch

    from adapters_client import AutoAdapterModel
    from tests.client.engine_helpers import tiny_model

    backbone = tmp_path / "tiny-bert"
    tiny_model().base_model.save_pretrained(backbone)
    model = AutoAdapterModel.from_pretrained(str(backbone))
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    model.add_classification_head("sst-2", num_labels=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "adapters." in name or "heads." in name:
                param.normal_(std=0.2)
    model.eval().set_active_adapters("sst-2")
    model.save_adapter(str(tmp_path / "out"), "sst-2")
    return backbone, model


def _logits(model):
    import torch

    ids = torch.arange(1, 13).reshape(2, 6)
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def test_cli_journey_online_then_offline(live_server, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ADAPTERS_HUB_URL", live_server.url)
    for name in ("ADAPTERS_OFFLINE", "ADAPTERS_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    task = Task.objects.create(slug="sentiment", name="Sentiment")
    Subtask.objects.create(task=task, slug="sst-2", name="SST-2")
    token = hubtoken("--user", "alice", "--org", "ukp", "--role", "maintainer", "--scope", "upload")
    backbone, original = _trained(tmp_path)
    folder = str(tmp_path / "out")

    assert cli(capsys, "login", "--token", "not-a-token", "--json")[0] == 1
    code, body = cli(capsys, "login", "--token", token, "--json")
    assert code == 0 and body["verified"] is True

    code, body = cli(capsys, "push", folder, IDENT, "--version", "1", "--json")
    assert (code, body["error"]["code"]) == (2, "local_model_name")  # the config records the local folder
    assert AdapterVersion.objects.count() == 0

    done: list = []
    worker = threading.Thread(target=_mark_valid_when_uploaded, args=(done,))
    worker.start()
    code, body = cli(capsys, "push", folder, IDENT, "--version", "1", "--model-name", "tiny-bert", "--wait",
                     "--timeout", "180", "--json")
    worker.join()
    assert done == [True] and (code, body["status"], body["model_name"]) == (0, "valid", "tiny-bert")
    assert body["validation_report"]["verdict"] == "valid" and body["verified_score"] == 0.5

    code, body = cli(capsys, "resolve", IDENT, "--json")
    assert (code, body["version"], body["status"]) == (0, "1", "valid")
    code, body = cli(capsys, "download", IDENT, "--json")
    assert code == 0
    for path in Path(folder).iterdir():
        assert (Path(body["path"]) / path.name).read_bytes() == path.read_bytes()
    code, body = cli(capsys, "resolve", "sentiment/sst2@ukp", "--json")
    assert (code, body["error"]["code"]) == (1, "adapter_not_found") and IDENT in body["error"]["detail"]

    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    code, body = cli(capsys, "download", "sentiment/sst-2", "--json")  # no org, offline: the one cached match
    assert code == 0 and body["resolution"]["identifier"] == IDENT
    fresh = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    fresh.load_adapter(IDENT, set_active=True)
    torch.testing.assert_close(_logits(fresh), _logits(original), atol=1e-5, rtol=0)


# --- with a real worker process validating the upload ------------------------------------------------
@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory):
    from tests.validator.factories import save_backbone

    return save_backbone(tmp_path_factory.mktemp("cli-e2e") / "tiny-bert", tokenizer=True)


@pytest.fixture(scope="module")
def real_worker(django_db_setup, tiny_backbone):
    """A Celery worker on Redis validating against the tiny backbone (tests/e2e/worker_helpers.py)."""
    from .worker_helpers import Worker, publishing_to, redis_broker, weights_location, worker_env, write_allow_list

    folder = tiny_backbone.parent
    allow_list = write_allow_list(folder, tiny_backbone)
    broker = redis_broker()
    with publishing_to(broker, HUB_VALIDATOR_BACKBONES=str(allow_list)) as app:
        # publishing_to makes the app current in this thread only; the live server answers uploads in
        # threads of its own, which fall back to Celery's default app: make it that too, meanwhile.
        previous = celery_state.default_app
        celery_state.set_default_app(app)
        worker = Worker(broker.queue, worker_env(broker, allow_list, weights_location(), folder / "worker"),
                        folder / "worker.log").start()
        try:
            yield worker
        finally:
            worker.stop()
            broker.redis().delete(broker.queue)
            celery_state.set_default_app(previous)


@pytest.mark.services
@pytest.mark.slow
def test_cli_push_wait_gets_the_real_workers_verdict(live_server, real_worker, tiny_backbone, tmp_path, monkeypatch,
                                                     capsys):
    from tests.registry.upload_helpers import maintainer_setup

    from .worker_helpers import TINY, attach_sample, built_adapter, logs_on_failure

    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ADAPTERS_OFFLINE", raising=False)
    _, _, token = maintainer_setup()  # org ukp, subtask sentiment/sst-2
    attach_sample()
    good = built_adapter(tiny_backbone, tmp_path / "good", TINY, config="seq_bn", name="sst-2",
                         head_kwargs={"id2label": {0: "negative", 1: "positive"}})
    bad = built_adapter(tiny_backbone, tmp_path / "bad", TINY, config="seq_bn", name="sst-2")
    _non_finite(bad)
    with logs_on_failure(real_worker):
        code, body = cli(capsys, "push", str(good), IDENT, "--version", "1", "--token", token, "--hub",
                         live_server.url, "--wait", "--timeout", "150", "--json")
        assert (code, body.get("status")) == (0, "valid"), body
        assert body["validation_report"]["verdict"] == "valid"
        code, body = cli(capsys, "push", str(bad), IDENT, "--version", "2", "--token", token, "--hub",
                         live_server.url, "--wait", "--timeout", "150", "--json")
        assert (code, body.get("status"), body.get("error_code")) == (1, "rejected", "non_finite_weights"), body
    capsys.readouterr()  # logs_on_failure may print the worker's log
    code, body = cli(capsys, "resolve", IDENT, "--hub", live_server.url, "--json")
    assert (code, body["version"]) == (0, "1")  # the rejected version never resolves by default


def _non_finite(folder: Path) -> None:
    """A NaN in the adapter's weights: the validator's finite check rejects it."""
    from safetensors.torch import load_file, save_file

    path = folder / "adapter.safetensors"
    tensors = load_file(str(path))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    save_file(tensors, str(path))
