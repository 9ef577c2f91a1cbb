"""The verified score: metrics on label ids, and a classification head scored on text/label pairs."""

from __future__ import annotations

import pytest

from validator.errors import NotScorable, UsageError
from validator.scoring import accuracy, macro_f1, score


def test_accuracy_and_macro_f1_by_hand():
    gold = [0, 0, 1, 1, 2]
    predicted = [0, 1, 1, 1, 0]
    assert accuracy(predicted, gold) == pytest.approx(3 / 5)
    # label 0: tp1 fp1 fn1 -> 0.5; label 1: tp2 fp1 fn0 -> 0.8; label 2: tp0 -> 0
    assert macro_f1(predicted, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(gold, gold) == 1.0
    with pytest.raises(UsageError):
        accuracy([0], [0, 1])


@pytest.fixture
def scored_model(backbone_dir, adapter):
    from transformers import AutoTokenizer

    from adapters_client import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(backbone_dir))
    model.load_adapter(str(adapter(num_labels=2, head_kwargs={"id2label": {0: "neg", 1: "pos"}})),
                       set_active=True)
    return model.eval(), AutoTokenizer.from_pretrained(str(backbone_dir))


def test_score_matches_the_head_predictions(scored_model):
    import torch

    model, tokenizer = scored_model
    texts = ["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w10", "w11 w12", "w13 w14 w15"]
    with torch.no_grad():
        encoded = tokenizer(texts, padding=True, return_tensors="pt")
        predicted = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).logits.argmax(-1)
    names = ["neg", "pos"]
    gold = [names[int(p)] for p in predicted]
    gold[0] = names[1 - int(predicted[0])]  # exactly one wrong
    samples = list(zip(texts, gold))
    result = score(model, samples, "accuracy", tokenizer=tokenizer, batch_size=4)
    assert result.metric == "accuracy" and result.samples == 6 and result.value == pytest.approx(5 / 6)
    f1 = score(model, samples, "macro_f1", tokenizer=tokenizer)
    ids = [names.index(g) for g in gold]
    assert f1.value == pytest.approx(macro_f1(predicted.tolist(), ids))
    assert model.training is False


def test_score_refuses_bad_input(scored_model):
    model, tokenizer = scored_model
    with pytest.raises(NotScorable):
        score(model, [("w1", "maybe")], "accuracy", tokenizer=tokenizer)
    with pytest.raises(NotScorable):
        score(model, [("w1", 5)], "accuracy", tokenizer=tokenizer)
    with pytest.raises(NotScorable):
        score(model, [("w1", 0)], "accuracy", tokenizer=None)
    with pytest.raises(UsageError):
        score(model, [("w1", 0)], "bleu", tokenizer=tokenizer)
    with pytest.raises(UsageError):
        score(model, [], "accuracy", tokenizer=tokenizer)


def test_score_folder_scores_on_the_cached_backbone_and_leaves_it_clean(adapter, cache, allow_list, scored_model):
    from validator.backbones import parse_allow_list
    from validator.scoring import score_folder

    model, tokenizer = scored_model
    folder = adapter(num_labels=2, head_kwargs={"id2label": {0: "neg", 1: "pos"}})
    samples = [("w1 w2 w3", "neg"), ("w4 w5", "pos"), ("w6 w7 w8 w9", "pos"), ("w10", "neg")]
    result = score_folder(folder, "tiny-bert", samples, "macro_f1", allow_list=allow_list, cache=cache)
    assert result == score(model, samples, "macro_f1", tokenizer=tokenizer)  # same adapter, same weights
    loaded, cached = cache.get(parse_allow_list(allow_list)["tiny-bert"])
    assert cached and not loaded.model.adapter_engine.configs and len(loaded.model.heads) == 0


def test_score_folder_refuses_what_cannot_be_scored(adapter, cache, allow_list):
    from tests.validator.factories import tiny_config
    from validator.scoring import score_folder

    with pytest.raises(NotScorable):
        score_folder(adapter(head="tagging"), "tiny-bert", [("w1", 0)], "accuracy", allow_list=allow_list,
                     cache=cache)
    with pytest.raises(NotScorable):
        score_folder(adapter(head=None), "tiny-bert", [("w1", 0)], "accuracy", allow_list=allow_list, cache=cache)
    shape_only = {"cfg": {"source": "config_only", "config": tiny_config().to_dict()}}
    with pytest.raises(NotScorable):
        score_folder(adapter(), "cfg", [("w1", 0)], "accuracy", allow_list=shape_only, cache=cache)
