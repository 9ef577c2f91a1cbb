"""The demo training script on a tiny subset: it runs, saves loadable adapters and records the public backbone."""

import json

import pytest
import torch

from adapters_client import AutoAdapterModel
from demo import train
from demo.training import ADAPTER_NAME, PUBLIC_MODEL_NAME, Batches, backbone_folder, load_tokenizer
from demo.data import demo_split

SENTENCES = ["A warm, funny and moving film.", "Tedious, shallow and far too long.", "It is a movie."]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    models = {}
    argv = ["--methods", "seq_bn", "--subset", "64", "--eval-subset", "32", "--epochs", "1", "--out", str(out)]
    assert train.main(argv, keep_models=models) == 0
    return out, models


def _logits(model, tokenizer):
    model.eval()
    inputs = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def test_run_writes_results_and_an_adapter_folder(tiny_run):
    out, _ = tiny_run
    results = json.loads((out / train.RESULTS_FILE).read_text())
    assert [row["method"] for row in results["rows"]] == ["seq_bn"]
    row = results["rows"][0]
    assert results["data"]["train_used"] == 64 and results["data"]["held_out_used"] == 32
    assert 0.0 <= row["accuracy"] <= 1.0 and row["train_seconds"] > 0
    assert 0 < row["trainable_params"] < 0.02 * row["backbone_params"]
    assert row["file_bytes"] == sum(p.stat().st_size for p in (out / "seq_bn").iterdir())
    assert {p.name for p in (out / "seq_bn").iterdir()} >= {"adapter_config.json", "head_config.json"}


def test_saved_configs_name_the_public_backbone(tiny_run):
    out, _ = tiny_run
    for name in ("adapter_config.json", "head_config.json"):
        document = json.loads((out / "seq_bn" / name).read_text())
        assert document["model_name"] == PUBLIC_MODEL_NAME
        assert str(backbone_folder()) not in json.dumps(document)


def test_saved_adapter_loads_back_with_the_same_logits(tiny_run):
    out, models = tiny_run
    tokenizer = load_tokenizer()
    expected = _logits(models["seq_bn"], tokenizer)
    fresh = AutoAdapterModel.from_pretrained(str(backbone_folder()))
    name = fresh.load_adapter(str(out / "seq_bn"), set_active=True)
    assert name == ADAPTER_NAME
    got = _logits(fresh, tokenizer)
    assert got.shape == (len(SENTENCES), 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    plain = AutoAdapterModel.from_pretrained(str(backbone_folder()))
    plain.add_classification_head("other", num_labels=2)
    assert not torch.allclose(_logits(plain, tokenizer), expected, atol=1e-3)


def test_saved_folder_passes_the_validator(tiny_run):
    from validator.backbones import MINILM
    from validator.loading import BackboneCache
    from validator.pipeline import validate_folder

    out, _ = tiny_run
    report = validate_folder(out / "seq_bn", MINILM, cache=BackboneCache(device="cpu"))
    assert report.verdict == "valid", report.to_json()


def test_batches_cover_every_example_once_and_are_seeded():
    examples = demo_split().train[:100]
    batches = Batches(load_tokenizer(), examples, 16, 64, True, seed=3)
    seen = [label for _, labels in batches.epoch(0) for label in labels.tolist()]
    assert len(seen) == 100 and sorted(seen) == sorted(e.label for e in examples)
    order = [b["input_ids"].tolist() for b, _ in batches.epoch(0)]
    assert order == [b["input_ids"].tolist() for b, _ in batches.epoch(0)]
    assert order != [b["input_ids"].tolist() for b, _ in batches.epoch(1)]


@pytest.mark.parametrize("argv", [["--methods", "seq_bn,bogus"], ["--lr", "seq_bn"], ["--epochs", "0"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit) as info:
        train.parse_args(argv)
    assert info.value.code == 2


def test_table_lists_each_method():
    rows = [{"method": "seq_bn", "trainable_params": 261650, "trainable_pct": 1.15, "file_bytes": 1_050_000,
             "accuracy": 0.8123, "train_seconds": 12.0}]
    table = train.format_table(rows)
    assert "seq_bn" in table and "261,650" in table and "81.23%" in table and "1.0 MB" in table
