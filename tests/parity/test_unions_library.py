"""Config unions, gating and prompt tuning from a string against the adapters library 1.3.0 (.venv-ref only).

Configs: the same dicts and the same refusals. Engine: a union / gated adapter the library saved loads in ours
with the same outputs, and ours loads in the library, on every architecture where the library has every part
(eager attention: the library's sdpa prefix path is wrong on GPT-2, DistilBERT and Llama with padding, see
docs/golden-parity.md). Prompt tuning from a string: the same initial prompt from the same tokenizer.
"""

from __future__ import annotations

import adapters
import pytest
import torch
from adapters import AdapterConfig

from adapters_client import AutoAdapterModel
from adapters_client.configs import load_config
from adapters_client.errors import InvalidAdapterConfig
from tests.client.engine_helpers import randomise, tiny_config, tiny_inputs

PREFIX = "prefix_tuning[prefix_length=3,bottleneck_size=16]"
GATED_PREFIX = "prefix_tuning[prefix_length=3,bottleneck_size=16,use_gating=True,shared_gating=False]"
CONFIG_SPECS = [
    "mam", "unipelt", "unipelt[use_gating=False]", "mam[leave_out=[0]]",
    "prefix_tuning[prefix_length=5]|par_bn[reduction_factor=4]",
    "lora[r=4,use_gating=True]|seq_bn[reduction_factor=8]",
    "seq_bn[mh_adapter=True,output_adapter=False]|par_bn",
    "lora[leave_out=[0]]|ia3",
    "prompt_tuning[prompt_length=3]|lora",
    "prompt_tuning[prompt_init='from_string',prompt_init_text='hello world']",
]
REFUSED = ["lora|ia3", "seq_bn|par_bn", "mam|lora", "prompt_tuning|prompt_tuning"]
# accepted as configs by both, refused by both when added: two LoRA-family parts (the library's VeRA check finds
# both), two prefix tuning parts (one pool per name), two parts claiming the same layer
REFUSED_WHEN_ADDED = ["lora[leave_out=[0]]|ia3[leave_out=[1]]", "prefix_tuning[leave_out=[0]]|prefix_tuning[leave_out=[1]]",
                      "seq_bn[leave_out=[0]]|par_bn[leave_out=[0]]"]
ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2", "electra", "deberta-v2", "llama")
ENGINE_SPECS = [(arch, spec) for arch in ARCHS for spec in ("mam", "unipelt")] + [
    ("bert", f"{GATED_PREFIX}|lora[r=2,use_gating=True,intermediate_lora=True]"),
    ("bert", "seq_bn[mh_adapter=True,output_adapter=False,reduction_factor=4,use_gating=True]|par_bn"),
    ("bert", "seq_bn[leave_out=[0],use_gating=True]|par_bn[leave_out=[1],reduction_factor=4]"),
    ("bert", "prompt_tuning[prompt_length=3]|lora[r=2]"),
    ("roberta", "prompt_tuning[prompt_length=2,combine='prefix_after_bos']|seq_bn[use_gating=True]"),
    ("bert", "dora[use_gating=True]"), ("bert", "vera[use_gating=True]"), ("roberta", "dvora[use_gating=True]"),
    ("gpt2", "lora[use_gating=True,attn_matrices=['q','k','v']]"),
    ("gpt2", "ia3[use_gating=True]"),
    ("gpt2", f"{GATED_PREFIX}|seq_bn[reduction_factor=4]"),
    ("distilbert", GATED_PREFIX),
    ("llama", f"{GATED_PREFIX}|ia3[use_gating=True]"),
    ("deberta-v2", f"{GATED_PREFIX}|lora[use_gating=True]"),
    ("electra", "par_bn[use_gating=True,reduction_factor=4]|lora[use_gating=True,output_lora=True]"),
]


@pytest.mark.parametrize("spec", CONFIG_SPECS)
def test_union_dicts_match_the_library(spec):
    theirs = AdapterConfig.load(spec).to_dict()
    assert load_config(spec).to_dict() == theirs
    assert load_config(theirs).to_dict() == theirs  # the library's adapter_config.json content reads back


@pytest.mark.parametrize("spec", REFUSED)
def test_refused_unions_are_refused_by_the_library_too(spec):
    with pytest.raises((ValueError, TypeError)):
        AdapterConfig.load(spec)
    with pytest.raises(InvalidAdapterConfig):
        load_config(spec)


@pytest.mark.parametrize("spec", REFUSED_WHEN_ADDED)
def test_unions_refused_when_added_by_both(spec, backbone):
    path = backbone("bert")
    theirs = adapters.AutoAdapterModel.from_pretrained(path)
    with pytest.raises(ValueError):
        theirs.add_adapter("x", config=spec)
    ours = AutoAdapterModel.from_pretrained(path)
    with pytest.raises(InvalidAdapterConfig):
        ours.add_adapter("x", config=spec)
    assert "x" not in ours.adapters_config


@pytest.fixture
def backbone(tmp_path):
    def build(arch):
        from transformers import AutoModel

        torch.manual_seed(0)
        AutoModel.from_config(tiny_config(arch)).save_pretrained(tmp_path / "backbone")
        return str(tmp_path / "backbone")

    return build


def _out(model, inputs):
    with torch.no_grad():
        return model(**inputs)[0]


def _inputs(arch):
    """DistilBERT prompt tuning: the library crashes in eager mode; no prompt tuning case uses DistilBERT here."""
    return tiny_inputs()


def _library_modules(model, name):
    """Every module of adapter ``name`` in the library's model (bottleneck, LoRA, prefix pool and gates, prompt)."""
    ends = (f".adapters.{name}", f".loras.{name}", f"prefix_tunings.{name}", f"prefix_gates.{name}",
            f"prompt_tunings.{name}")
    return [m for n, m in model.named_modules() if n.endswith(ends) and ".pool." not in n]


@pytest.mark.parametrize("arch, spec", ENGINE_SPECS)
def test_library_union_loads_in_ours(arch, spec, backbone, tmp_path):
    path = backbone(arch)
    inputs = _inputs(arch)
    theirs = adapters.AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    theirs.add_adapter("x", config=spec)
    randomise(_library_modules(theirs, "x"), std=0.3)
    theirs.set_active_adapters("x")
    expected = _out(theirs, inputs)
    try:
        theirs.save_adapter(str(tmp_path / "saved"), "x", use_safetensors=True)
        pickled = False
    except RuntimeError:  # the prefix pool's tied tensors cannot be written as safetensors by the library
        theirs.save_adapter(str(tmp_path / "saved"), "x")
        pickled = True
    ours = AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    plain = _out(ours, inputs)
    assert ours.load_adapter(str(tmp_path / "saved"), set_active=True, allow_pickle=pickled) == "x"
    got = _out(ours, inputs)
    assert expected.shape != plain.shape or (expected - plain).abs().max() > 1e-3  # the adapter has an effect
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch, spec", ENGINE_SPECS)
def test_our_union_loads_in_the_library(arch, spec, backbone, tmp_path):
    path = backbone(arch)
    inputs = _inputs(arch)
    ours = AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    ours.add_adapter("y", config=spec, set_active=True)
    randomise(ours.get_adapter("y"), std=0.3)
    expected = _out(ours, inputs)
    ours.save_adapter(str(tmp_path / "ours"), "y")
    theirs = adapters.AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    theirs.load_adapter(str(tmp_path / "ours"), use_safetensors=True, set_active=True)
    torch.testing.assert_close(_out(theirs, inputs), expected, atol=1e-5, rtol=1e-5)


def test_gating_scores_match_the_library(backbone, tmp_path):
    path = backbone("bert")
    inputs = tiny_inputs()
    theirs = adapters.AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    theirs.add_adapter("x", config="unipelt")
    randomise(_library_modules(theirs, "x"), std=0.3)
    theirs.set_active_adapters("x")
    with torch.no_grad():
        expected = theirs(**inputs, output_adapter_gating_scores=True).adapter_gating_scores["x"]
    theirs.save_adapter(str(tmp_path / "saved"), "x")
    ours = AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    ours.load_adapter(str(tmp_path / "saved"), set_active=True, allow_pickle=True)
    with torch.no_grad():
        got = ours(**inputs, output_adapter_gating_scores=True)["adapter_gating_scores"]["x"]
    location = {"output_adapter": "output_adapter", "selfattn_lora": "selfattn_lora", "self_prefix": "self_prefix"}
    for layer, places in expected.items():
        for place, score in places.items():
            ours_score = got[layer][location[place]].reshape(-1).cpu().numpy()
            assert ours_score.shape == score.reshape(-1).shape, (layer, place)
            assert abs(ours_score - score.reshape(-1)).max() < 1e-5, (layer, place)


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]


@pytest.mark.parametrize("arch", ["bert", "electra", "roberta"])
def test_prompt_from_string_matches_the_library(arch, backbone, tmp_path):
    from transformers import BertTokenizer

    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizer(str(tmp_path / "tok" / "vocab.txt")).save_pretrained(str(tmp_path / "tok"))
    spec = "prompt_tuning[prompt_length=9,prompt_init='from_string',prompt_init_text='w1 w2 w9 w40']"
    path = backbone(arch)
    theirs = adapters.AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    theirs.config.tokenizer_name_or_path = str(tmp_path / "tok")
    theirs.add_adapter("p", config=spec)
    ours = AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    ours.config.tokenizer_name_or_path = str(tmp_path / "tok")
    ours.add_adapter("p", config=spec)
    mine = ours.get_adapter("p")[0].prompt_embedding.weight
    library = theirs.base_model.prompt_tuning.prompt_tunings["p"].prompt_embedding.weight
    torch.testing.assert_close(mine, library)
    # the library's saved prompt loads in a model that has no tokenizer at all (the weights replace the init)
    theirs.set_active_adapters("p")
    inputs = dict(tiny_inputs(), attention_mask=torch.ones(2, 7, dtype=torch.long))
    expected = _out(theirs, inputs)
    theirs.save_adapter(str(tmp_path / "saved"), "p", use_safetensors=True)
    fresh = AutoAdapterModel.from_pretrained(path, attn_implementation="eager").eval()
    assert getattr(fresh.config, "tokenizer_name_or_path", None) is None
    fresh.load_adapter(str(tmp_path / "saved"), set_active=True)
    torch.testing.assert_close(_out(fresh, inputs), expected, atol=1e-5, rtol=1e-5)
