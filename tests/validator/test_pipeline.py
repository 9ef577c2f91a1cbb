"""validate_folder: a good adapter passes every check; each fault of RELIABILITY.md is rejected with its code."""

from __future__ import annotations

import json

import pytest
import torch

from tests.validator.factories import edit_json, edit_weights, first_key
from validator.report import Report

CHECKS = ["files", "backbone", "config", "weights", "finite", "load", "forward", "head"]


def _problems(report, check, code):
    return [p for p in report.check(check).problems if p["code"] == code]


@pytest.mark.parametrize("config", ["seq_bn", "lora"])
def test_valid_adapter_with_head_gets_a_full_report(adapter, validate, config):
    report = validate(adapter(config=config))
    assert report.verdict == "valid", report.to_json()
    assert [c.name for c in report.checks] == CHECKS
    assert all(c.outcome == "passed" and c.code is None for c in report.checks)
    assert all(c.seconds >= 0 and c.peak_bytes and c.peak_bytes > 0 for c in report.checks)
    assert report.adapter.name == "demo" and report.adapter.method == config and report.adapter.head_type
    fingerprint = report.backbone
    assert fingerprint.model_name == "tiny-bert" and fingerprint.source == "folder"
    assert len(fingerprint.weights_sha256) == 64 and len(fingerprint.config_sha256) == 64
    assert report.check("forward").figures["max_abs_change"] > 0
    assert report.check("backbone").figures["probe"] == "tokenizer"
    assert Report.from_dict(json.loads(report.to_json())) == report


def test_wrong_shape_is_shape_mismatch_with_key_expected_and_got(adapter, validate):
    folder = adapter()
    key = first_key(folder, "adapter_down.0.weight")
    edit_weights(folder, lambda t: t.__setitem__(key, torch.zeros(5, 32)))
    report = validate(folder)
    assert report.verdict == "rejected" and "shape_mismatch" in report.codes
    [problem] = _problems(report, "weights", "shape_mismatch")
    assert problem["key"] == key and problem["got"] == [5, 32] and problem["expected"] == [2, 32]
    assert report.check("load").outcome == "skipped"


def test_missing_and_unexpected_keys_are_listed(adapter, validate):
    folder = adapter()
    gone = first_key(folder, "layer.1.output.adapters.demo.adapter_up.bias")
    extra = "bert.encoder.layer.0.output.adapters.demo.adapter_side.weight"

    def edit(tensors):
        del tensors[gone]
        tensors[extra] = torch.zeros(3)

    edit_weights(folder, edit)
    report = validate(folder)
    assert report.verdict == "rejected" and report.check("weights").code == "unexpected_keys"
    assert [p["key"] for p in _problems(report, "weights", "missing_keys")] == [gone]
    assert [p["key"] for p in _problems(report, "weights", "unexpected_keys")] == [extra]


def test_nan_and_inf_weights_are_non_finite_weights(adapter, validate):
    folder = adapter()
    key = first_key(folder, "adapter_up.weight")
    head_key = first_key(folder, "heads.demo.1.weight", "model_head.safetensors")
    edit_weights(folder, lambda t: t[key].__setitem__((0, 0), float("nan")))
    edit_weights(folder, lambda t: t[head_key].__setitem__((0, 0), float("inf")), "model_head.safetensors")
    report = validate(folder)
    assert report.codes == ["non_finite_weights"]
    assert sorted(p["key"] for p in report.check("finite").problems) == sorted([key, head_key])
    assert report.check("forward").outcome == "skipped"


def test_finite_weights_with_non_finite_output(adapter, validate):
    folder = adapter()
    edit_weights(folder, lambda t: [v.fill_(3e38) for k, v in t.items() if "adapter_up.weight" in k])
    report = validate(folder)
    assert report.check("finite").outcome == "passed"
    assert report.codes == ["non_finite_output"]
    assert {p["key"] for p in report.check("forward").problems} >= {"last_hidden_state"}


def test_head_weights_of_the_wrong_shape_are_head_shape(adapter, validate):
    folder = adapter(num_labels=2)
    edit_json(folder, "head_config.json", lambda d: d["config"].update(num_labels=3, label2id=None))
    report = validate(folder)
    assert report.codes == ["head_shape"]
    problems = {p["key"]: (p["code"], p["expected"], p["got"]) for p in report.check("weights").problems}
    assert problems == {"heads.demo.4.weight": ("head_shape", [3, 32], [2, 32]),
                        "heads.demo.4.bias": ("head_shape", [3], [2])}


def test_labels_that_do_not_fit_the_head_output_are_head_shape(adapter, validate):
    folder = adapter(num_labels=2)
    edit_json(folder, "head_config.json", lambda d: d["config"].update(label2id={"a": 0, "b": 1, "c": 2}))
    report = validate(folder)
    assert report.codes == ["head_shape"]
    [problem] = report.check("head").problems
    assert problem["key"] == "label2id" and problem["expected"] == [0, 1] and problem["got"] == [0, 1, 2]


def test_tagging_head_output_shape_is_checked(adapter, validate):
    report = validate(adapter(head="tagging", num_labels=4))
    assert report.verdict == "valid", report.to_json()
    assert report.check("head").outcome == "passed" and report.adapter.head_type == "tagging"


def test_backbone_not_on_the_allow_list_is_unknown_backbone(adapter, validate, backbone_dir):
    folder = adapter()
    for name in ("bert-base-uncased", str(backbone_dir)):  # a local path only counts when allowed
        report = validate(folder, backbone=name)
        assert report.verdict == "rejected" and report.codes == ["unknown_backbone"]
        assert report.backbone is None
        assert [c.outcome for c in report.checks] == ["passed", "failed", "passed", "skipped", "passed",
                                                      "skipped", "skipped", "skipped"]
    assert validate(folder, backbone=str(backbone_dir), allow_local_paths=True).valid


def test_identity_adapter_is_flagged_no_effect(adapter, validate):
    folder = adapter(scale=0.0, head=None)
    report = validate(folder)
    assert report.verdict == "valid" and report.warnings == ["no_effect"]
    assert report.check("forward").outcome == "warning"
    strict = validate(folder, reject_no_effect=True)
    assert strict.verdict == "rejected" and strict.codes == ["no_effect"]


def test_backbone_of_another_hidden_size_is_invalid_config(tmp_path, cache, adapter):
    from tests.validator.factories import save_backbone
    from validator.pipeline import validate_folder

    wide = save_backbone(tmp_path / "wide", hidden_size=48, num_attention_heads=2)
    report = validate_folder(adapter(), "wide", allow_list={"wide": {"source": "folder", "path": str(wide)}},
                             cache=cache)
    assert report.codes == ["invalid_config"]
    assert {(p["key"], p["expected"], p["got"]) for p in report.check("config").problems} == {
        ("hidden_size", 48, 32)}


def test_files_are_checked_with_the_hub_upload_checks(adapter, validate):
    pickled = adapter()
    (pickled / "adapter.safetensors").write_bytes(b"\x80\x04" + b"\x00" * 64)
    assert validate(pickled).codes == ["pickle_not_accepted"]
    truncated = adapter()
    data = (truncated / "adapter.safetensors").read_bytes()
    (truncated / "adapter.safetensors").write_bytes(data[:40])
    report = validate(truncated)
    assert report.codes == ["invalid_safetensors"]
    assert [c.outcome for c in report.checks[1:]] == ["skipped"] * 7
    linked = adapter(head=None)
    (linked / "README.md").symlink_to("/etc/hostname")
    assert validate(linked).codes == ["invalid_filename"]
    unknown_method = adapter()
    edit_json(unknown_method, "adapter_config.json", lambda d: d.update(config={"architecture": "nope"}))
    assert validate(unknown_method).codes == ["invalid_config"]


def test_the_cached_backbone_is_left_clean(adapter, validate, cache, allow_list):
    from validator.backbones import parse_allow_list

    validate(adapter())
    bad = adapter()
    edit_weights(bad, lambda t: [v.fill_(3e38) for k, v in t.items() if "adapter_up.weight" in k])
    validate(bad)
    loaded, cached = cache.get(parse_allow_list(allow_list)["tiny-bert"])
    assert cached and not loaded.model.adapter_engine.configs and len(loaded.model.heads) == 0
    assert loaded.model.adapter_engine.active_setup is None
    with torch.no_grad():
        again = loaded.model.base_model(**loaded.probe)[0]
    torch.testing.assert_close(again, loaded.baseline)


def test_an_unavailable_allow_listed_backbone_is_a_platform_error(adapter, cache, tmp_path):
    from validator.errors import BackboneUnavailable, PlatformFault
    from validator.pipeline import validate_folder

    with pytest.raises(BackboneUnavailable) as caught:
        validate_folder(adapter(), "gone", allow_list={"gone": str(tmp_path / "nowhere")}, cache=cache)
    assert isinstance(caught.value, PlatformFault) and caught.value.code == "backbone_unavailable"


def test_a_config_implying_huge_tensors_is_rejected_without_allocating_them(adapter, validate):
    folder = adapter(config="lora")
    edit_json(folder, "adapter_config.json", lambda d: d["config"].update(r=2 ** 40))
    edit_json(folder, "head_config.json", lambda d: d["config"].update(num_labels=10 ** 9, label2id=None))
    report = validate(folder)
    assert report.verdict == "rejected" and report.check("weights").code == "shape_mismatch"
    shapes = {p["key"]: p["expected"] for p in report.check("weights").problems if "got" in p}
    assert shapes["bert.encoder.layer.0.attention.self.query.loras.demo.lora_A"] == [2 ** 40, 32]
    assert shapes["heads.demo.4.weight"] == [10 ** 9, 32]
    assert report.check("weights").added_bytes < 512 * 1024 * 1024


def test_thousands_of_bad_keys_keep_the_report_small(adapter, validate):
    folder = adapter(head=None)
    edit_weights(folder, lambda t: t.update({f"bert.junk.{i}": torch.zeros(1) for i in range(300)}))
    weights = validate(folder).check("weights")
    assert weights.code == "unexpected_keys" and len(weights.problems) == 100
    assert weights.figures["problems_total"] == 300


def test_head_config_without_num_labels_uses_the_head_default(adapter, validate):
    folder = adapter(num_labels=2)
    edit_json(folder, "head_config.json", lambda d: (d["config"].pop("num_labels"), d["config"].pop("label2id")))
    report = validate(folder)
    assert report.verdict == "valid", report.to_json()
    assert report.check("head").outcome == "passed"


# every preset of every method the engine registers, plus unions and gating; sizes the tiny backbone can take
# (LoReFT at r = hidden: the factory's random values give a non-square Householder parametrization a zero
# projection, torch reading the signs from the diagonal's integer part, and the forward check would warn no_effect)
_SMALL = {"compacter": "compacter[reduction_factor=4]", "compacter++": "compacter++[reduction_factor=4]",
          "loreft": "loreft[r=32]"}
_EXTRA_LOREFT = "loreft[r=4]"  # non-square: the meta-device twin's trivialization base is (hidden, hidden)
_EXTRA = ("mam", "unipelt", "seq_bn[mh_adapter=True,output_adapter=False]|par_bn", "lora[use_gating=True]",
          "prefix_tuning[use_gating=True]", "seq_bn[use_gating=True]")


def _every_method() -> list:
    from adapters_client.configs.methods import registered_methods

    return [_SMALL.get(name, name) for method in registered_methods() for name in method.presets] + list(_EXTRA)


@pytest.mark.parametrize("config", _every_method())
def test_every_method_the_engine_runs_validates(adapter, validate, config):
    """An upload of any method the client can build passes every check on its backbone (the shape check builds
    a meta-device twin: LoReFT's orthogonal parametrization once crashed there, or lost a saved buffer)."""
    report = validate(adapter(config=config))
    assert report.verdict == "valid", report.to_json()
    assert all(check.outcome == "passed" for check in report.checks), report.to_json()


def test_a_non_square_loreft_passes_the_weight_checks(adapter, validate):
    report = validate(adapter(config=_EXTRA_LOREFT))
    assert report.verdict == "valid", report.to_json()
    assert all(report.check(name).outcome == "passed" for name in ("config", "weights", "finite", "load"))


@pytest.mark.parametrize("arch, head, config", [
    ("gpt2", "causal_lm", "seq_bn"), ("llama", "causal_lm", "lora"), ("bart", "seq2seq_lm", "prefix_tuning"),
    ("t5", "seq2seq_lm", "seq_bn"), ("modernbert", "classification", "lora"),
    ("deberta-v2", "classification", "mtl_lora"),
])
def test_adapters_on_every_kind_of_backbone_validate(tmp_path, cache, arch, head, config):
    """Decoder-only, encoder-decoder (T5 needs decoder inputs: the probe runs through the AdapterModel, which
    makes them) and the newer encoder rows, with their heads."""
    from transformers import AutoModel

    from adapters_client import AutoAdapterModel
    from tests.client.engine_helpers import tiny_config
    from validator.backbones import parse_allow_list
    from validator.pipeline import validate_folder

    torch.manual_seed(0)
    AutoModel.from_config(tiny_config(arch)).save_pretrained(str(tmp_path / "backbone"))
    model = AutoAdapterModel.from_pretrained(str(tmp_path / "backbone"))
    model.add_adapter("x", config=config)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for module in model.get_adapter("x"):
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    {"causal_lm": model.add_causal_lm_head, "seq2seq_lm": model.add_seq2seq_lm_head,
     "classification": lambda name: model.add_classification_head(name, num_labels=2)}[head]("x")
    model.save_adapter(str(tmp_path / "adapter"), "x")
    allow_list = parse_allow_list({f"tiny/{arch}": {"source": "folder", "path": str(tmp_path / "backbone")}})
    report = validate_folder(tmp_path / "adapter", f"tiny/{arch}", allow_list=allow_list, cache=cache)
    assert report.verdict == "valid", report.to_json()
    assert all(check.outcome == "passed" for check in report.checks), report.to_json()
    assert report.adapter.head_type == head and report.check("forward").figures["max_abs_change"] > 0
