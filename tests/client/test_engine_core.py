"""Engine core: adding, activating, deleting adapters, training mode, init() on plain HF models."""

from __future__ import annotations

import pytest
import torch

import adapters_client
from adapters_client import Stack
from adapters_client.errors import IncompatibleAdapter, InvalidAdapterConfig, InvalidComposition
from tests.client.engine_helpers import hidden, randomise, tiny_config, tiny_inputs, tiny_model


def test_new_adapters_start_inactive_and_identity_methods_keep_outputs():
    model = tiny_model()
    inputs = tiny_inputs()
    base = hidden(model, inputs)
    model.add_adapter("lora", config="lora")  # LoRA B starts at zero: identity
    model.set_active_adapters("lora")
    torch.testing.assert_close(hidden(model, inputs), base)
    model.add_adapter("bn", config="seq_bn")
    assert model.active_adapters == Stack("lora")
    randomise(model.get_adapter("bn"))
    torch.testing.assert_close(hidden(model, inputs), base)  # bn is not active
    model.set_active_adapters("bn")
    assert (hidden(model, inputs) - base).abs().max() > 1e-3
    model.set_active_adapters(None)
    torch.testing.assert_close(hidden(model, inputs), base)


def test_weight_names_follow_the_library():
    model = tiny_model()
    model.add_adapter("a", config="double_seq_bn")
    model.add_adapter("l", config="lora[intermediate_lora=True]")
    keys = set(model.state_dict())
    assert "bert.encoder.layer.0.output.adapters.a.adapter_down.0.weight" in keys
    assert "bert.encoder.layer.1.attention.output.adapters.a.adapter_up.bias" in keys
    assert "bert.encoder.layer.0.attention.self.query.loras.l.lora_A" in keys
    assert "bert.encoder.layer.0.intermediate.dense.loras.l.lora_B" in keys
    assert model.state_dict()["bert.encoder.layer.0.output.adapters.a.adapter_down.0.weight"].shape == (2, 32)


def test_reduction_factor_and_leave_out():
    model = tiny_model()
    model.add_adapter("a", config="seq_bn[reduction_factor=4,leave_out=[1]]")
    keys = [k for k in model.state_dict() if ".adapters.a." in k]
    assert keys and all("layer.0." in k for k in keys)
    assert model.state_dict()["bert.encoder.layer.0.output.adapters.a.adapter_up.weight"].shape == (32, 8)
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("b", config="seq_bn[leave_out=[7]]")
    assert info.value.field == "leave_out"


def test_add_adapter_errors():
    model = tiny_model()
    model.add_adapter("a")
    assert model.adapters_config["a"] == adapters_client.configs.SeqBnConfig()
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("a")
    assert info.value.field == "name"
    model.add_adapter("a", config="par_bn", overwrite_ok=True)
    assert model.adapters_config["a"].is_parallel
    for bad in ("", "a.b", "a,b", "x y"):
        with pytest.raises(InvalidAdapterConfig):
            model.add_adapter(bad)
    with pytest.raises(InvalidAdapterConfig):
        model.add_adapter("c", config="nonsense")
    assert not model.has_adapter("c")


def test_set_active_errors():
    model = tiny_model()
    model.add_adapter("a")
    with pytest.raises(InvalidComposition):
        model.set_active_adapters("missing")
    with pytest.raises(InvalidComposition):
        model.set_active_adapters(adapters_client.Fuse("a", "a"))  # no fusion layer
    with pytest.raises(InvalidComposition):
        model.set_active_adapters(adapters_client.Parallel(adapters_client.Parallel("a")))


def test_delete_adapter():
    model = tiny_model()
    model.add_adapter("a", set_active=True)
    model.delete_adapter("a")
    assert not model.has_adapter("a") and model.active_adapters is None
    assert not [k for k in model.state_dict() if ".adapters.a." in k]
    with pytest.raises(InvalidAdapterConfig):
        model.delete_adapter("a")


def test_skip_layers():
    model = tiny_model()
    inputs = tiny_inputs()
    model.add_adapter("a")
    randomise(model.get_adapter("a"))
    model.set_active_adapters("a")
    full = hidden(model, inputs)
    model.set_active_adapters("a", skip_layers=[0, 1])
    torch.testing.assert_close(hidden(model, inputs), hidden(tiny_model(), inputs))
    model.set_active_adapters("a", skip_layers=[1])
    partial = hidden(model, inputs)
    assert not torch.allclose(partial, full)


def test_adapter_setup_context_overrides_active():
    from adapters_client.context import AdapterSetup

    model = tiny_model()
    inputs = tiny_inputs()
    model.add_adapter("a")
    randomise(model.get_adapter("a"))
    base = hidden(model, inputs)
    with AdapterSetup("a"):
        changed = hidden(model, inputs)
    assert not torch.allclose(changed, base)
    torch.testing.assert_close(hidden(model, inputs), base)


def test_train_adapter_freezes_everything_else():
    model = tiny_model()
    model.add_adapter("a")
    model.add_adapter("b", config="lora")
    model.train_adapter("a")
    assert model.training and model.active_adapters == Stack("a")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".adapters.a." in n for n in trainable)
    model.train_adapter(Stack("a", "b"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".loras.b." in n for n in trainable) and any(".adapters.a." in n for n in trainable)
    assert not any("word_embeddings" in n for n in trainable)


@pytest.mark.parametrize("arch", ["bert", "distilbert", "gpt2"])
def test_merge_and_reset_lora_keep_outputs(arch):
    for spec in ("lora[intermediate_lora=True,output_lora=True,attn_matrices=['q','v']]", "ia3"):
        model = tiny_model(arch)
        inputs = tiny_inputs()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.add_adapter("l", config=spec, set_active=True)
        randomise(model.get_adapter("l"))
        if spec == "ia3":
            with torch.no_grad():
                for module in model.get_adapter("l"):
                    module.lora_B.add_(1.0)
        expected = hidden(model, inputs)
        model.merge_adapter("l")
        torch.testing.assert_close(hidden(model, inputs), expected, atol=1e-5, rtol=1e-5)
        model.set_active_adapters(None)  # merged weights act without the adapter being active
        torch.testing.assert_close(hidden(model, inputs), expected, atol=1e-5, rtol=1e-5)
        model.reset_adapter()
        for key, value in before.items():
            torch.testing.assert_close(model.state_dict()[key], value, atol=1e-6, rtol=1e-5)
    with pytest.raises(InvalidAdapterConfig):
        tiny_model(arch).merge_adapter("nothing")


def test_average_adapter():
    model = tiny_model()
    inputs = tiny_inputs()
    model.add_adapter("a")
    model.add_adapter("b")
    randomise(model.get_adapter("a"), seed=1)
    randomise(model.get_adapter("b"), seed=2)
    model.average_adapter("avg", ["a", "b"], weights=[3, 1])
    for avg, a, b in zip(model.get_adapter("avg"), model.get_adapter("a"), model.get_adapter("b")):
        torch.testing.assert_close(avg.adapter_up.weight, 0.75 * a.adapter_up.weight + 0.25 * b.adapter_up.weight)
    model.add_adapter("l", config="lora")
    with pytest.raises(InvalidAdapterConfig):
        model.average_adapter("bad", ["a", "l"])
    with pytest.raises(InvalidAdapterConfig):
        model.average_adapter("bad", ["a", "zzz"])
    model.set_active_adapters("avg")
    assert hidden(model, inputs).isfinite().all()


def test_init_adds_support_to_a_plain_hf_model():
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_config("bert")).eval()
    inputs = tiny_inputs()
    base = model(**inputs).logits
    adapters_client.init(model)
    assert adapters_client.init(model) is model
    assert type(model).__name__ == "BertForSequenceClassification"
    model.add_adapter("a", config="seq_bn", set_active=True)
    randomise(model.get_adapter("a"))
    assert model(**inputs).logits.shape == base.shape
    assert not torch.allclose(model(**inputs).logits, base)
    model.train_adapter("a")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("classifier" in n for n in trainable) and not any("encoder.layer.0.output.dense" in n for n in trainable)


def test_unsupported_architecture():
    from transformers import OPTConfig, OPTModel  # no row for OPT (T5 has one now)

    with pytest.raises(IncompatibleAdapter) as info:
        adapters_client.init(OPTModel(OPTConfig(hidden_size=16, num_hidden_layers=1, ffn_dim=8, num_attention_heads=2,
                                                vocab_size=20, word_embed_proj_dim=16)))
    assert info.value.details["field"] == "model_type"


def test_a_failed_forward_leaves_no_stale_state():
    from transformers import BertModel

    torch.manual_seed(0)
    model = adapters_client.init(BertModel(tiny_config("bert")).eval())
    model.add_adapter("a")
    model.add_adapter("b")
    randomise(model.get_adapter("a"))
    inputs = tiny_inputs()
    model.set_active_adapters("a")
    expected = model(**inputs).last_hidden_state
    model.set_active_adapters(adapters_client.BatchSplit("a", "b", batch_sizes=[5, 5]))
    with pytest.raises(InvalidComposition):
        model(**inputs)
    model.set_active_adapters(adapters_client.Parallel("a", "b"))
    assert model(**inputs).last_hidden_state.shape[0] == 4
    model.set_active_adapters("a")
    torch.testing.assert_close(model(**inputs).last_hidden_state, expected)


def test_concurrent_forwards_in_threads_agree():
    from concurrent.futures import ThreadPoolExecutor

    model = tiny_model()
    model.add_adapter("a", config="double_seq_bn", set_active=True)
    randomise(model.get_adapter("a"))
    batches = [tiny_inputs(seed=s) for s in range(6)]
    expected = [hidden(model, b) for b in batches]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda b: hidden(model, b), batches))
    for got, want in zip(results, expected):
        torch.testing.assert_close(got, want)


def test_adapter_summary():
    model = tiny_model()
    model.add_adapter("a", config="seq_bn[reduction_factor=4]")
    model.add_adapter("l", config="lora")
    model.train_adapter("a")
    rows = {row["name"]: row for row in model.adapter_summary(as_dict=True)}
    expected = sum(p.numel() for m in model.get_adapter("a") for p in m.parameters())
    assert rows["a"]["#param"] == expected and rows["a"]["architecture"] == "seq_bn"
    assert rows["a"]["active"] and rows["a"]["train"] and not rows["l"]["active"] and not rows["l"]["train"]
    assert 0 < rows["l"]["%param"] < 100
    text = model.adapter_summary()
    assert text.splitlines()[0].startswith("Name") and "lora" in text


def test_reloading_an_active_adapter_keeps_it_active(tmp_path):
    model = tiny_model()
    model.add_adapter("a", set_active=True)
    randomise(model.get_adapter("a"))
    expected = hidden(model, tiny_inputs())
    model.save_adapter(str(tmp_path / "a"), "a")
    model.load_adapter(str(tmp_path / "a"))
    assert model.active_adapters == Stack("a")
    torch.testing.assert_close(hidden(model, tiny_inputs()), expected)


def test_save_pretrained_round_trip(tmp_path):
    from adapters_client import AutoAdapterModel, Fuse

    model = tiny_model()
    for name in ("a", "b"):
        model.add_adapter(name, config="seq_bn")
        randomise(model.get_adapter(name), seed=len(name) + ord(name))
    model.add_adapter("l", config="lora[init_weights=bert]")
    model.add_adapter_fusion(Fuse("a", "b"))
    randomise(model.adapter_engine.fusion_modules("a,b"), seed=2)
    model.add_classification_head("a,b", num_labels=3)
    model.add_classification_head("extra", num_labels=2, set_active=False)
    model.set_active_adapters(Fuse("a", "b"), skip_layers=[1])
    inputs = tiny_inputs()
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(str(tmp_path / "full"))
    loaded = AutoAdapterModel.from_pretrained(str(tmp_path / "full")).eval()
    assert sorted(loaded.adapters_config) == ["a", "b", "l"] and "extra" in loaded.heads
    assert loaded.active_adapters == Fuse("a", "b") and loaded.adapter_engine.skip_layers == [1]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, expected)
    from safetensors.torch import load_file

    assert not any(".adapters." in k for k in load_file(str(tmp_path / "full" / "model.safetensors")))
