"""Save/load of adapters: round trips, library file layout, and every refusal with a typed error."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from adapters_client.errors import IncompatibleAdapter, InvalidAdapterConfig
from tests.client.engine_helpers import hidden, randomise, tiny_inputs, tiny_model


@pytest.fixture
def saved(tmp_path):
    """A randomised seq_bn adapter saved under tmp_path/deep/folder (parents created)."""
    model = tiny_model()
    model.add_adapter("a", config="seq_bn[reduction_factor=4]", set_active=True)
    randomise(model.get_adapter("a"))
    folder = tmp_path / "deep" / "folder"
    model.save_adapter(str(folder), "a")
    return model, folder


def test_folder_layout_and_config(saved):
    model, folder = saved
    assert sorted(p.name for p in folder.iterdir()) == ["adapter.safetensors", "adapter_config.json"]
    meta = json.loads((folder / "adapter_config.json").read_text())
    assert meta["name"] == "a" and meta["model_type"] == "bert" and meta["hidden_size"] == 32
    assert meta["model_class"] == "BertAdapterModel" and meta["version"] == "adapters.1.3.0"
    assert meta["config"]["reduction_factor"] == 4 and "architecture" not in meta["config"]
    keys = set(load_file(str(folder / "adapter.safetensors")))
    assert "bert.encoder.layer.0.output.adapters.a.adapter_down.0.weight" in keys
    assert all(".adapters.a." in k for k in keys) and len(keys) == 8


def test_round_trip_and_load_as(saved):
    model, folder = saved
    inputs = tiny_inputs()
    expected = hidden(model, inputs)
    other = tiny_model()
    assert other.load_adapter(str(folder), load_as="b", set_active=True) == "b"
    torch.testing.assert_close(hidden(other, inputs), expected)
    assert other.has_adapter("b") and not other.has_adapter("a")
    assert other.load_adapter(str(folder)) == "a"  # same weights under the saved name
    other.set_active_adapters("a")
    torch.testing.assert_close(hidden(other, inputs), expected)


def test_save_all_adapters(tmp_path):
    model = tiny_model()
    model.add_adapter("x")
    model.add_adapter("y", config="lora")
    model.save_all_adapters(str(tmp_path / "all"))
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["x", "y"]
    other = tiny_model()
    assert other.load_adapter(str(tmp_path / "all" / "y")) == "y"
    assert other.adapters_config["y"] == model.adapters_config["y"]


def _rewrite(folder, change):
    path = folder / "adapter.safetensors"
    state = load_file(str(path))
    change(state)
    save_file(state, str(path))


def _expect_refusal(folder, match, **kwargs):
    model = tiny_model()
    with pytest.raises(IncompatibleAdapter, match=match) as info:
        model.load_adapter(str(folder), **kwargs)
    assert info.value.code == "incompatible_adapter"
    assert not model.has_adapter("a")  # nothing half-loaded stays behind
    return info.value


def test_missing_key_is_refused(saved):
    _, folder = saved
    key = "bert.encoder.layer.1.output.adapters.a.adapter_up.bias"
    _rewrite(folder, lambda s: s.pop(key))
    error = _expect_refusal(folder, "missing weight")
    assert error.details["key"] == key


def test_unexpected_key_is_refused(saved):
    _, folder = saved
    _rewrite(folder, lambda s: s.update({"bert.encoder.layer.0.output.adapters.a.extra": torch.zeros(2)}))
    assert _expect_refusal(folder, "unexpected weight").details["key"].endswith("adapters.a.extra")


def test_wrong_shape_is_refused(saved):
    _, folder = saved
    key = "bert.encoder.layer.0.output.adapters.a.adapter_up.weight"
    _rewrite(folder, lambda s: s.update({key: torch.zeros(32, 3)}))
    assert _expect_refusal(folder, "shape").details["key"] == key


def test_nan_weights_are_refused(saved):
    _, folder = saved
    key = "bert.encoder.layer.0.output.adapters.a.adapter_up.weight"
    _rewrite(folder, lambda s: s[key].fill_(float("nan")))
    _expect_refusal(folder, "NaN")


def test_damaged_safetensors_is_refused(saved):
    _, folder = saved
    (folder / "adapter.safetensors").write_bytes(b"\x00\x01 definitely not safetensors")
    _expect_refusal(folder, "damaged")


def test_pickle_needs_allow_pickle(saved):
    model, folder = saved
    state = load_file(str(folder / "adapter.safetensors"))
    (folder / "adapter.safetensors").unlink()
    torch.save(state, str(folder / "pytorch_adapter.bin"))
    _expect_refusal(folder, "allow_pickle")
    other = tiny_model()
    other.load_adapter(str(folder), allow_pickle=True, set_active=True)
    torch.testing.assert_close(hidden(other, tiny_inputs()), hidden(model, tiny_inputs()))


def test_missing_weights_file(saved):
    _, folder = saved
    (folder / "adapter.safetensors").unlink()
    _expect_refusal(folder, "no weights file")


@pytest.mark.parametrize("field, value, match", [("model_type", "gpt2", "model type"),
                                                 ("hidden_size", 64, "hidden size")])
def test_wrong_backbone_is_refused(saved, field, value, match):
    _, folder = saved
    meta = json.loads((folder / "adapter_config.json").read_text())
    meta[field] = value
    (folder / "adapter_config.json").write_text(json.dumps(meta))
    assert _expect_refusal(folder, match).details["field"] == field


def test_unknown_method_is_refused(saved):
    _, folder = saved
    meta = json.loads((folder / "adapter_config.json").read_text())
    meta["config"] = {"architecture": "mystery", "r": 1}
    (folder / "adapter_config.json").write_text(json.dumps(meta))
    with pytest.raises(InvalidAdapterConfig) as info:
        tiny_model().load_adapter(str(folder))
    assert info.value.field == "architecture"


def test_bad_config_json(saved):
    _, folder = saved
    (folder / "adapter_config.json").write_text("{not json")
    _expect_refusal(folder, "not valid JSON")
    (folder / "adapter_config.json").unlink()
    _expect_refusal(folder, "adapter_config.json is missing")


def test_missing_folder(tmp_path):
    with pytest.raises(IncompatibleAdapter, match="does not exist"):
        tiny_model().load_adapter(str(tmp_path / "nope"))


def test_save_unknown_adapter(tmp_path):
    with pytest.raises(InvalidAdapterConfig):
        tiny_model().save_adapter(str(tmp_path / "x"), "ghost")


def test_failed_reload_keeps_existing_adapter(saved):
    model, folder = saved
    key = "bert.encoder.layer.1.output.adapters.a.adapter_up.bias"
    _rewrite(folder, lambda s: s.pop(key))
    before = hidden(model, tiny_inputs())
    with pytest.raises(IncompatibleAdapter):
        model.load_adapter(str(folder))
    assert model.has_adapter("a") and sorted(model.adapters_config) == ["a"]
    torch.testing.assert_close(hidden(model, tiny_inputs()), before)


def test_hugging_face_repo_id_uses_snapshot_download(saved, monkeypatch):
    import huggingface_hub

    _, folder = saved
    calls = []
    monkeypatch.delenv("ADAPTERS_HUB_URL", raising=False)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: calls.append(repo_id) or folder)
    model = tiny_model()
    assert model.load_adapter("someone/my-adapter") == "a"
    assert calls == ["someone/my-adapter"]


def test_hub_identifier_uses_the_hub_download(saved, monkeypatch):
    import adapters_client.hub

    _, folder = saved
    calls = []

    def fake_download(identifier, **kwargs):
        calls.append((identifier, kwargs.get("version")))
        return folder

    monkeypatch.setattr(adapters_client.hub, "download", fake_download)
    model = tiny_model()
    assert model.load_adapter("sentiment/sst-2@ukp", version="2", load_as="s") == "s"
    assert calls == [("sentiment/sst-2@ukp", "2")]


def test_hub_identifier_errors_keep_their_type_and_unknown_names_are_refused(monkeypatch):
    import adapters_client.hub
    import huggingface_hub

    def fail(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(adapters_client.hub, "download", fail)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)
    with pytest.raises(OSError, match="offline") as info:  # '@' identifiers go to the hub only, errors unchanged
        tiny_model().load_adapter("sentiment/sst-2@ukp")
    assert not isinstance(info.value, IncompatibleAdapter)
    with pytest.raises(IncompatibleAdapter, match="does not exist"):
        tiny_model().load_adapter("a/b/c")


def test_save_and_load_with_head(tmp_path):
    model = tiny_model()
    model.add_adapter("t", config="lora[init_weights=bert]")
    model.add_classification_head("t", num_labels=3)
    model.set_active_adapters("t")
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_adapter(str(tmp_path / "t"), "t")
    assert (tmp_path / "t" / "head_config.json").exists()
    other = tiny_model()
    other.load_adapter(str(tmp_path / "t"), set_active=True)
    with torch.no_grad():
        torch.testing.assert_close(other(**inputs).logits, expected)
    bare = tiny_model()
    bare.load_adapter(str(tmp_path / "t"), with_head=False)
    assert "t" not in bare.heads
    model.save_adapter(str(tmp_path / "nohead"), "t", with_head=False)
    assert not (tmp_path / "nohead" / "head_config.json").exists()


def test_leave_out_on_load(saved):
    model, folder = saved
    inputs = tiny_inputs()
    other = tiny_model()
    other.load_adapter(str(folder), leave_out=[1], set_active=True)
    assert other.adapters_config["a"].leave_out == [1]
    assert not [k for k in other.state_dict() if "layer.1.output.adapters.a." in k]
    model.set_active_adapters("a", skip_layers=[1])  # same as dropping layer 1's adapter
    torch.testing.assert_close(hidden(other, inputs), hidden(model, inputs))
    model.add_adapter("p", config="prompt_tuning[prompt_length=2]")
    model.save_adapter(str(folder.parent / "p"), "p")
    with pytest.raises(InvalidAdapterConfig):
        tiny_model().load_adapter(str(folder.parent / "p"), leave_out=[0])


def test_saved_weights_get_the_usual_file_permissions(tmp_path):
    import os
    import stat

    model = tiny_model()
    model.add_adapter("p", config="seq_bn")
    model.add_classification_head("p", num_labels=2)
    model.save_adapter(str(tmp_path / "p"), "p")
    umask = os.umask(0o022)
    os.umask(umask)
    for name in ("adapter.safetensors", "model_head.safetensors"):
        mode = stat.S_IMODE((tmp_path / "p" / name).stat().st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))
