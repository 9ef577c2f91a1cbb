"""The backbone fingerprint: stable under added adapters; a different backbone warns."""

from __future__ import annotations

import warnings

import pytest
import torch

from adapters_client.fingerprint import BackboneMismatchWarning, check_backbone, config_digest, weights_digest

from .engine_helpers import tiny_model


def _expected(model) -> dict:
    return {"model_name": "tiny/bert", "weights_sha256": weights_digest(model.base_model),
            "config_sha256": config_digest(model.config), "dtype": "float32", "shape_only": False}


def test_digest_ignores_adapters_and_heads_but_not_backbone_weights():
    model = tiny_model("bert")
    before = weights_digest(model.base_model)
    for config in ("seq_bn", "lora", "prefix_tuning", "prompt_tuning"):
        model.add_adapter(config.replace("_", "-"), config=config)
    model.add_classification_head("h")
    assert weights_digest(model.base_model) == before
    with torch.no_grad():
        model.base_model.encoder.layer[0].output.dense.weight[0, 0] += 1e-3
    assert weights_digest(model.base_model) != before


def test_same_backbone_is_silent_and_another_revision_warns():
    model = tiny_model("bert", seed=0)
    expected = _expected(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_backbone(model, expected, "sentiment/x@demo") is True
    other = tiny_model("bert", seed=1)
    with pytest.warns(BackboneMismatchWarning, match="tiny/bert"):
        assert check_backbone(other, expected, "sentiment/x@demo") is False


def test_nothing_to_compare_is_silent():
    model = tiny_model("bert")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_backbone(model, None) and check_backbone(model, {"weights_sha256": "x", "shape_only": True})
        assert check_backbone(model.to(torch.bfloat16), _expected(tiny_model("bert", seed=1)))
