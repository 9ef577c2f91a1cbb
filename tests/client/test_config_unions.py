"""Config unions (``a|b``, ``mam``, ``unipelt``), gating (``use_gating``) and prompt tuning from a string.

Library parity of the same features (both directions, every architecture): tests/parity/test_unions_library.py
and the golden cases ``methods/<arch>-{unipelt,prefix_tuning-par_bn,seq_bn-par_bn,*_gated}``.
"""

from __future__ import annotations

import json

import pytest
import torch

from adapters_client import AutoAdapterModel
from adapters_client.composition import Fuse, Parallel, Stack
from adapters_client.configs import (
    CompacterConfig, ConfigUnion, DynamicAdapterFusionConfig, IA3Config, LoRAConfig, MAMConfig, ParBnConfig,
    PrefixTuningConfig, PromptTuningConfig, SeqBnConfig, UniPELTConfig, config_hash, config_parts, load_config,
    method_name, read_adapter_config_json,
)
from adapters_client.errors import InvalidAdapterConfig, InvalidComposition
from adapters_client.fingerprint import weights_digest
from tests.client.engine_helpers import randomise, tiny_inputs, tiny_model

PREFIX = "prefix_tuning[prefix_length=3,bottleneck_size=8]"


def _out(model, inputs=None, **kwargs):
    with torch.no_grad():
        return model(**(inputs or tiny_inputs()), **kwargs)[0]


def _adapter_keys(model, name):
    return sorted(k for k in model.base_model.state_dict() if f".{name}." in k or k.startswith(f"{name}."))


# --- parsing -------------------------------------------------------------------------------------------
def test_pipe_string_gives_a_union_with_per_part_arguments():
    union = load_config("prefix_tuning[prefix_length=5, bottleneck_size=24] | par_bn[reduction_factor=4]")
    assert isinstance(union, ConfigUnion)
    prefix, adapter = union.configs
    assert isinstance(prefix, PrefixTuningConfig) and (prefix.prefix_length, prefix.bottleneck_size) == (5, 24)
    assert isinstance(adapter, ParBnConfig) and adapter.reduction_factor == 4 and adapter.scaling == 4.0
    assert union[0] is prefix and union["1.reduction_factor"] == 4 and union["architecture"] == "union"
    assert "0.prefix_length" in list(union) and len(union) == len(prefix) + len(adapter)
    assert method_name(union) == "prefix_tuning|par_bn"
    # a '|' inside a quoted value is not a separator
    single = load_config("prompt_tuning[prompt_init='from_string',prompt_init_text='a|b']")
    assert isinstance(single, PromptTuningConfig) and single.prompt_init_text == "a|b"


def test_named_unions_have_the_library_defaults():
    mam = load_config("mam")
    assert isinstance(mam, MAMConfig) and method_name(mam) == "mam"
    assert mam.prefix_tuning.bottleneck_size == 800 and mam.prefix_tuning.prefix_length == 30
    assert isinstance(mam.adapter, ParBnConfig) and mam.adapter.scaling == 4.0 and mam.adapter.reduction_factor == 2
    assert not any(part.use_gating for part in mam.configs)
    unipelt = load_config("unipelt")
    assert isinstance(unipelt, UniPELTConfig) and method_name(unipelt) == "unipelt"
    prefix, adapter, lora = unipelt.configs
    assert isinstance(prefix, PrefixTuningConfig) and prefix.prefix_length == 10
    assert isinstance(adapter, SeqBnConfig) and adapter.reduction_factor == 16
    assert isinstance(lora, LoRAConfig) and (lora.r, lora.alpha) == (8, 2)
    assert all(part.use_gating for part in unipelt.configs)
    assert load_config("MAM") == mam  # names are case-insensitive like every other name
    assert UniPELTConfig(lora=LoRAConfig(r=4)).configs[2].use_gating is True  # gating forced on given parts too


def test_union_overrides_apply_to_every_part():
    ungated = load_config("unipelt[use_gating=False]")
    assert not any(part.use_gating for part in ungated.configs)
    assert method_name(ungated) == "prefix_tuning|seq_bn|lora"
    assert load_config("mam", leave_out=[1]).configs[1].leave_out == [1]
    with pytest.raises(InvalidAdapterConfig) as err:  # ParBnConfig has no bottleneck_size (the library fails too)
        load_config("mam[bottleneck_size=64]")
    assert err.value.field == "bottleneck_size"


def test_dict_round_trip_and_hash():
    union = load_config(f"{PREFIX}|lora[r=4]")
    data = union.to_dict()
    assert data["architecture"] == "union" and [c["architecture"] for c in data["configs"]] == ["prefix_tuning", "lora"]
    again = load_config(json.loads(json.dumps(data)))
    assert again == union and isinstance(again, ConfigUnion) and again.to_dict() == data
    assert config_hash(again) == config_hash(union)
    assert config_hash("mam") == config_hash("prefix_tuning[bottleneck_size=800]|par_bn")
    assert config_hash("mam") != config_hash("par_bn|prefix_tuning[bottleneck_size=800]")  # order is kept
    assert config_hash("mam") != config_hash("par_bn")
    assert ConfigUnion(PrefixTuningConfig(bottleneck_size=800), ParBnConfig()) == load_config("mam")
    assert ConfigUnion("lora", {"architecture": "prompt_tuning", "prompt_length": 2}).configs[1].prompt_length == 2
    assert config_parts(LoRAConfig()) == (LoRAConfig(),) and config_parts(union) == union.configs


def test_long_union_names_fall_back_to_union():
    union = load_config("prompt_tuning|prefix_tuning|double_seq_bn|lora")
    assert method_name(union) == "union"


@pytest.mark.parametrize("spec, field", [
    ("mam|lora", "configs"),  # a union inside a union
    ("lora|ia3", "configs"),  # two LoRA-family configs
    ("seq_bn|par_bn", "configs"),  # two bottlenecks at the same place
    ("double_seq_bn|seq_bn[mh_adapter=True,output_adapter=False]", "configs"),  # output_adapter of both
    ("prompt_tuning|prompt_tuning[prompt_length=3]", "configs"),
    ("lora|", "config"),
    ("lora|nope", "architecture"),
    ("lora|seq_bn[r=4]", "r"),
])
def test_invalid_unions_are_refused(spec, field):
    with pytest.raises(InvalidAdapterConfig) as err:
        load_config(spec)
    assert err.value.field == field


@pytest.mark.parametrize("data, field", [
    ({"architecture": "union", "configs": [{"architecture": "lora"}], "extra": 1}, "extra"),
    ({"architecture": "union", "configs": "lora"}, "configs"),
    ({"architecture": "union"}, "configs"),
    ({"architecture": "union", "configs": []}, "configs"),
    ({"architecture": "union", "configs": ["lora"]}, "configs"),
    ({"architecture": "union", "configs": [{"architecture": "union", "configs": [{"architecture": "lora"}]}]},
     "configs"),
])
def test_invalid_union_dicts_are_refused(data, field):
    with pytest.raises(InvalidAdapterConfig) as err:
        load_config(data)
    assert err.value.field == field


def test_union_validation_follows_the_library():
    # bottlenecks at different places, or any parts separated by a leave_out, are accepted (as the library)
    ok = load_config("seq_bn[mh_adapter=True,output_adapter=False]|par_bn")
    assert [type(c) for c in ok.configs] == [SeqBnConfig, ParBnConfig]
    assert load_config("lora[leave_out=[0]]|ia3").configs[1] == IA3Config()
    with pytest.raises(InvalidAdapterConfig):
        ConfigUnion()
    with pytest.raises(InvalidAdapterConfig):
        ConfigUnion(LoRAConfig(), DynamicAdapterFusionConfig())
    with pytest.raises(InvalidAdapterConfig):
        ConfigUnion(LoRAConfig(), 3)
    with pytest.raises(InvalidAdapterConfig):
        MAMConfig(prefix_tuning=LoRAConfig())
    with pytest.raises(AttributeError):
        ok.configs = ()


def test_saved_union_metadata_reads_back():
    union = load_config("unipelt")
    from adapters_client.configs import build_adapter_config_json

    meta = build_adapter_config_json(union, "u", {"model_type": "bert", "hidden_size": 32})
    config, info = read_adapter_config_json(json.loads(json.dumps(meta)))
    assert config == union and info["name"] == "u" and meta["config"]["architecture"] == "union"


# --- the engine ------------------------------------------------------------------------------------------
def test_union_adds_each_part_under_one_name_and_deletes_them_all():
    model = tiny_model("bert")
    before = set(model.base_model.state_dict())
    model.add_adapter("u", f"{PREFIX}|lora[r=2]|par_bn[reduction_factor=4]")
    added = set(model.base_model.state_dict()) - before
    assert any(".prefix_tunings.u." in k for k in added)
    assert any(".loras.u." in k for k in added)
    assert any(".adapters.u." in k for k in added)
    assert all(".u." in k for k in added)
    assert method_name(model.adapters_config["u"]) == "prefix_tuning|lora|par_bn"
    rows = {row["name"]: row for row in model.adapter_summary(as_dict=True)}
    assert rows["u"]["architecture"] == "prefix_tuning|lora|par_bn" and rows["u"]["#param"] > 0
    model.delete_adapter("u")
    assert set(model.base_model.state_dict()) == before
    assert model.adapter_engine.modules_of("u") == []


def _copy_parts(model, union_name, part_names):
    """Give the separate adapters ``part_names`` the weights of the union's modules (same keys, other name)."""
    state = model.base_model.state_dict()
    with torch.no_grad():
        for part in part_names:
            for key, value in state.items():
                if f".{part}." in key:
                    state_key = key.replace(f".{part}.", f".{union_name}.")
                    value.copy_(state[state_key])


@pytest.mark.parametrize("arch", ["bert", "gpt2", "distilbert", "llama"])
def test_union_equals_a_stack_of_its_parts(arch):
    """In the library a union's parts run like separate adapters stacked in one setup; so do ours."""
    model = tiny_model(arch)
    lora = "lora[r=2,selfattn_lora=False,output_lora=True]"  # GPT-2's fused c_attn LoRA takes no Stack
    model.add_adapter("u", f"{PREFIX}|{lora}|seq_bn[reduction_factor=4]")
    randomise(model.adapter_engine.modules_of("u"), std=0.3)
    model.add_adapter("p", PREFIX)
    model.add_adapter("l", lora)
    model.add_adapter("b", "seq_bn[reduction_factor=4]")
    _copy_parts(model, "u", ["p", "l", "b"])
    inputs = tiny_inputs()
    plain = _out(model, inputs)
    model.set_active_adapters("u")
    union = _out(model, inputs)
    model.set_active_adapters(Stack("p", "l", "b"))
    torch.testing.assert_close(union, _out(model, inputs), atol=1e-6, rtol=1e-6)
    assert (union - plain).abs().max() > 1e-3


def test_union_save_load_round_trip(tmp_path):
    model = tiny_model("bert")
    model.add_adapter("u", "unipelt", set_active=True)
    randomise(model.adapter_engine.modules_of("u"), std=0.3)
    expected = _out(model)
    model.save_adapter(str(tmp_path / "u"), "u")
    meta = json.loads((tmp_path / "u" / "adapter_config.json").read_text())
    assert meta["config"]["architecture"] == "union" and len(meta["config"]["configs"]) == 3
    fresh = tiny_model("bert")
    assert fresh.load_adapter(str(tmp_path / "u"), set_active=True) == "u"
    torch.testing.assert_close(_out(fresh), expected, atol=1e-6, rtol=1e-6)
    assert fresh.adapters_config["u"] == load_config("unipelt")
    fresh.load_adapter(str(tmp_path / "u"), load_as="v")  # a second copy under another name
    assert _adapter_keys(fresh, "v") and len(_adapter_keys(fresh, "v")) == len(_adapter_keys(fresh, "u"))


def test_union_whole_model_round_trip(tmp_path):
    model = tiny_model("bert")
    model.add_adapter("m", "mam[leave_out=[1]]", set_active=True)
    randomise(model.adapter_engine.modules_of("m"), std=0.3)
    expected = _out(model)
    model.save_pretrained(str(tmp_path / "whole"))
    again = AutoAdapterModel.from_pretrained(str(tmp_path / "whole")).eval()
    torch.testing.assert_close(_out(again), expected, atol=1e-6, rtol=1e-6)
    assert again.adapters_config["m"] == model.adapters_config["m"]


def test_leave_out_on_load_of_a_union(tmp_path):
    model = tiny_model("bert")
    model.add_adapter("u", "lora|seq_bn")
    model.save_adapter(str(tmp_path / "u"), "u")
    fresh = tiny_model("bert")
    fresh.load_adapter(str(tmp_path / "u"), leave_out=[0])
    assert all(part.leave_out == [0] for part in fresh.adapters_config["u"].configs)
    assert not any(".layer.0." in k for k in _adapter_keys(fresh, "u")) and _adapter_keys(fresh, "u")
    model.add_adapter("m", "mam")
    model.save_adapter(str(tmp_path / "m"), "m")
    with pytest.raises(InvalidAdapterConfig) as err:  # prefix tuning's pool has no layers to drop
        fresh.load_adapter(str(tmp_path / "m"), leave_out=[0])
    assert err.value.field == "leave_out"


def test_parts_of_one_method_split_by_leave_out():
    model = tiny_model("bert")  # two layers
    model.add_adapter("u", "seq_bn[leave_out=[0]]|par_bn[leave_out=[1]]")
    layer0, layer1 = ([s.adapters["u"] for s in model.adapter_engine.bottleneck_layers
                       if s.layer_idx == i and "u" in s.adapters] for i in (0, 1))
    assert len(layer0) == 1 and layer0[0].is_parallel
    assert len(layer1) == 1 and not layer1[0].is_parallel
    before = set(model.base_model.state_dict())
    with pytest.raises(InvalidAdapterConfig) as err:  # layer 1's output is claimed by both (the library refuses too)
        model.add_adapter("v", "seq_bn[leave_out=[0]]|par_bn[leave_out=[0]]")
    assert err.value.field == "configs" and "v" not in model.adapters_config
    assert set(model.base_model.state_dict()) == before
    for spec in ("lora[leave_out=[0]]|ia3[leave_out=[1]]",  # adapters 1.3.0 cannot add two LoRA-family parts
                 "prefix_tuning[prefix_length=3,leave_out=[0]]|prefix_tuning[prefix_length=3,leave_out=[1]]",
                 "seq_bn_inv[leave_out=[0]]|seq_bn[leave_out=[1]]"):  # one invertible block per name
        with pytest.raises(InvalidAdapterConfig) as err:
            model.add_adapter("w", spec)
        assert err.value.field == "configs" and "w" not in model.adapters_config
    assert set(model.base_model.state_dict()) == before
    with pytest.raises(InvalidAdapterConfig) as err:
        model.add_adapter("w", "lora|seq_bn[leave_out=[5]]")
    assert err.value.field == "leave_out"


def test_union_with_an_invertible_part_deletes_it():
    model = tiny_model("bert")
    before = set(model.base_model.state_dict())
    model.add_adapter("u", "seq_bn_inv|lora")
    assert any("invertible_adapters.u." in k for k in model.base_model.state_dict())
    block = model.base_model.invertible_adapters["u"]
    assert any(module is block for module in model.adapter_engine.modules_of("u"))
    model.delete_adapter("u")
    assert set(model.base_model.state_dict()) == before


def test_compositions_and_mixed_batches_with_unions():
    model = tiny_model("bert")
    model.add_adapter("m", f"{PREFIX}|par_bn")
    model.add_adapter("u", "lora[r=2]|seq_bn[reduction_factor=4]")
    model.add_adapter("b", "seq_bn[reduction_factor=4]")
    randomise(model.adapter_engine.modules_of("u") + model.adapter_engine.modules_of("b"), std=0.3)
    inputs = tiny_inputs(batch=3)
    model.set_active_adapters(Parallel("m", "b"))
    with pytest.raises(InvalidComposition):  # prefix tuning joins no Parallel block (as before)
        _out(model, inputs)
    with pytest.raises(InvalidComposition):  # fusion composes bottleneck adapters only
        model.add_adapter_fusion(Fuse("u", "b"))
    # a union of per-layer methods shares a mixed-adapter batch; each row equals its adapter run alone
    model.set_active_adapters(None)
    mixed = _out(model, inputs, adapter_names=["u", None, "b"])
    for row, name in enumerate(["u", None, "b"]):
        model.set_active_adapters(name)
        alone = _out(model, inputs)
        torch.testing.assert_close(mixed[row], alone[row], atol=1e-5, rtol=1e-5)
    with pytest.raises(InvalidComposition):  # its prefix changes the sequence of its rows
        _out(model, inputs, adapter_names=["m", None, "b"])
    model.set_active_adapters(Parallel("u", "b"))
    out = _out(model, inputs)
    assert out.shape[0] == 6


def test_fingerprint_ignores_union_and_gate_weights():
    model = tiny_model("bert")
    before = weights_digest(model.base_model)
    model.add_adapter("u", "unipelt")
    randomise(model.adapter_engine.modules_of("u"))
    assert weights_digest(model.base_model) == before


# --- gating ------------------------------------------------------------------------------------------------
def _set_gates(model, name, bias):
    """Every gate of adapter ``name``: weight 0 and ``bias``, so the gate is sigmoid(bias) on any input."""
    found = 0
    with torch.no_grad():
        for key, module in model.base_model.named_modules():
            if (key.endswith(f".{name}.gate") or key.endswith(f"prefix_gates.{name}")) and hasattr(module, "bias"):
                module.weight.zero_()
                module.bias.fill_(bias)
                found += 1
    return found


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
@pytest.mark.parametrize("gated, plain", [
    ("lora[r=4,alpha=4,use_gating=True]", "lora[r=4,alpha=4]"),  # the gate replaces alpha / r (here 1)
    ("ia3[use_gating=True]", "ia3"),  # the gate replaces alpha (1)
    ("seq_bn[reduction_factor=4,use_gating=True]", "seq_bn[reduction_factor=4]"),
    ("par_bn[reduction_factor=4,use_gating=True]", "par_bn[reduction_factor=4]"),
    (f"{PREFIX[:-1]},use_gating=True]", PREFIX),
    (f"{PREFIX[:-1]},use_gating=True,shared_gating=False]", PREFIX),
])
def test_open_gates_give_the_ungated_output(arch, gated, plain):
    model = tiny_model(arch)
    model.add_adapter("g", gated)
    model.add_adapter("p", plain)
    randomise(model.adapter_engine.modules_of("p"), std=0.3)
    state = model.base_model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if ".p." in key:
                state[key.replace(".p.", ".g.")].copy_(value)
    assert _set_gates(model, "g", 30.0) > 0  # sigmoid(30) = 1
    inputs = tiny_inputs()
    model.set_active_adapters("p")
    ungated = _out(model, inputs)
    model.set_active_adapters("g")
    torch.testing.assert_close(_out(model, inputs), ungated, atol=1e-5, rtol=1e-5)
    _set_gates(model, "g", 0.0)  # half-open: another output
    half = _out(model, inputs, output_adapter_gating_scores=True)
    assert (half - ungated).abs().max() > 1e-4
    scores = model(**inputs, output_adapter_gating_scores=True)["adapter_gating_scores"]["g"]
    values = torch.cat([v.reshape(-1) for layer in scores.values() for v in layer.values()])
    torch.testing.assert_close(values, torch.full_like(values, 0.5))


def test_gate_averages_over_the_sequence_and_input():
    """A gated LoRA's update is scaled by mean_t sigmoid(gate(x_t)) per row (padding included, as the library)."""
    model = tiny_model("bert")
    model.add_adapter("g", "lora[r=2,use_gating=True,attn_matrices=['q']]", set_active=True)
    randomise(model.adapter_engine.modules_of("g"), std=0.3)
    site = next(s for s in model.adapter_engine.lora_layers if s.layer_idx == 0 and "g" in s.adapters)
    lora = site.adapters["g"]
    x = torch.randn(2, 5, 32)
    with torch.no_grad():
        delta = lora(None, x)
        gate = torch.sigmoid(x @ lora.gate.weight.t() + lora.gate.bias).mean(dim=1, keepdim=True)
        torch.testing.assert_close(delta, x @ lora.lora_A.t() @ lora.lora_B.t() * gate)


@pytest.mark.parametrize("arch", ["distilbert", "bert"])
def test_lora_gate_ignores_the_prefix_route(arch):
    """Layer 0's attention input is the embedding output whatever the adapters: its LoRA gates are the same with
    and without a prefix in the union (DistilBERT's prefix route puts placeholder rows in front of that input)."""
    model = tiny_model(arch)
    model.add_adapter("u", f"{PREFIX[:-1]},use_gating=True]|lora[use_gating=True,attn_matrices=['q','k','v']]")
    model.add_adapter("l", "lora[use_gating=True,attn_matrices=['q','k','v']]")
    randomise(model.adapter_engine.modules_of("u"), std=0.3)
    _copy_parts(model, "u", ["l"])
    inputs = tiny_inputs()
    scores = {}
    for name in ("u", "l"):
        model.set_active_adapters(name)
        with torch.no_grad():
            scores[name] = model(**inputs, output_adapter_gating_scores=True)["adapter_gating_scores"][name]
    torch.testing.assert_close(scores["u"][0]["selfattn_lora"], scores["l"][0]["selfattn_lora"])
    assert scores["u"][0]["selfattn_lora"].shape == (2, 3)  # q, k and v gates side by side (the library's layout)


def test_gated_lora_cannot_be_merged():
    model = tiny_model("gpt2")
    model.add_adapter("g", "lora[use_gating=True]")
    with pytest.raises(InvalidAdapterConfig) as err:
        model.merge_adapter("g")
    assert err.value.field == "use_gating"
    model = tiny_model("bert")
    model.add_adapter("g", "lora[use_gating=True]")
    with pytest.raises(InvalidAdapterConfig):
        model.merge_adapter("g")


def test_gated_adapters_round_trip_with_their_gates(tmp_path):
    model = tiny_model("distilbert")
    model.add_adapter("g", f"{PREFIX[:-1]},use_gating=True]|lora[use_gating=True]", set_active=True)
    randomise(model.adapter_engine.modules_of("g"), std=0.3)
    expected = _out(model)
    model.save_adapter(str(tmp_path / "g"), "g")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "g" / "adapter.safetensors"))
    assert any(".prefix_tuning.prefix_gates.g." in k for k in keys) and any(".loras.g.gate." in k for k in keys)
    fresh = tiny_model("distilbert")
    fresh.load_adapter(str(tmp_path / "g"), set_active=True)
    torch.testing.assert_close(_out(fresh), expected, atol=1e-6, rtol=1e-6)
    fresh.delete_adapter("g")
    assert not any(".g." in k for k in fresh.base_model.state_dict())


def test_gated_compacter_and_freezing():
    model = tiny_model("bert")
    model.add_adapter("c", CompacterConfig(reduction_factor=4, use_gating=True))
    model.add_adapter("u", "unipelt")
    model.train_adapter("u")
    trainable = {k for k, p in model.base_model.named_parameters() if p.requires_grad}
    assert any("prefix_gates.u" in k for k in trainable) and any(".loras.u.gate." in k for k in trainable)
    assert all(".u." in k for k in trainable)


# --- prompt tuning from a string ---------------------------------------------------------------------------
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]
FROM_STRING = "prompt_tuning[prompt_length=7,prompt_init='from_string',prompt_init_text='w3 w5 w7']"


@pytest.fixture
def tokenizer_dir(tmp_path):
    from transformers import BertTokenizer

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(tmp_path / "tok" / "vocab.txt")).save_pretrained(str(tmp_path / "tok"))
    return str(tmp_path / "tok")


def test_prompt_from_string_reads_the_tokenizer_of_the_model(tokenizer_dir):
    model = tiny_model("bert")
    model.base_model.config.tokenizer_name_or_path = tokenizer_dir
    model.add_adapter("p", FROM_STRING)
    prompt = model.adapter_engine.modules_of("p")[0].prompt_embedding.weight
    # [CLS] w3 w5 w7 [SEP], repeated and cut to 7 tokens
    ids = [2, VOCAB.index("w3"), VOCAB.index("w5"), VOCAB.index("w7"), 3, 2, VOCAB.index("w3")]
    words = model.base_model.get_input_embeddings().weight
    torch.testing.assert_close(prompt, words[ids])


def test_prompt_from_string_without_tokenizer_is_refused_when_added(tmp_path):
    model = tiny_model("bert")
    with pytest.raises(InvalidAdapterConfig) as err:
        model.add_adapter("p", FROM_STRING)
    assert err.value.field == "prompt_init" and "tokenizer_name_or_path" in str(err.value)
    assert "p" not in model.adapters_config
    model.base_model.config.tokenizer_name_or_path = str(tmp_path / "no-such-tokenizer")
    with pytest.raises(InvalidAdapterConfig) as err:
        model.add_adapter("p", FROM_STRING)
    assert err.value.field == "prompt_init"


def test_prompt_from_string_loads_without_tokenizer(tokenizer_dir, tmp_path):
    model = tiny_model("bert")
    model.base_model.config.tokenizer_name_or_path = tokenizer_dir
    model.add_adapter("p", FROM_STRING, set_active=True)
    expected = _out(model)
    model.save_adapter(str(tmp_path / "p"), "p")
    fresh = tiny_model("bert")  # no tokenizer_name_or_path: the saved prompt replaces the init
    fresh.load_adapter(str(tmp_path / "p"), set_active=True)
    torch.testing.assert_close(_out(fresh), expected, atol=1e-6, rtol=1e-6)
    assert fresh.adapters_config["p"].prompt_init == "from_string"


def test_prompt_from_string_tokenizer_must_fit_the_embeddings(tmp_path):
    from transformers import BertTokenizer

    (tmp_path / "big").mkdir()
    vocab = VOCAB + [f"x{i}" for i in range(200)]
    (tmp_path / "big" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(tmp_path / "big" / "vocab.txt")).save_pretrained(str(tmp_path / "big"))
    model = tiny_model("bert")
    model.base_model.config.tokenizer_name_or_path = str(tmp_path / "big")
    with pytest.raises(InvalidAdapterConfig) as err:
        model.add_adapter("p", FROM_STRING.replace("w3 w5 w7", "x150"))
    assert err.value.field == "prompt_init"


def test_average_adapter_of_unions_averages_every_part():
    model = tiny_model("bert")
    for name, seed in (("a", 1), ("b", 2)):
        model.add_adapter(name, "unipelt")
        randomise(model.adapter_engine.modules_of(name), seed=seed, std=0.3)
    model.average_adapter("avg", ["a", "b"], weights=[0.25, 0.75])
    state = model.base_model.state_dict()
    keys = [k for k in state if ".avg." in k]
    assert any("prefix_gates.avg" in k for k in keys) and any(".loras.avg.gate." in k for k in keys)
    for key in keys:
        expected = 0.25 * state[key.replace(".avg.", ".a.")] + 0.75 * state[key.replace(".avg.", ".b.")]
        torch.testing.assert_close(state[key], expected)


def test_training_a_union_reaches_every_gate():
    model = tiny_model("bert")
    model.add_adapter("u", "unipelt")
    randomise(model.adapter_engine.modules_of("u"), std=0.3)
    model.train_adapter("u")
    out = model(**tiny_inputs())[0]
    out.pow(2).mean().backward()
    grads = {k: p.grad for k, p in model.base_model.named_parameters() if p.requires_grad}
    gate_grads = [g for k, g in grads.items() if "gate" in k]
    assert len(gate_grads) >= 6 and all(g is not None and g.abs().sum() > 0 for g in gate_grads)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_gated_union_in_a_mixed_batch(arch):
    model = tiny_model(arch)
    model.add_adapter("g", "lora[use_gating=True]|seq_bn[use_gating=True,reduction_factor=4]")
    model.add_adapter("h", "lora[r=4,use_gating=True]")
    randomise(model.adapter_engine.modules_of("g") + model.adapter_engine.modules_of("h"), std=0.3)
    inputs = tiny_inputs(batch=4)
    names = ["g", "h", None, "g"]
    mixed = _out(model, inputs, adapter_names=names)
    for row, name in enumerate(names):
        model.set_active_adapters(name)
        torch.testing.assert_close(mixed[row], _out(model, inputs)[row], atol=1e-5, rtol=1e-5)
