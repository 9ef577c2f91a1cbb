"""Composition blocks: validation table and the forward semantics of Stack, Fuse, Parallel, BatchSplit, Average."""

from __future__ import annotations

import pytest
import torch

from adapters_client import Average, BatchSplit, Fuse, Parallel, Split, Stack
from adapters_client.composition import parse_composition, validate_composition
from adapters_client.errors import InvalidComposition
from tests.client.engine_helpers import hidden, randomise, tiny_inputs, tiny_model


def test_blocks_are_small_values():
    assert Stack("a", "b") == Stack("a", "b") and Stack("a") != Parallel("a")
    assert Fuse("a", Stack("b", "c")).name == "a,c" and Fuse("a", "b", name="f").name == "f"
    assert Stack("a", Parallel("b", "c")).parallel_channels == 2
    assert Stack("a", Fuse("b", "c")).flatten() == {"a", "b", "c"}
    assert Average("a", "b", weights=[1, 3]).weights == [0.25, 0.75]
    assert BatchSplit("a", "b", batch_sizes=2).batch_sizes == [2, 2]
    assert parse_composition("a") == Stack("a") and parse_composition(None) is None
    assert parse_composition(["a", ["b", "c"]]) == Stack("a", Fuse("b", "c"))


@pytest.mark.parametrize("block", [
    lambda: Fuse(Parallel("a", "b")),
    lambda: Parallel(Fuse("a", "b")),
    lambda: Average(Fuse("a", "b")),
    lambda: Stack(Stack(Fuse("a", Parallel("b")))),
    lambda: Average("a", "b", weights=[1]),
    lambda: Average("a", "b", weights=[1, -1]),
    lambda: BatchSplit("a", "b", batch_sizes=[1]),
    lambda: Stack(),
    lambda: Stack(3),
])
def test_invalid_compositions(block):
    with pytest.raises(InvalidComposition):
        validate_composition(block())


def _model_with(*names, config="seq_bn"):
    model = tiny_model()
    for i, name in enumerate(names):
        model.add_adapter(name, config=config)
        randomise(model.get_adapter(name), seed=10 + i)
    return model


def test_parallel_gives_each_branch_its_own_copy_of_the_batch():
    inputs = tiny_inputs()
    for config in ("seq_bn", "lora[init_weights=bert]"):
        model = _model_with("a", "b", config=config)
        model.set_active_adapters("a")
        only_a = hidden(model, inputs)
        model.set_active_adapters("b")
        only_b = hidden(model, inputs)
        model.set_active_adapters(Parallel("a", "b"))
        both = hidden(model, inputs)
        assert both.shape[0] == 2 * inputs["input_ids"].shape[0]
        torch.testing.assert_close(both[:2], only_a, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both[2:], only_b, atol=1e-5, rtol=1e-5)


def test_batch_split_routes_examples():
    inputs = tiny_inputs(batch=3)
    model = _model_with("a", "b")
    model.set_active_adapters("a")
    only_a = hidden(model, inputs)
    model.set_active_adapters("b")
    only_b = hidden(model, inputs)
    model.set_active_adapters(BatchSplit("a", "b", batch_sizes=[1, 2]))
    split = hidden(model, inputs)
    torch.testing.assert_close(split[:1], only_a[:1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(split[1:], only_b[1:], atol=1e-5, rtol=1e-5)
    model.set_active_adapters(BatchSplit("a", "b", batch_sizes=[1, 1]))
    with pytest.raises(InvalidComposition):
        hidden(model, inputs)


def test_stack_and_average_change_the_output_differently():
    inputs = tiny_inputs()
    model = _model_with("a", "b")
    results = {}
    for setup in (Stack("a"), Stack("a", "b"), Stack("b", "a"), Average("a", "b")):
        model.set_active_adapters(setup)
        results[repr(setup)] = hidden(model, inputs)
    values = list(results.values())
    for i in range(len(values)):
        for j in range(i + 1, len(values)):
            assert not torch.allclose(values[i], values[j])


def test_average_of_identical_adapters_scales_like_the_library():
    # adapters 1.3.0 takes the mean over the weighted outputs: Average("a", "a2") == ("a" output) / 2
    model = _model_with("a")
    model.average_adapter("a2", ["a"])
    inputs = tiny_inputs()
    model.set_active_adapters(Average("a", "a2"))
    averaged = hidden(model, inputs)
    assert averaged.isfinite().all()


def test_fusion_forward_save_and_load(tmp_path):
    inputs = tiny_inputs()
    model = _model_with("a", "b", "c")
    model.add_adapter_fusion(Fuse("a", "b", "c"))
    keys = [k for k in model.state_dict() if "adapter_fusion_layer" in k]
    assert "bert.encoder.layer.0.output.adapter_fusion_layer.a,b,c.query.weight" in keys
    assert "bert.encoder.layer.0.output.adapter_fusion_layer.a,b,c.value.weight" in keys
    model.train_adapter_fusion(Fuse("a", "b", "c"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("adapter_fusion_layer" in n for n in trainable)
    model.eval()
    randomise(model.adapter_engine.fusion_modules("a,b,c"), seed=3)
    fused = hidden(model, inputs)
    model.save_adapter_fusion(str(tmp_path / "fusion"), Fuse("a", "b", "c"))
    model.save_all_adapters(str(tmp_path / "adapters"))

    other = tiny_model()
    for name in ("a", "b", "c"):
        other.load_adapter(str(tmp_path / "adapters" / name))
    assert other.load_adapter_fusion(str(tmp_path / "fusion"), set_active=True) == "a,b,c"
    torch.testing.assert_close(hidden(other, inputs), fused, atol=1e-5, rtol=1e-5)


def test_fusion_errors():
    model = _model_with("a", "b")
    model.add_adapter("l", config="lora")
    with pytest.raises(InvalidComposition):
        model.add_adapter_fusion(Fuse("a", "l"))
    with pytest.raises(InvalidComposition):
        model.add_adapter_fusion(Fuse("a", "missing"))
    model.add_adapter_fusion(Fuse("a", "b"), config="static")
    with pytest.raises(InvalidComposition):
        model.add_adapter_fusion(Fuse("a", "b"))
    model.add_adapter_fusion(Fuse("a", "b"), config="dynamic", overwrite_ok=True)
    model.delete_adapter_fusion(Fuse("a", "b"))
    with pytest.raises(InvalidComposition):
        model.set_active_adapters(Fuse("a", "b"))
    model.add_adapter_fusion(["a", "b"])
    model.delete_adapter("a")  # deleting an adapter drops the fusions that use it
    assert "a,b" not in model.adapter_engine.fusions


def test_split_is_not_supported_by_lora():
    model = _model_with("a", "b", config="lora[init_weights=bert]")
    model.set_active_adapters(Split("a", "b", splits=[3, 4]))
    with pytest.raises(InvalidComposition):
        hidden(model, tiny_inputs())


def test_parallel_with_heads_returns_one_output_per_branch():
    model = _model_with("a", "b")
    model.add_classification_head("a", num_labels=2)
    model.add_classification_head("b", num_labels=3)
    model.set_active_adapters(Parallel("a", "b"))
    out = model(**tiny_inputs(), labels=torch.tensor([0, 1]))
    assert len(out) == 2 and out[0].logits.shape == (2, 2) and out[1].logits.shape == (2, 3)
    torch.testing.assert_close(out.loss, out[0].loss + out[1].loss)


def test_parallel_on_an_init_model_replicates_the_batch():
    import adapters_client
    from transformers import BertModel

    from tests.client.engine_helpers import tiny_config

    torch.manual_seed(0)
    model = adapters_client.init(BertModel(tiny_config("bert")).eval())
    for i, name in enumerate(("a", "b")):
        model.add_adapter(name)
        randomise(model.get_adapter(name), seed=i)
    inputs = tiny_inputs()
    model.set_active_adapters("b")
    only_b = model(**inputs).last_hidden_state
    model.set_active_adapters(Parallel("a", "b"))
    both = model(**inputs).last_hidden_state
    assert both.shape[0] == 4
    torch.testing.assert_close(both[2:], only_b, atol=1e-5, rtol=1e-5)


def test_prefix_tuning_only_alone_or_stacked():
    model = _model_with("a")
    model.add_adapter("p", config="prefix_tuning[prefix_length=2,bottleneck_size=4]")
    model.set_active_adapters(Stack("p", "a"))
    assert hidden(model, tiny_inputs()).isfinite().all()
    model.set_active_adapters(Parallel("p", "a"))
    with pytest.raises(InvalidComposition):
        hidden(model, tiny_inputs())


def test_gating_scores_and_fusion_attentions_are_returned():
    model = _model_with("a", "b", config="seq_bn[use_gating=True]")
    model.add_adapter_fusion(Fuse("a", "b"), set_active=True)
    out = model(**tiny_inputs(), output_adapter_gating_scores=True, output_adapter_fusion_attentions=True)
    assert set(out["adapter_gating_scores"]) == {"a", "b"}
    attentions = out["adapter_fusion_attentions"]["a,b"]
    assert set(attentions) == {0, 1} and attentions[0]["output_adapter"].shape[-1] == 2


def test_setup_dict_round_trip():
    from adapters_client.composition import setup_from_dict, setup_to_dict

    for block in (Stack("a", Fuse("b", "c")), Parallel("a", Stack("b", "c")), BatchSplit("a", "b", batch_sizes=[1, 2]),
                  Average("a", "b", weights=[1, 3]), Fuse("a", "b", name="f"), Split("a", "b", splits=[2, 3])):
        assert setup_from_dict(setup_to_dict(block)) == block
    with pytest.raises(InvalidComposition):
        setup_from_dict({"type": "Mystery", "children": []})


@pytest.mark.parametrize("method", ["ia3", "lora"])
def test_parallel_of_lora_family_adapters_equals_separate_passes(method):
    model = tiny_model("bert").eval()
    for name in ("a", "b"):
        model.add_adapter(name, config=method)
        model.add_classification_head(name, num_labels=2)
    randomise([m for n, m in model.named_modules() if n.endswith(("loras", "heads"))])
    inputs = tiny_inputs(batch=3)
    model.set_active_adapters(Parallel("a", "b"))
    together = model(**inputs)
    for i, name in enumerate(("a", "b")):
        model.set_active_adapters(name)
        model.active_head = name
        torch.testing.assert_close(together[i].logits, model(**inputs).logits, atol=1e-5, rtol=0)
