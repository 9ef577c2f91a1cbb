"""push: local checks first, never a local path as the backbone, a streamed upload, waiting for the verdict."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import adapters_client
from adapters_client import publish
from adapters_client.errors import (
    HubError, InvalidAdapterFolder, LocalModelName, ValidatorUnavailable, WaitTimeout,
)
from adapters_client.hub_api import HubClient

from .engine_helpers import tiny_model
from .fake_hub import FakeHub, parse_multipart


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def saved(tmp_path) -> Path:
    """A folder written by save_adapter from a model loaded from a local folder (the path is recorded)."""
    model = tiny_model()
    model.config._name_or_path = str(tmp_path / "my-local-bert")
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    model.add_classification_head("sst-2", num_labels=2)
    folder = tmp_path / "out" / "sst-2"
    model.save_adapter(str(folder), "sst-2")
    return folder


def _config(folder: Path) -> dict:
    return json.loads((folder / "adapter_config.json").read_text())


def _set_config(folder: Path, **changes) -> None:
    (folder / "adapter_config.json").write_text(json.dumps({**_config(folder), **changes}))


def test_a_recorded_local_path_is_never_sent_as_the_backbone(hub, saved):
    assert _config(saved)["model_name"].startswith("/")
    with pytest.raises(LocalModelName) as info:
        adapters_client.push(saved, "sentiment/sst-2@demo", version="1", hub=HubClient(base_url=hub.url))
    assert info.value.code == "local_model_name"
    assert "model_name=" in str(info.value) and _config(saved)["model_name"] in str(info.value)
    assert hub.uploads == []


@pytest.mark.parametrize("name", ["/abs/bert", "./bert", "../bert", "~/bert", "C:\\models\\bert", "EXISTING"])
def test_an_explicit_local_path_is_refused_too(hub, saved, name, tmp_path, monkeypatch):
    if name == "EXISTING":  # a relative name that is an existing folder here
        monkeypatch.chdir(tmp_path)
        (tmp_path / "org" / "bert").mkdir(parents=True)
        name = "org/bert"
    with pytest.raises(LocalModelName):
        adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name=name,
                             hub=HubClient(base_url=hub.url))
    assert hub.uploads == []


def test_push_streams_the_hub_files_with_their_checksums(hub, saved):
    (saved / "notes.txt").write_text("not uploaded")
    answer = adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                                  hub=HubClient(base_url=hub.url, token="t0k"), progress=False)
    assert answer["status"] == "pending"
    [upload] = hub.uploads
    expected = {p.name: p.read_bytes() for p in saved.iterdir() if p.name != "notes.txt"}
    assert upload["files"] == expected
    assert upload["fields"]["model_name"] == "bert-base-uncased"
    assert upload["fields"]["identifier"] == "sentiment/sst-2@demo"
    assert json.loads(upload["fields"]["sha256"]) == {n: hashlib.sha256(c).hexdigest() for n, c in expected.items()}
    assert int(upload["headers"]["Content-Length"]) > sum(len(c) for c in expected.values())
    assert upload["headers"]["Authorization"] == "Bearer t0k"


def test_the_config_model_name_is_used_when_it_is_public(hub, saved):
    _set_config(saved, model_name="bert-base-uncased")
    adapters_client.push(saved, "sentiment/sst-2@demo", version="1", hub=HubClient(base_url=hub.url), progress=False)
    assert hub.uploads[0]["fields"]["model_name"] == "bert-base-uncased"


def test_folder_problems_are_all_listed_before_anything_is_sent(hub, saved):
    (saved / "adapter.safetensors").rename(saved / "pytorch_adapter.bin")
    (saved / "model_head.safetensors").unlink()
    with pytest.raises(InvalidAdapterFolder) as info:
        adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                             hub=HubClient(base_url=hub.url))
    codes = [(p["code"], p["file"]) for p in info.value.details["problems"]]
    assert ("missing_file", "adapter.safetensors") in codes and ("missing_file", "model_head.safetensors") in codes
    assert "safetensors only" in str(info.value)
    assert hub.uploads == []


def test_a_broken_safetensors_header_or_config_is_refused(hub, saved):
    (saved / "adapter.safetensors").write_bytes(b"\xff" * 8 + b"{}")
    (saved / "adapter_config.json").write_text("{not json")
    with pytest.raises(InvalidAdapterFolder) as info:
        adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                             hub=HubClient(base_url=hub.url))
    assert {p["code"] for p in info.value.details["problems"]} == {"invalid_safetensors", "invalid_config"}
    assert hub.uploads == []


def test_the_validator_static_checks_run_when_installed(hub, saved):
    _set_config(saved, hidden_size="32")  # our parser ignores it; the hub's check wants an integer
    try:
        publish.load_validator()
        installed = True
    except ValidatorUnavailable:
        installed = False
    client = HubClient(base_url=hub.url)
    if installed:
        with pytest.raises(InvalidAdapterFolder, match="hidden_size"):
            adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                                 hub=client)
        assert hub.uploads == []
    adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased", hub=client,
                         check=False, progress=False)
    assert len(hub.uploads) == 1


def test_wait_polls_until_the_verdict_and_returns_the_report(hub, saved):
    report = {"verdict": "valid", "checks": [{"name": "forward", "outcome": "passed"}]}
    hub.statuses = ["pending", "validating", {"status": "valid", "validation_report": report, "verified_score": 0.9}]
    hub.fail_next["/api/v1/adapters/7/versions/"] = [(503, {"code": "service_unavailable", "detail": "busy"})]
    record = adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                                  hub=HubClient(base_url=hub.url), wait=True, timeout=30, progress=False)
    assert record["status"] == "valid" and record["validation_report"] == report
    assert record["adapter_id"] == 7 and record["identifier"] == "sentiment/sst-2@demo"
    assert len([h for h in hub.hits if "/versions/" in h]) == 4  # the 503, pending, validating, valid


def test_wait_returns_a_rejection_and_times_out_on_no_verdict(hub, saved):
    hub.statuses = [{"status": "rejected", "error_code": "shape_mismatch"}]
    record = adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                                  hub=HubClient(base_url=hub.url), wait=True, progress=False)
    assert (record["status"], record["error_code"]) == ("rejected", "shape_mismatch")
    hub.statuses = ["validating"]
    with pytest.raises(WaitTimeout) as info:
        adapters_client.push(saved, "sentiment/sst-2@demo", version="2", model_name="bert-base-uncased",
                             hub=HubClient(base_url=hub.url), wait=True, timeout=0.2, progress=False)
    assert info.value.details["last"]["status"] == "validating"


def test_wait_does_not_retry_a_refusal(hub, saved):
    hub.fail_next["/api/v1/adapters/7/versions/"] = [(404, {"code": "not_found", "detail": "gone"})]
    with pytest.raises(HubError) as info:
        adapters_client.push(saved, "sentiment/sst-2@demo", version="1", model_name="bert-base-uncased",
                             hub=HubClient(base_url=hub.url), wait=True, progress=False)
    assert info.value.status == 404


def test_wait_for_verdict_backs_off_up_to_a_bound():
    calls, sleeps, now = [], [], [0.0]

    class Hub:
        def version(self, adapter_id, version):
            calls.append((adapter_id, version))
            return {"status": "pending" if len(calls) < 6 else "error"}

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    record = publish.wait_for_verdict(Hub(), 3, "1", timeout=100, first_delay=1, max_delay=2,
                                      clock=lambda: now[0], sleep=sleep)
    assert record["status"] == "error" and calls[0] == (3, "1")
    assert sleeps == [1, 1.6, 2, 2, 2]


def test_multipart_stream_round_trips_and_reports_progress(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.json"
    a.write_bytes(bytes(range(256)) * 5000)
    b.write_text('{"x": 1}')
    seen = []
    with publish.MultipartStream({"version": "1", "identifier": "t/s@o"}, [("a", str(a)), ("b", str(b))],
                                 progress=seen.append) as body:
        data = b"".join(iter(lambda: body.read(4096), b""))
        assert len(data) == len(body)
        fields, files = parse_multipart(body.content_type, data)
    assert fields == {"version": "1", "identifier": "t/s@o"}
    assert files == {"a": a.read_bytes(), "b": b.read_bytes()}
    assert seen[-1] == a.stat().st_size + b.stat().st_size and seen == sorted(seen)


def test_progress_bar_only_when_asked_or_on_a_terminal_for_large_files(tmp_path, monkeypatch):
    small = tmp_path / "s"
    small.write_bytes(b"x" * 10)
    assert publish.progress_bar([("s", str(small))], False) == (None, None)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    assert publish.progress_bar([("s", str(small))], None) == (None, None)  # too small for a bar
    callback, bar = publish.progress_bar([("s", str(small))], True)
    callback(10)
    assert bar.n == 10
    bar.close()
