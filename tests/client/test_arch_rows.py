"""Architecture rows added for issue 11 (ELECTRA, DeBERTa-v2, Llama): per-row facts the engine needs.

The golden cases (tests/client/golden) prove parity with the adapters library; these tests cover what the
cases cannot: attention implementations the library's transformers line lacks, and the typed row fields.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from adapters_client.architectures import ARCHITECTURES, get_spec
from adapters_client.errors import IncompatibleAdapter

from .engine_helpers import hidden, randomise, tiny_config, tiny_inputs, tiny_model
from .golden import build_ours, case_dirs, case_id, compare, read_case, run_ours

# archs whose golden cases exist under eager only (transformers 4.57, the library's line, has no sdpa for them)
EAGER_ONLY_CASES = ("electra", "t5")
TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def _supports_sdpa(arch: str) -> bool:
    from transformers import AutoModel

    try:
        AutoModel.from_config(tiny_config(arch), attn_implementation="sdpa")
    except ValueError:
        return False
    return True


def _eager_only_cases() -> list:
    return [folder for folder in case_dirs() if folder.name == "eager"
            and read_case(folder)[0]["arch"] in EAGER_ONLY_CASES]


def test_eager_only_archs_have_their_cases():
    found = {read_case(folder)[0]["arch"] for folder in _eager_only_cases()}
    assert found == set(EAGER_ONLY_CASES)


def _sdpa_cases() -> list:
    """The eager-only cases whose architecture has sdpa in this transformers (collected, not skipped)."""
    return [folder for folder in _eager_only_cases() if _supports_sdpa(read_case(folder)[0]["arch"])]


def test_sdpa_is_where_it_is_expected():
    """transformers 5 has sdpa for every eager-only architecture (so every case below runs there); 4.57 has
    it for none of them (the library's line, which is why the cases are eager only)."""
    with_sdpa = {arch for arch in EAGER_ONLY_CASES if _supports_sdpa(arch)}
    assert with_sdpa == (set(EAGER_ONLY_CASES) if TRANSFORMERS_MAJOR >= 5 else set()), with_sdpa


SDPA_CASES = _sdpa_cases()
if SDPA_CASES:  # none on transformers 4.57 (test_sdpa_is_where_it_is_expected says why): not collected there

    @pytest.mark.parametrize("folder", SDPA_CASES, ids=case_id)
    def test_sdpa_reproduces_the_library_eager_case(folder):
        """Where transformers has sdpa for the arch (5.x for ELECTRA), OUR sdpa path gives the library's eager output."""
        meta, inputs, expected = read_case(folder)
        model = build_ours(folder, dict(meta, attn_implementation="sdpa"))
        assert model.base_model.config._attn_implementation == "sdpa"
        compare(run_ours(model, inputs), expected, meta["compare"], meta["atol"])


def test_electra_row():
    spec = get_spec("electra")
    assert spec.base_prefix == "electra" and spec.model_class == "ElectraAdapterModel"
    assert spec.prompt_size_attr == "embedding_size" and spec.prefix_route == "cache"
    assert ARCHITECTURES["bert"].prompt_size_attr is None  # the default: the prompt is hidden_size wide


def test_electra_prompt_has_the_embedding_width(tmp_path):
    """The soft prompt joins the embeddings before ``embeddings_project``: embedding_size wide, not hidden_size."""
    config = tiny_config("electra")
    assert config.embedding_size != config.hidden_size
    model = tiny_model("electra")
    inputs = tiny_inputs()
    base = hidden(model, inputs)
    model.add_adapter("p", config="prompt_tuning[prompt_length=3]")
    randomise(model.get_adapter("p"), std=0.5)
    model.set_active_adapters("p")
    weight = model.base_model.prompt_tuning.prompt_tunings["p"].prompt_embedding.weight
    assert tuple(weight.shape) == (3, config.embedding_size)
    out = hidden(model, inputs)
    assert out.shape == (base.shape[0], base.shape[1] + 3, config.hidden_size)
    assert (out[:, 3:] - base).abs().max() > 1e-4


def test_prompt_width_attribute_missing_is_a_typed_error():
    from dataclasses import replace

    model = tiny_model("electra")
    engine = model.adapter_engine
    engine.spec = replace(engine.spec, prompt_size_attr="prompt_width")  # a row naming an absent attribute
    with pytest.raises(IncompatibleAdapter) as info:
        model.add_adapter("p", config="prompt_tuning[prompt_length=3]")
    assert "prompt_width" in str(info.value)
    assert not model.has_adapter("p")


def test_electra_keys_and_model_class(tmp_path):
    import json

    model = tiny_model("electra")
    model.add_adapter("a", config="seq_bn")
    model.save_adapter(str(tmp_path / "a"), "a")
    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert saved["model_class"] == "ElectraAdapterModel" and saved["model_type"] == "electra"
    keys = [k for k in model.state_dict() if ".adapters.a." in k]
    assert keys and all(k.startswith("electra.encoder.layer.") for k in keys)
    assert torch.isfinite(hidden(model, tiny_inputs())).all()


def test_deberta_v2_row():
    spec = get_spec("deberta-v2")
    assert spec.base_prefix == "deberta" and spec.model_class == "DebertaV2AdapterModel"
    assert spec.prefix_route == "disentangled" and spec.prompt_mask_argument == "mask"
    assert spec.lora_attn == {"q": "attention.self.query_proj", "k": "attention.self.key_proj",
                              "v": "attention.self.value_proj"}


def _golden(name: str):
    from .golden import CASES_DIR

    folder = CASES_DIR / name
    meta, inputs, expected = read_case(folder)
    return folder, meta, inputs, expected


def test_deberta_v2_prompt_with_padding_equals_each_row_alone():
    """The golden prompt case has no padding (the library's prompt rows attend to padded positions); ours with
    padded rows gives what each row alone, cut to its attended length, gives."""
    from .golden import rowwise

    folder, meta, inputs, expected = _golden("methods/deberta-v2-prompt_tuning/eager")
    assert meta["inputs_unpadded"] and bool(inputs["attention_mask"].all())
    model = build_ours(folder, meta)
    compare(run_ours(model, inputs), expected, meta["compare"], meta["atol"])
    padded = _golden("methods/deberta-v2-seq_bn/eager")[2]  # the same rows, with the generator's padding
    assert torch.equal(padded["input_ids"], inputs["input_ids"])
    assert not bool(padded["attention_mask"].all())
    got = run_ours(model, padded)
    compare(got, rowwise(model, padded), ["logits"], 1e-5)
    # the padded rows really differ from the unpadded batch (the padding matters, so the check can fail)
    assert (got["logits"] - expected["logits"]).abs().max() > 1e-4


def test_deberta_v2_prefix_columns_are_visible_and_padding_stays_masked():
    """(The relative-position bias without the prefix columns is proven by methods/deberta-v2-prefix_tuning.)"""
    model = tiny_model("deberta-v2")
    model.add_adapter("p", config="prefix_tuning[prefix_length=3,bottleneck_size=8]")
    randomise(model.adapter_engine.modules_of("p"), std=0.5)
    model.set_active_adapters("p")
    inputs = tiny_inputs()
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    probs = out.attentions[0]  # (batch, heads, N, 3 + N)
    assert probs.shape[-1] == inputs["input_ids"].shape[1] + 3
    # padded keys of row 0 stay masked; the prefix columns are visible to every query
    assert probs[0, :, :, -2:].abs().max() < 1e-6 and probs[0, :, :, :3].min() > 0


def test_deberta_v2_without_the_bias_method_refuses_prefix_tuning():
    from adapters_client.errors import HookTargetMissing

    model = tiny_model("deberta-v2")
    attention = model.base_model.encoder.layer[1].attention.self
    attention.disentangled_attention_bias = None  # shadows the class's method, as a moved API would
    with pytest.raises(HookTargetMissing) as info:
        model.add_adapter("p", config="prefix_tuning[prefix_length=3,bottleneck_size=8]")
    assert "encoder.layer.1.attention.self.disentangled_attention_bias" in str(info.value)


def test_deberta_v2_refuses_the_causal_lm_head_in_its_row():
    from adapters_client.heads.dispatch import refuses_head

    assert refuses_head("deberta-v2", "causal_lm")
    assert not refuses_head("deberta-v2", "masked_lm") and not refuses_head("bert", "causal_lm")
    assert not refuses_head("no-such-model", "causal_lm")


def test_llama_row():
    spec = get_spec("llama")
    assert spec.base_prefix == "model" and spec.model_class == "LlamaAdapterModel" and spec.layers == "layers"
    assert spec.causal and spec.last_token_heads and spec.prompt_embeddings is None
    assert spec.prefix_heads_attr == "num_key_value_heads" and spec.prefix_route == "cache"
    # the library's LoRA locations: "intermediate" is mlp.down_proj, "output" is mlp.up_proj
    assert (spec.lora_intermediate, spec.lora_output) == ("mlp.down_proj", "mlp.up_proj")


def test_llama_prefix_has_the_key_value_heads():
    config = tiny_config("llama")
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    from adapters_client import AutoAdapterModel

    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(config, attn_implementation="eager").eval()  # eager records attentions
    model.add_adapter("p", config="prefix_tuning[prefix_length=3,bottleneck_size=8]")
    prefix = model.base_model.prefix_tuning.prefix_tunings["p"]["self_prefix"]
    head_dim = config.hidden_size // config.num_attention_heads
    assert prefix.n_heads == config.num_key_value_heads
    assert prefix.control_trans[-1].out_features == config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim
    randomise(model.adapter_engine.modules_of("p"), std=0.5)
    model.set_active_adapters("p")
    inputs = tiny_inputs()
    with torch.no_grad():
        out = model(**inputs, use_cache=False, output_attentions=True)
    assert out.attentions[0].shape[-1] == 3 + inputs["input_ids"].shape[1]
    # causal over the sequence, every prefix column visible: query 0 sees the prefix and itself only
    assert out.attentions[0][:, :, 0, 4:].abs().max() < 1e-6 and out.attentions[0][:, :, 0, :4].min() > 0


def test_llama_lora_keys_follow_the_library_locations():
    model = tiny_model("llama")
    model.add_adapter("l", config="lora[intermediate_lora=True,output_lora=True]")
    keys = [k for k in model.state_dict() if ".loras.l." in k]
    assert any(k.startswith("model.layers.0.mlp.down_proj.loras.l.") for k in keys)
    assert any(k.startswith("model.layers.0.mlp.up_proj.loras.l.") for k in keys)
    assert not any(".gate_proj." in k or ".o_proj." in k for k in keys)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_llama_prefix_with_a_filled_cache_equals_the_full_forward(attn):
    """Generation: the model's own cache is updated first and the prefix goes in front of past + current keys
    (never stored in the cache), so step-by-step decoding gives the full forward's outputs."""
    from adapters_client import AutoAdapterModel

    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(tiny_config("llama"), attn_implementation=attn).eval()
    model.add_adapter("p", config="prefix_tuning[prefix_length=3,bottleneck_size=8]")
    randomise(model.adapter_engine.modules_of("p"), std=0.5)
    model.set_active_adapters("p")
    ids = tiny_inputs(batch=2, length=6)["input_ids"]
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).last_hidden_state
        first = model(input_ids=ids[:, :4], use_cache=True)
        cache = first.past_key_values
        assert cache.get_seq_length() == 4  # the sequence only, no prefix inside
        step = model(input_ids=ids[:, 4:5], past_key_values=cache, use_cache=True)
        last = model(input_ids=ids[:, 5:6], past_key_values=step.past_key_values, use_cache=True)
    torch.testing.assert_close(first.last_hidden_state, full[:, :4], atol=1e-5, rtol=0)
    torch.testing.assert_close(step.last_hidden_state[:, 0], full[:, 4], atol=1e-5, rtol=0)
    torch.testing.assert_close(last.last_hidden_state[:, 0], full[:, 5], atol=1e-5, rtol=0)
    model.set_active_adapters(None)
    with torch.no_grad():
        plain = model(input_ids=ids, use_cache=False).last_hidden_state
    assert (plain - full).abs().max() > 1e-3


def test_a_head_the_library_does_not_offer_on_an_architecture_is_refused():
    from adapters_client.architectures import ARCHITECTURES
    from adapters_client.heads.errors import InvalidHead

    refused = {(t, h) for t, spec in ARCHITECTURES.items() for h in spec.refused_heads}
    assert ("deberta-v2", "causal_lm") in refused
    model = tiny_model("deberta-v2")
    assert not model.supports_head_type("causal_lm") and model.supports_head_type("classification")
    with pytest.raises(InvalidHead):
        model.add_causal_lm_head("lm")
