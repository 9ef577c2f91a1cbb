"""The adapters-client command line: every command with --json, its errors and exit codes."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_client.cli import main
from adapters_client.errors import ValidatorUnavailable
from adapters_client.hub_api import HubClient
from adapters_client.publish import load_validator

from .engine_helpers import tiny_model
from .fake_hub import FakeHub

ROOT = Path(__file__).resolve().parents[2]
FILES = {"adapter_config.json": b'{"config": {"architecture": "bottleneck"}}', "adapter.safetensors": os.urandom(5000)}
IDENT = "sentiment/sst-2@demo"


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "home"))
    for name in ("ADAPTERS_OFFLINE", "ADAPTERS_HUB_TOKEN", "ADAPTERS_HUB_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def run(capsys, *argv) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.fixture
def saved(tmp_path) -> Path:
    model = tiny_model()
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    model.add_classification_head("sst-2", num_labels=2)
    model.save_adapter(str(tmp_path / "out"), "sst-2")
    return tmp_path / "out"


def test_resolve_and_download(hub, capsys):
    resolution = hub.add_version(IDENT, FILES)
    code, body = run(capsys, "resolve", IDENT, "--hub", hub.url, "--json")
    assert code == 0 and body["digest"] == resolution["digest"]
    code, body = run(capsys, "download", IDENT, "--hub", hub.url, "--json")
    assert code == 0 and body["resolution"]["digest"] == resolution["digest"]
    assert {p.name: p.read_bytes() for p in Path(body["path"]).iterdir()} == FILES
    assert main(["resolve", IDENT, "--hub", hub.url]) == 0
    assert "version 1" in capsys.readouterr().out
    assert main(["download", IDENT, "--hub", hub.url]) == 0
    assert capsys.readouterr().out.strip() == body["path"]


def test_refusals_exit_1_and_platform_errors_exit_2(hub, capsys):
    hub.resolutions["sentiment/sst2@demo"] = {"code": "adapter_not_found", "detail": "no adapter", "_status": 404,
                                              "suggestions": [IDENT]}
    code, body = run(capsys, "resolve", "sentiment/sst2@demo", "--hub", hub.url, "--json")
    assert (code, body["error"]["code"], body["error"]["suggestions"]) == (1, "adapter_not_found", [IDENT])
    assert "did you mean" in body["error"]["detail"]
    code, body = run(capsys, "resolve", "Not An Id", "--json")
    assert (code, body["error"]["code"]) == (1, "invalid_identifier")
    hub.fail_next["/api/v1/resolve"] = [(503, {"code": "service_unavailable", "detail": "db down"})]
    code, body = run(capsys, "download", IDENT, "--hub", hub.url, "--json")
    assert (code, body["error"]["status"]) == (2, 503)
    code, body = run(capsys, "resolve", IDENT, "--hub", "http://127.0.0.1:1", "--json")
    assert (code, body["error"]["code"]) == (2, "hub_error")
    code, body = run(capsys, "resolve", "--json")
    assert (code, body["error"]["code"]) == (2, "usage")
    assert main(["resolve"]) == 2  # a plain argparse usage error without --json
    assert "required: identifier" in capsys.readouterr().err


def test_offline_miss_exits_2(capsys, monkeypatch):
    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    code, body = run(capsys, "download", IDENT, "--json")
    assert (code, body["error"]["code"]) == (2, "offline_cache_miss")


@pytest.mark.parametrize("status,expected", [("valid", 0), ("rejected", 1), ("error", 2)])
def test_push_wait_exit_code_follows_the_verdict(hub, saved, capsys, status, expected):
    hub.statuses = ["validating", {"status": status, "validation_report": {"verdict": status, "checks": []}}]
    code, body = run(capsys, "push", str(saved), IDENT, "--version", "1", "--model-name", "bert-base-uncased",
                     "--hub", hub.url, "--token", "t", "--wait", "--json")
    assert (code, body["status"], body["validation_report"]["verdict"]) == (expected, status, status)
    assert hub.uploads[0]["headers"]["Authorization"] == "Bearer t"


def test_push_errors(hub, saved, capsys):
    code, body = run(capsys, "push", str(saved), IDENT, "--version", "1", "--model-name", "/home/me/bert",
                     "--hub", hub.url, "--json")
    assert (code, body["error"]["code"]) == (2, "local_model_name")
    code, body = run(capsys, "push", str(saved), IDENT, "--version", "1", "--hub", hub.url, "--json")
    assert (code, body["error"]["code"]) == (2, "local_model_name")  # the config records no backbone
    (saved / "adapter.safetensors").write_bytes(b"")
    code, body = run(capsys, "push", str(saved), IDENT, "--version", "1", "--model-name", "bert-base-uncased",
                     "--hub", hub.url, "--json")
    assert (code, body["error"]["code"]) == (1, "invalid_adapter_folder")
    assert body["error"]["problems"][0]["code"] == "invalid_safetensors"
    (saved / "adapter.safetensors").unlink()
    code, body = run(capsys, "push", str(saved), IDENT, "--version", "1", "--model-name", "bert-base-uncased",
                     "--hub", hub.url, "--json")
    assert (code, body["error"]["problems"][0]["code"]) == (1, "missing_file")
    assert hub.uploads == []


def test_push_unauthorised_exits_1(hub, saved, capsys):
    hub.tokens = {"good"}
    code, body = run(capsys, "push", str(saved), IDENT, "--version", "1", "--model-name", "bert-base-uncased",
                     "--hub", hub.url, "--token", "bad", "--json")
    assert (code, body["error"]["status"], body["error"]["hub_code"]) == (1, 401, "not_authenticated")


def test_login_saves_a_private_token_the_library_reads(hub, env, capsys, monkeypatch):
    hub.tokens = {"secret-1"}
    code, body = run(capsys, "login", "--token", "wrong", "--hub", hub.url, "--json")
    assert (code, body["error"]["status"]) == (1, 401)
    assert not (env / "home" / "token").exists()
    code, body = run(capsys, "login", "--token", "secret-1", "--hub", hub.url, "--json")
    path = Path(body["token_path"])
    assert code == 0 and path == env / "home" / "token" and path.read_text().strip() == "secret-1"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert HubClient().token == "secret-1"
    monkeypatch.setenv("ADAPTERS_HUB_TOKEN", "from-env")
    assert HubClient().token == "from-env"
    monkeypatch.delenv("ADAPTERS_HUB_TOKEN")
    monkeypatch.setattr(sys, "stdin", io.StringIO("piped-token\n"))
    assert main(["login", "--no-verify"]) == 0
    assert HubClient().token == "piped-token"
    assert main(["logout"]) == 0 and HubClient().token is None


def test_cache_ls_verify_and_prune(hub, env, capsys):
    resolution = hub.add_version(IDENT, FILES)
    assert main(["download", IDENT, "--hub", hub.url]) == 0
    capsys.readouterr()
    code, body = run(capsys, "cache", "ls", "--json")
    [entry] = body["adapters"]
    assert (code, entry["identifier"], entry["digest"], entry["complete"]) == (0, IDENT, resolution["digest"], True)
    code, body = run(capsys, "cache", "verify", "--json")
    assert (code, body["corrupt"], body["blobs"]) == (0, [], 2)
    weights = next(f["sha256"] for f in resolution["files"] if f["name"] == "adapter.safetensors")
    blob = env / "cache" / "blobs" / weights
    with open(blob, "r+b") as handle:  # flip a byte in place (the snapshot is a hard link of it)
        first = handle.read(1)
        handle.seek(0)
        handle.write(bytes([first[0] ^ 0xFF]))
    code, body = run(capsys, "cache", "verify", "--json")
    assert code == 1 and str(blob) in [c["path"] for c in body["corrupt"]]
    assert not blob.exists() and not (env / "cache" / "snapshots" / resolution["digest"]).exists()
    code, body = run(capsys, "download", IDENT, "--hub", hub.url, "--json")  # fetched again, verified
    assert code == 0 and (Path(body["path"]) / "adapter.safetensors").read_bytes() == FILES["adapter.safetensors"]
    assert main(["cache", "prune"]) == 2
    code, body = run(capsys, "cache", "prune", "--all", "--dry-run", "--json")
    assert code == 0 and len(body["blobs"]) == 2 and blob.exists()
    code, body = run(capsys, "cache", "prune", "--all", "--json")
    assert code == 0 and not blob.exists() and not list((env / "cache" / "refs").iterdir())
    code, body = run(capsys, "cache", "ls", "--json")
    assert body["adapters"] == []


def _validator_installed() -> bool:
    try:
        load_validator()
    except ValidatorUnavailable:
        return False
    return True


def test_validate_runs_the_validator_or_says_it_is_missing(saved, capsys):
    code, body = run(capsys, "validate", str(saved), "--static-only", "--json")
    if not _validator_installed():
        assert (code, body["error"]["code"]) == (2, "validator_unavailable")
        return
    assert (code, body["verdict"]) == (0, "valid")
    config = json.loads((saved / "adapter_config.json").read_text())
    (saved / "adapter_config.json").write_text(json.dumps({**config, "hidden_size": "32"}))
    code, body = run(capsys, "validate", str(saved), "--static-only", "--json")
    assert (code, body["verdict"]) == (1, "rejected")
    assert any("hidden_size" in p["detail"] for p in body["problems"])


def test_validate_on_a_local_backbone(saved, tmp_path, capsys):
    if not _validator_installed():
        assert main(["validate", str(saved), "--backbone", "x"]) == 2
        return
    backbone = tmp_path / "tiny-bert"
    tiny_model().base_model.save_pretrained(backbone)
    code, body = run(capsys, "validate", str(saved), "--backbone", str(backbone), "--device", "cpu", "--json")
    assert (code, body["verdict"]) == (0, "valid"), body
    code, _ = run(capsys, "validate", str(tmp_path / "missing"), "--json")
    assert code == 2


def test_python_dash_m_and_the_console_script():
    done = subprocess.run([sys.executable, "-m", "adapters_client", "--help"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0 and "resolve" in done.stdout and "exit status" in done.stdout
    done = subprocess.run([sys.executable, "-m", "adapters_client", "cache", "nope"], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
