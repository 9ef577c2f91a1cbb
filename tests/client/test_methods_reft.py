"""ReFT (loreft, noreft, direft): configs, interventions at the rows' positions, save/load, refusals.

Outputs against the adapters library: tests/parity/test_reft_library.py and the golden cases
``methods/<arch>-{loreft,noreft,direft}``.
"""

from __future__ import annotations

import json

import pytest
import torch

from adapters_client import AdapterSetup
from adapters_client.composition import Average, BatchSplit, Parallel, Stack
from adapters_client.configs import DiReftConfig, LoReftConfig, NoReftConfig, ReftConfig, load_config, method_name
from adapters_client.errors import IncompatibleAdapter, InvalidAdapterConfig, InvalidComposition
from adapters_client.methods.reft import ReftModule

from .engine_helpers import ARCHS, hidden, randomise, tiny_model


def randomise_reft(modules, seed: int = 3) -> None:
    """Non-trivial ReFT weights. An orthogonal projection (LoReFT) is set through its parametrization (a random
    matrix whose rows become orthonormal); noise in its stored tensors would make the projection zero."""
    generator = torch.Generator().manual_seed(seed)
    for module in modules:
        for unit in module.units:
            with torch.no_grad():
                for param in unit.learned_source.parameters():
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
            weight = torch.randn(unit.projection.weight.shape, generator=generator)
            if hasattr(unit.projection, "parametrizations"):
                unit.projection.weight = weight
            else:
                with torch.no_grad():
                    unit.projection.weight.copy_(weight * 0.3)


def _model(arch="bert", **adapters):
    model = tiny_model(arch)
    for seed, (name, config) in enumerate(adapters.items()):
        model.add_adapter(name, config=config)
        modules = model.get_adapter(name)
        if all(isinstance(m, ReftModule) for m in modules):
            randomise_reft(modules, seed=seed + 3)
        else:
            randomise(modules, seed=seed + 3)
    return model


def _inputs(lengths, total=8, left=False, seed=2):
    ids = torch.randint(3, 99, (len(lengths), total), generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(len(lengths), total, dtype=torch.long)
    for row, length in enumerate(lengths):
        if left:
            mask[row, total - length:] = 1
        else:
            mask[row, :length] = 1
    return {"input_ids": ids, "attention_mask": mask}


def _changed(model, inputs, name) -> list:
    """Per row, the positions of the last hidden state an adapter active only at the last layer changes."""
    model.set_active_adapters(None)
    base = hidden(model, inputs)
    model.set_active_adapters(name)
    out = hidden(model, inputs)
    model.set_active_adapters(None)
    moved = (out - base).abs().amax(dim=-1) > 1e-6
    return [sorted(int(i) for i in row.nonzero().flatten()) for row in moved]


# --- configs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls, orthogonality, subtract",
                         [("loreft", LoReftConfig, True, True), ("noreft", NoReftConfig, False, True),
                          ("direft", DiReftConfig, False, False)])
def test_presets(name, cls, orthogonality, subtract):
    config = load_config(name)
    assert type(config) is cls and isinstance(config, ReftConfig)
    assert (config.orthogonality, config.subtract_projection) == (orthogonality, subtract)
    assert (config.layers, config.prefix_positions, config.suffix_positions, config.r) == ("all", 3, 0, 1)
    assert (config.tied_weights, config.dropout, config.non_linearity, config.dtype) == (False, 0.05, None, None)
    assert method_name(config) == name
    data = config.to_dict()
    assert data["architecture"] == "reft" and data["output_reft"] is True and data["init_weights_seed"] is None
    assert ("subtract_projection" in data) is (not subtract)  # the library's dict has no such key
    again = load_config(json.loads(json.dumps(data)))
    assert type(again) is ReftConfig and again == config and method_name(again) == name


def test_a_file_without_subtract_projection_subtracts():
    """adapters 1.3.0 writes no subtract_projection key and reads every ReFT file back with True."""
    data = load_config("direft").to_dict()
    del data["subtract_projection"]
    assert load_config(data).subtract_projection is True


def test_overrides_and_base_class_fields():
    config = load_config("loreft[layers=[0,1],r=4,suffix_positions=2,tied_weights=True,non_linearity='tanh']")
    assert (config.layers, config.r, config.suffix_positions, config.tied_weights) == ([0, 1], 4, 2, True)
    data = config.to_dict()
    del data["r"]
    with pytest.raises(InvalidAdapterConfig) as err:  # the base class has no default for it (the library's)
        load_config(data)
    assert err.value.field == "r"


@pytest.mark.parametrize("override, field", [
    ("layers='some'", "layers"), ("layers=[]", "layers"), ("layers=[0,0]", "layers"), ("layers=[-1]", "layers"),
    ("r=0", "r"), ("r=1.5", "r"), ("prefix_positions=0", "prefix_positions"), ("suffix_positions=-1", "suffix_positions"),
    ("dropout=1.5", "dropout"), ("non_linearity='nope'", "non_linearity"), ("dtype='int8'", "dtype"),
    ("output_reft=False", "output_reft"), ("orthogonality=1", "orthogonality"), ("init_weights_seed='x'", "init_weights_seed"),
    ("leave_out=[0]", "leave_out"),
])
def test_invalid_configs_name_the_field(override, field):
    with pytest.raises(InvalidAdapterConfig) as err:
        load_config(f"noreft[{override}]")
    assert err.value.field == field


# --- the engine -----------------------------------------------------------------------------------------
def test_modules_keys_and_layers(tmp_path):
    model = _model(x="loreft[layers=[1]]", y="direft[tied_weights=True,suffix_positions=1]")
    assert [type(m) for m in model.get_adapter("x")] == [ReftModule]
    assert len(model.get_adapter("y")) == 2 and len(model.get_adapter("y")[0].units) == 1
    model.save_adapter(str(tmp_path / "x"), "x")
    from safetensors.torch import load_file

    keys = sorted(load_file(str(tmp_path / "x" / "adapter.safetensors")))
    unit = "bert.encoder.layer.1.reft_layer.refts.x.units"
    assert keys == sorted(f"{unit}.{i}.{k}" for i in (0, 1) for k in (
        "learned_source.weight", "learned_source.bias", "projection.parametrizations.weight.original",
        "projection.parametrizations.weight.0.base"))
    config = json.loads((tmp_path / "x" / "adapter_config.json").read_text())["config"]
    assert config["architecture"] == "reft" and "subtract_projection" not in config


@pytest.mark.parametrize("config", ["loreft[suffix_positions=2]", "noreft[r=3,non_linearity='gelu']",
                                    "direft[tied_weights=True,suffix_positions=2,layers=[0]]"])
def test_save_load_round_trip(config, tmp_path):
    inputs = _inputs([8, 5, 3])
    model = _model(x=config)
    base = hidden(tiny_model(), inputs)
    model.set_active_adapters("x")
    expected = hidden(model, inputs)
    assert (expected - base).abs().max() > 1e-3
    model.save_adapter(str(tmp_path / "x"), "x")
    fresh = tiny_model()
    assert fresh.load_adapter(str(tmp_path / "x"), set_active=True) == "x"
    assert fresh.adapter_engine.configs["x"] == load_config(config)  # DiReFT keeps subtract_projection=False
    torch.testing.assert_close(hidden(fresh, inputs), expected)
    with pytest.raises(IncompatibleAdapter):  # another layer set: the weights do not fit
        other = tiny_model()
        data = json.loads((tmp_path / "x" / "adapter_config.json").read_text())
        data["config"]["layers"] = [1] if data["config"]["layers"] == [0] else [0]
        (tmp_path / "x" / "adapter_config.json").write_text(json.dumps(data))
        other.load_adapter(str(tmp_path / "x"))
    assert not other.has_adapter("x")


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
@pytest.mark.parametrize("left", [False, True])
def test_positions_follow_each_rows_attended_tokens(arch, left):
    """Interventions at the first prefix_positions and last suffix_positions attended tokens of each row
    (the attention mask's first 1 and number of 1s), with right or left padding."""
    model = _model(arch, x="noreft[layers=[1],prefix_positions=2,suffix_positions=2]")
    lengths = [8, 5, 4]
    inputs = _inputs(lengths, left=left)
    expected = []
    for length in lengths:
        start = 8 - length if left else 0
        expected.append(sorted({start, start + 1, start + length - 2, start + length - 1}))
    assert _changed(model, inputs, "x") == expected


def test_without_a_mask_every_position_counts_and_positions_stop_at_the_sequence():
    model = _model(x="noreft[layers=[1],prefix_positions=3,suffix_positions=1]")
    ids = torch.randint(3, 99, (2, 6), generator=torch.Generator().manual_seed(1))
    assert _changed(model, {"input_ids": ids}, "x") == [[0, 1, 2, 5]] * 2
    short = {"input_ids": ids[:, :2]}  # prefix_positions beyond the sequence: what is there (the library's min)
    assert _changed(model, short, "x") == [[0, 1]] * 2
    model.add_adapter("tied", config="noreft[layers=[1],prefix_positions=3,suffix_positions=3,tied_weights=True]")
    randomise_reft(model.get_adapter("tied"))
    assert _changed(model, short, "tied") == [[0, 1]] * 2


def test_rows_too_short_for_the_positions_are_refused():
    model = _model(x="noreft[prefix_positions=1,suffix_positions=3]")
    model.set_active_adapters("x")
    with torch.no_grad(), pytest.raises(InvalidAdapterConfig, match="row 1 has 2 attended") as err:
        model(**_inputs([8, 2]))
    assert err.value.field == "suffix_positions"
    left = _model(x="noreft[prefix_positions=3]")
    left.set_active_adapters("x")
    with torch.no_grad(), pytest.raises(InvalidAdapterConfig) as err:
        left(**_inputs([8, 2], left=True))  # the first attended token + 2 lies past the end
    assert err.value.field == "prefix_positions"


def test_refused_when_added():
    model = tiny_model()
    with pytest.raises(InvalidAdapterConfig) as err:
        model.add_adapter("x", config="noreft[layers=[0,5]]")
    assert err.value.field == "layers" and not model.has_adapter("x")
    with pytest.raises(InvalidAdapterConfig) as err:
        model.add_adapter("x", config="noreft[dtype='bfloat16']")  # the model is float32
    assert err.value.field == "dtype" and not model.has_adapter("x")
    model.add_adapter("x", config="noreft[dtype='float32']")
    half = tiny_model().to(torch.bfloat16)
    with pytest.raises(InvalidAdapterConfig) as err:
        half.add_adapter("x", config="loreft")
    assert err.value.field == "orthogonality"
    half.add_adapter("x", config="noreft")
    assert all(p.dtype == torch.bfloat16 for m in half.get_adapter("x") for p in m.parameters())


def test_encoder_decoder_models_are_refused():
    from transformers import BartConfig

    from adapters_client import AutoAdapterModel

    model = AutoAdapterModel.from_config(BartConfig(
        d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=37, decoder_ffn_dim=37, vocab_size=99, max_position_embeddings=64))
    with pytest.raises(InvalidAdapterConfig, match="encoder-decoder") as err:
        model.add_adapter("x", config="loreft")
    assert err.value.field == "architecture" and not model.has_adapter("x")


def test_compositions():
    """A ReFT adapter alone or first in a Stack runs; setups where the library would drop a ReFT adapter, and
    Parallel / BatchSplit / Average blocks of ReFT adapters, are refused."""
    model = _model(a="noreft", b="direft", s="seq_bn")
    inputs = _inputs([8, 6])
    model.set_active_adapters("a")
    alone = hidden(model, inputs)
    with AdapterSetup(Stack("a")):
        torch.testing.assert_close(hidden(model, inputs), alone)
    model.set_active_adapters(Stack("a", "s"))
    both = hidden(model, inputs)
    model.set_active_adapters("s")
    assert (both - alone).abs().max() > 1e-4 and (both - hidden(model, inputs)).abs().max() > 1e-4
    for setup, pattern in ((Stack("a", "b"), "'b'"), (Stack("s", "a"), "'a'"), (Parallel("a", "b"), "Parallel"),
                           (BatchSplit("a", "b", batch_sizes=[1, 1]), "BatchSplit"),
                           (Average("a", "b", weights=[0.5, 0.5]), "Average")):
        model.set_active_adapters(setup)
        with torch.no_grad(), pytest.raises(InvalidComposition, match=pattern):
            model(**inputs)


def test_skip_layers_and_training():
    model = _model(x="noreft[layers=[1],dropout=0.5]")
    inputs = _inputs([8, 6])
    base = hidden(model, inputs)
    model.set_active_adapters("x", skip_layers=[1])
    torch.testing.assert_close(hidden(model, inputs), base)
    model.train_adapter("x")
    out = model(**inputs)[0]
    out.pow(2).mean().backward()
    grads = [p.grad for m in model.get_adapter("x") for p in m.parameters()]
    assert grads and all(g is not None for g in grads)  # skip_layers is not kept by train_adapter
    model.eval()
    with torch.no_grad():
        first, second = hidden(model, inputs), hidden(model, inputs)
    torch.testing.assert_close(first, second)  # no dropout in eval mode


def test_a_filled_cache_is_refused():
    model = _model("gpt2", x="noreft")
    model.set_active_adapters("x")
    ids = torch.randint(3, 99, (1, 5))
    with torch.no_grad():
        out = model.base_model(input_ids=ids, use_cache=True)
        with pytest.raises(InvalidComposition, match="cache"):
            model.base_model(input_ids=ids[:, -1:], past_key_values=out.past_key_values, use_cache=True)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_intervenes_at_its_layer_output(arch):
    """Decoder-only and encoder rows: at the last layer's output; encoder-decoder rows: refused when added."""
    from adapters_client.architectures import ARCHITECTURES

    config = "noreft[layers=[1],prefix_positions=1,suffix_positions=1]"
    if getattr(ARCHITECTURES[arch], "decoder_layers", None) is not None:
        model = tiny_model(arch)
        with pytest.raises(InvalidAdapterConfig, match="encoder-decoder"):
            model.add_adapter("x", config=config)
        assert not model.has_adapter("x")
        return
    model = _model(arch, x=config)
    assert _changed(model, _inputs([8, 5]), "x") == [[0, 7], [0, 4]]


def test_whole_model_save_and_average(tmp_path):
    from adapters_client import AutoAdapterModel

    model = _model(a="loreft[suffix_positions=1]", b="loreft[suffix_positions=1]")
    inputs = _inputs([8, 6])
    model.average_adapter("avg", ["a", "b"], weights=[0.25, 0.75], set_active=True)
    averaged = hidden(model, inputs)
    model.set_active_adapters("a")
    assert (averaged - hidden(model, inputs)).abs().max() > 1e-4
    model.set_active_adapters("avg")
    model.save_pretrained(str(tmp_path / "whole"))
    again = AutoAdapterModel.from_pretrained(str(tmp_path / "whole"))
    assert set(again.adapter_engine.configs) == {"a", "b", "avg"}
    again.set_active_adapters("avg")
    torch.testing.assert_close(hidden(again.eval(), inputs), averaged)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_gradient_checkpointing_recomputes_the_same_positions(arch):
    """A checkpointed layer runs again in backward, outside its forward: it must intervene at the same positions
    (the rows' padding), so the gradients equal those without checkpointing."""
    inputs = _inputs([8, 5, 3])
    grads = []
    for checkpointing in (False, True):
        model = _model(arch, x="noreft[prefix_positions=1,suffix_positions=2,dropout=0.0]")
        model.train_adapter("x")
        if checkpointing:
            model.base_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model(**inputs)[0].pow(2).mean().backward()
        grads.append([p.grad.clone() for m in model.get_adapter("x") for p in m.parameters()])
    for plain, checkpointed in zip(*grads):
        torch.testing.assert_close(checkpointed, plain)


def test_a_layer_whose_hook_does_not_run_fails_loudly():
    from adapters_client.errors import HookNotRun, HookTargetMissing

    model = _model(x="noreft")
    model.set_active_adapters("x")
    layer = model.base_model.encoder.layer[1]
    hooks = dict(layer._forward_hooks)
    layer._forward_hooks.clear()  # as if transformers no longer called the layer module
    with torch.no_grad(), pytest.raises(HookNotRun, match="encoder.layer.1"):
        model(**_inputs([8, 6]))
    layer._forward_hooks.update(hooks)
    original = type(layer).forward
    try:  # a layer that returns something else than its hidden states
        type(layer).forward = lambda self, *args, **kwargs: {"hidden": original(self, *args, **kwargs)}
        with torch.no_grad(), pytest.raises(HookTargetMissing, match="hidden states"):
            model(**_inputs([8, 6]))
    finally:
        type(layer).forward = original


def test_concurrent_forwards_use_their_own_masks():
    import threading

    model = _model(x="noreft[prefix_positions=1,suffix_positions=2]")
    model.set_active_adapters("x")
    batches = [_inputs([8, 5, 3], seed=1), _inputs([4, 8, 6], left=True, seed=2)]
    expected = [hidden(model, b) for b in batches]
    errors, start = [], threading.Barrier(2)

    def run(index):
        try:
            start.wait()
            for _ in range(5):
                torch.testing.assert_close(hidden(model, batches[index]), expected[index])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
