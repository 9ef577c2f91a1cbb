"""A whole journey over real HTTP: token from `hubtoken`, push with the client library, pending,
marked valid with `versionstatus`, then resolve and download with checksums through the client."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

import adapters_client
from adapters_client import AdapterNotFound, HubError
from adapters_client.hub_api import HubClient
from registry.models import AdapterVersion, Subtask, Task

from ..registry.upload_helpers import adapter_files

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def adapter_folder(tmp_path):
    folder = tmp_path / "sst-2"
    folder.mkdir()
    for name, content in adapter_files(seed=3).items():
        (folder / name).write_bytes(content)
    return folder


def hubtoken(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("hubtoken", *args, stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    return lines[0]


def test_push_pending_then_valid_then_resolve_and_download(live_server, adapter_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    task = Task.objects.create(slug="sentiment", name="Sentiment")
    Subtask.objects.create(task=task, slug="sst-2", name="SST-2")
    token = hubtoken("--user", "alice", "--org", "ukp", "--role", "maintainer", "--scope", "upload")
    hub = HubClient(base_url=live_server.url)

    answer = adapters_client.push(adapter_folder, "sentiment/sst-2@ukp", version="1", token=token,
                                  model_name="tiny-bert", hub=hub)
    assert answer["status"] == "pending"
    assert AdapterVersion.objects.get().status == "pending"

    anonymous = HubClient(base_url=live_server.url)
    with pytest.raises(AdapterNotFound):  # only valid versions resolve by default
        adapters_client.resolve("sentiment/sst-2@ukp", hub=anonymous)

    call_command("versionstatus", "sentiment/sst-2@ukp", "1", "--status", "valid", "--skip-checks",
                 "--reason", "tiny test backbone, not allow-listed", stderr=io.StringIO())
    info = adapters_client.resolve("sentiment/sst-2@ukp", hub=anonymous)
    assert (info["version"], info["status"], info["model_name"]) == ("1", "valid", "tiny-bert")

    folder = adapters_client.download("sentiment/sst-2@ukp", hub=anonymous, progress=False)
    for name, content in adapter_files(seed=3).items():
        assert (folder / name).read_bytes() == content
    assert json.loads((folder / "adapter_config.json").read_text())["model_type"] == "bert"


def test_push_without_a_token_is_refused_with_the_hub_code(live_server, adapter_folder):
    task = Task.objects.create(slug="sentiment", name="Sentiment")
    Subtask.objects.create(task=task, slug="sst-2", name="SST-2")
    with pytest.raises(HubError) as info:
        adapters_client.push(adapter_folder, "sentiment/sst-2@ukp", version="1", model_name="tiny-bert",
                             hub=HubClient(base_url=live_server.url, token=None))
    assert info.value.status == 401
    assert AdapterVersion.objects.count() == 0


def test_train_push_then_load_in_one_line_gives_the_same_outputs(live_server, tmp_path, monkeypatch):
    """Save an adapter with a head from our engine, push it, mark it valid, then
    ``adapters_client.load(identifier)`` rebuilds backbone + adapter + head with the same outputs."""
    import torch
    from transformers import BertConfig

    from adapters_client import AutoAdapterModel

    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    task = Task.objects.create(slug="sentiment", name="Sentiment")
    Subtask.objects.create(task=task, slug="sst-2", name="SST-2")
    token = hubtoken("--user", "bob", "--org", "ukp", "--scope", "upload")

    torch.manual_seed(0)
    backbone = tmp_path / "tiny-bert"
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=99)
    AutoAdapterModel.from_config(config).base_model.save_pretrained(backbone)
    model = AutoAdapterModel.from_pretrained(str(backbone))
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    model.add_classification_head("sst-2", num_labels=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "adapters." in name or "heads." in name:
                param.normal_(std=0.2)
    model.eval()
    model.set_active_adapters("sst-2")
    ids = torch.randint(1, 99, (2, 6))
    expected = model(input_ids=ids).logits
    model.save_adapter(str(tmp_path / "out" / "sst-2"), "sst-2")

    hub = HubClient(base_url=live_server.url)
    answer = adapters_client.push(tmp_path / "out" / "sst-2", "sentiment/sst-2@ukp", version="1", token=token,
                                  model_name="tiny-bert", hub=hub)
    assert answer["status"] == "pending"
    call_command("versionstatus", "sentiment/sst-2@ukp", "1", "--status", "valid", "--skip-checks",
                 "--reason", "tiny test backbone, not allow-listed", stderr=io.StringIO())

    loaded = adapters_client.load("sentiment/sst-2@ukp", hub=HubClient(base_url=live_server.url),
                                  model=AutoAdapterModel.from_pretrained(str(backbone))).eval()
    torch.testing.assert_close(loaded(input_ids=ids).logits, expected, atol=1e-5, rtol=0)
