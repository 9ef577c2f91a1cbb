"""``convert_folder`` / ``adapters-client convert``: pickled adapter folders (the adapters library's default) as the
hub's safetensors folders; tied tensors stored once; refusals leave nothing behind."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import load_file

from adapters_client.cli import main
from adapters_client.convert import convert_folder
from adapters_client.errors import InvalidAdapterFolder
from adapters_client.publish import upload_files

from .engine_helpers import hidden, randomise, tiny_inputs, tiny_model

POOL = "bert.prefix_tuning.prefix_tunings.p."


def _pickled_like_the_library(tmp_path):
    """A prefix-tuning adapter with a head, saved by us, then rewritten the way the adapters library pickles it:
    ``pytorch_adapter.bin`` where each layer's attention also names the pool's tensors (the same storage), and
    ``pytorch_model_head.bin``. Returns (folder, the model's output with the adapter)."""
    model = tiny_model("bert")
    model.add_adapter("p", config="prefix_tuning[prefix_length=3]")
    model.add_classification_head("p", num_labels=3)
    randomise(model.adapter_engine.modules_of("p") + [model.heads["p"]], std=0.3)
    model.set_active_adapters("p")
    expected = hidden(model, tiny_inputs())
    model.save_adapter(str(tmp_path / "ours"), "p")
    folder = tmp_path / "library"
    folder.mkdir()
    state = load_file(str(tmp_path / "ours" / "adapter.safetensors"))
    assert state and all(key.startswith(POOL) for key in state)
    tied = dict(state)
    for layer in (0, 1):  # the library's per-layer aliases of the shared pool, the same tensors
        for key, value in state.items():
            tied[f"bert.encoder.layer.{layer}.attention.self.prefix_tuning.pool.prefix_tunings.p."
                 + key[len(POOL):]] = value
    torch.save(tied, str(folder / "pytorch_adapter.bin"))
    torch.save(load_file(str(tmp_path / "ours" / "model_head.safetensors")), str(folder / "pytorch_model_head.bin"))
    for name in ("adapter_config.json", "head_config.json"):
        (folder / name).write_bytes((tmp_path / "ours" / name).read_bytes())
    return folder, expected, len(state)


def test_a_pickled_folder_becomes_a_hub_folder_that_loads_with_the_same_outputs(tmp_path):
    folder, expected, tensors = _pickled_like_the_library(tmp_path)
    with pytest.raises(InvalidAdapterFolder, match="adapters-client convert"):
        upload_files(folder)  # push refuses it and says what to do

    result = convert_folder(folder, tmp_path / "hub")
    assert result["converted"] == {"pytorch_adapter.bin": "adapter.safetensors",
                                   "pytorch_model_head.bin": "model_head.safetensors"}
    assert result["deduplicated"] == 2 * tensors  # both layers' aliases dropped
    assert result["files"] == ["adapter.safetensors", "adapter_config.json", "head_config.json",
                               "model_head.safetensors"]
    written = load_file(str(tmp_path / "hub" / "adapter.safetensors"))
    assert len(written) == tensors and all(key.startswith(POOL) for key in written)
    assert [name for name, _ in upload_files(tmp_path / "hub")]  # push accepts it now

    fresh = tiny_model("bert")
    fresh.load_adapter(str(tmp_path / "hub"), set_active=True)
    torch.testing.assert_close(hidden(fresh, tiny_inputs()), expected, rtol=0, atol=0)


def test_safetensors_folders_are_copied_and_json_files_kept(tmp_path):
    model = tiny_model("bert")
    model.add_adapter("s", config="seq_bn")
    model.save_adapter(str(tmp_path / "s"), "s", with_head=False)
    (tmp_path / "s" / "README.md").write_text("# mine\n")
    result = convert_folder(tmp_path / "s", tmp_path / "copy")
    assert result["converted"] == {} and result["deduplicated"] == 0
    for name in ("adapter.safetensors", "adapter_config.json", "README.md"):
        assert (tmp_path / "copy" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()


class _Sneaky:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize("damage", ["unsafe", "not_tensors", "garbage"])
def test_unreadable_pickles_are_refused_and_nothing_is_left(tmp_path, damage, capsys):
    folder, _, _ = _pickled_like_the_library(tmp_path)
    weights = folder / "pytorch_adapter.bin"
    if damage == "unsafe":
        weights.write_bytes(pickle.dumps({"w": _Sneaky()}))
    elif damage == "not_tensors":
        torch.save({"w": [1, 2, 3]}, str(weights))
    else:
        weights.write_bytes(b"\x00not a pickle")
    with pytest.raises(InvalidAdapterFolder) as info:
        convert_folder(folder, tmp_path / "hub")
    assert [p["file"] for p in info.value.details["problems"]] == ["pytorch_adapter.bin"]
    assert "this must never run" not in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["library", "ours"]  # no target, no scratch folder


def test_refusals_before_anything_is_written(tmp_path):
    with pytest.raises(InvalidAdapterFolder, match="not a folder"):
        convert_folder(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidAdapterFolder, match="adapter_config.json"):
        convert_folder(tmp_path / "empty", tmp_path / "out")
    folder, _, _ = _pickled_like_the_library(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(InvalidAdapterFolder) as info:
        convert_folder(folder, tmp_path / "taken")
    assert info.value.details["problems"][0]["code"] == "target_exists"
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"
    convert_folder(folder, tmp_path / "taken", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == [
        "adapter.safetensors", "adapter_config.json", "head_config.json", "model_head.safetensors"]


def test_the_cli_command(tmp_path, capsys):
    folder, _, _ = _pickled_like_the_library(tmp_path)
    assert main(["convert", str(folder), str(tmp_path / "hub"), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["path"] == str(tmp_path / "hub") and body["converted"]["pytorch_adapter.bin"] == "adapter.safetensors"
    assert main(["convert", str(folder), str(tmp_path / "hub")]) == 1  # exists: refused (InvalidAdapterFolder)
    assert "exists" in capsys.readouterr().err
    assert main(["convert", str(folder), str(tmp_path / "hub"), "--force"]) == 0
    assert "next: adapters-client push" in capsys.readouterr().out
