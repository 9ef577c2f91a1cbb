"""The trained demo adapters shipped under demo/adapters/: they load onto MiniLM and classify sentiment."""

import json
from pathlib import Path

import pytest
import torch

from adapters_client import AutoAdapterModel
from demo.training import ADAPTER_METHODS, ADAPTER_NAME, FULL, PUBLIC_MODEL_NAME, backbone_folder, load_tokenizer

SHIPPED = Path(__file__).resolve().parents[2] / "demo" / "adapters"
POSITIVE = "A wonderful, moving film with brilliant performances; I loved every minute of it."
NEGATIVE = "A dull, boring and painfully stupid movie, a complete waste of time."


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def results():
    return json.loads((SHIPPED / "results.json").read_text())


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_shipped_adapter_classifies_obvious_sentences(method, tokenizer):
    folder = SHIPPED / method
    assert json.loads((folder / "adapter_config.json").read_text())["model_name"] == PUBLIC_MODEL_NAME
    model = AutoAdapterModel.from_pretrained(str(backbone_folder()))
    model.load_adapter(str(folder), set_active=True)
    model.eval()
    id2label = {index: label for label, index in model.heads[ADAPTER_NAME].config["label2id"].items()}
    inputs = tokenizer([POSITIVE, NEGATIVE], padding=True, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**inputs).logits.softmax(-1)
    assert [id2label[i] for i in probabilities.argmax(-1).tolist()] == ["positive", "negative"]
    assert probabilities[0, 1] > 0.7 and probabilities[1, 0] > 0.7


def test_results_cover_the_shipped_adapters_and_the_baseline(results):
    rows = {row["method"]: row for row in results["rows"]}
    assert set(rows) == set(ADAPTER_METHODS) | {FULL}
    assert results["backbone"] == PUBLIC_MODEL_NAME
    for method in ADAPTER_METHODS:
        folder = SHIPPED / method
        assert rows[method]["file_bytes"] == sum(p.stat().st_size for p in folder.iterdir())
        assert rows[method]["trainable_pct"] < 2.0
    assert rows[FULL]["trainable_params"] > rows[FULL]["backbone_params"]


def test_adapters_meet_the_target_against_full_fine_tuning(results):
    rows = {row["method"]: row for row in results["rows"]}
    full = rows[FULL]
    for method in ADAPTER_METHODS:
        assert rows[method]["accuracy"] >= full["accuracy"] - 0.02, method
        assert rows[method]["trainable_params"] < 0.02 * full["trainable_params"], method


@pytest.mark.parametrize("method", ADAPTER_METHODS)
def test_shipped_adapter_passes_the_validator(method):
    from validator.backbones import MINILM
    from validator.loading import BackboneCache
    from validator.pipeline import validate_folder

    report = validate_folder(SHIPPED / method, MINILM, cache=BackboneCache(device="cpu"))
    assert report.verdict == "valid", report.to_json()


def test_hub_scorer_reproduces_the_recorded_accuracy(results, tokenizer):
    """The validator's scorer on the held-out split agrees with results.json (it reads up to 128 tokens)."""
    from demo.data import demo_split
    from validator.scoring import score

    model = AutoAdapterModel.from_pretrained(str(backbone_folder()))
    model.load_adapter(str(SHIPPED / "seq_bn"), set_active=True)
    samples = [(e.text, e.label_name) for e in demo_split().held_out]
    value = score(model, samples, "accuracy", tokenizer=tokenizer, batch_size=64).value
    recorded = {row["method"]: row for row in results["rows"]}["seq_bn"]["accuracy"]
    assert abs(value - recorded) <= 0.005, (value, recorded)
