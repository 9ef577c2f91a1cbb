"""Mixed-adapter batches: ``model(..., adapter_names=[...])`` applies one adapter (or none) per row.

Every row must equal that row run alone with its adapter active (``set_active_adapters(name)``), rows with
``None`` the plain backbone; the backbone runs once and each adapter once per site on its own rows.
"""

from __future__ import annotations

import threading

import pytest
import torch

from adapters_client import AdapterSetup, Parallel
from adapters_client.context import RowAdapters
from adapters_client.errors import AdapterNameNotFound, InvalidComposition
from adapters_client.heads import InvalidHead

from .engine_helpers import ARCHS, randomise, tiny_model

TOL = dict(atol=1e-5, rtol=0)
METHODS = {
    "s": "seq_bn",
    "d": "double_seq_bn",
    "p": "par_bn",
    "o": "seq_bn[original_ln_after=False]",  # post-LN hosts: the adapter overrides the host LN's output
    "l": "lora[output_lora=True]",  # GPT-2: the fused c_attn and plain Conv1D projections
    "i": "ia3",
}


def _inputs(batch: int, length: int = 9, seed: int = 1) -> dict:
    """Rows of different lengths (right padding) and a few full rows."""
    ids = torch.randint(3, 99, (batch, length), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    for row in range(batch):
        mask[row, length - (row * 2) % (length - 2):] = 0 if row % 3 else 1
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    return {"input_ids": ids, "attention_mask": mask}


def _model(arch: str, names=tuple(METHODS), seed: int = 0, pad: bool = False):
    model = tiny_model(arch, seed=seed)
    if pad:
        model.config.pad_token_id = 0
    for n, name in enumerate(names):
        config = METHODS[name[0]]
        if name[0] == "o" and model.adapter_engine.spec.library_interface:  # refused there (as in the library)
            config = "seq_bn[residual_before_ln=False]"
        model.add_adapter(name, config=config)
        randomise(model.get_adapter(name), seed=10 + n)
    return model


def _first(output) -> torch.Tensor:
    return output.logits if hasattr(output, "logits") else output[0]


def _alone(model, inputs: dict, names: list, **kwargs) -> list:
    """Each row run by itself with its adapter active."""
    rows = []
    with torch.no_grad():
        for row, name in enumerate(names):
            model.set_active_adapters(name)
            rows.append(_first(model(**{k: v[row:row + 1] for k, v in inputs.items()}, **kwargs)))
    model.set_active_adapters(None)
    return rows


def _mixed(model, inputs: dict, names: list, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return _first(model(**inputs, adapter_names=names, **kwargs))


def _assert_rows(mixed: torch.Tensor, alone: list, names: list, base: torch.Tensor | None = None) -> None:
    for row, (name, expected) in enumerate(zip(names, alone)):
        torch.testing.assert_close(mixed[row:row + 1], expected, **TOL, msg=lambda m: f"row {row} ({name}): {m}")
        if base is not None:
            changed = (mixed[row] - base[row]).abs().max().item()
            if name is None:
                assert changed <= 1e-5, f"row {row} without adapter moved by {changed}"
            else:
                assert changed > 1e-3, f"adapter {name!r} did not change row {row}"


@pytest.mark.parametrize("arch", ARCHS)
def test_every_method_mixed_with_rows_without_adapter(arch):
    model = _model(arch)
    names = ["s", "d", None, "p", "o", "l", "i", "s", None, "l", "i", "p"]
    if arch == "deberta-v2":  # its q/k projections also map the relative position embeddings, shared by all rows
        with torch.no_grad(), pytest.raises(InvalidComposition, match="relative position"):
            model(**_inputs(len(names)), adapter_names=names)
        names = [name if name not in ("l", "i") else "s" for name in names]
    inputs = _inputs(len(names))
    base = _mixed(model, inputs, [None] * len(names))
    with torch.no_grad():  # T5's backbone needs decoder inputs (its AdapterModel shifts input_ids right)
        extra = {"decoder_input_ids": model.base_model._shift_right(inputs["input_ids"])} if arch == "t5" else {}
        plain = model.base_model(**inputs, **extra).last_hidden_state
    if arch == "t5":  # tied embeddings: the AdapterModel's output is scaled by d_model**-0.5 (as the library's)
        plain = plain * model.config.d_model ** -0.5
    torch.testing.assert_close(base, plain, **TOL)  # all-None rows: the plain backbone
    mixed = _mixed(model, inputs, names)
    _assert_rows(mixed, _alone(model, inputs, names), names, base)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("layout", ["interleaved", "consecutive"])
def test_one_method_two_adapters(arch, method, layout):
    model = _model(arch, names=(method + "1", method + "2"))
    a, b = method + "1", method + "2"
    names = [a, None, b, a, b, None] if layout == "interleaved" else [a, a, b, b, None, None]
    inputs = _inputs(len(names), seed=4)
    base = _mixed(model, inputs, [None] * len(names))
    _assert_rows(_mixed(model, inputs, names), _alone(model, inputs, names), names, base)


def _count_backbone(model) -> dict:
    calls = {"backbone": 0}
    model.base_model.register_forward_hook(lambda *a: calls.__setitem__("backbone", calls["backbone"] + 1))
    return calls


def test_the_backbone_runs_once_and_each_adapter_once_per_site_on_its_rows():
    model = _model("bert", names=("s1", "o1", "l1"))  # s1 and o1: different configs, one group each
    calls = _count_backbone(model)
    seen: dict = {}
    for name in ("s1", "o1"):
        for module in model.get_adapter(name):
            module.register_forward_hook(
                lambda m, args, out, name=name: seen.setdefault(name, []).append(args[0].shape[0]))
    names = ["s1", "o1", "s1", None, "l1", "s1"]
    _mixed(model, _inputs(len(names)), names)
    assert calls["backbone"] == 1
    assert seen["s1"] == [3] * len(model.get_adapter("s1"))
    assert seen["o1"] == [1] * len(model.get_adapter("o1"))


def test_adapters_of_one_config_run_as_one_batched_pass(monkeypatch):
    from adapters_client.methods.bottleneck.layer import BottleneckLayer

    model = _model("bert", names=("s1", "s2", "s3"))
    calls = _count_backbone(model)
    batched: list = []
    original = BottleneckLayer._compose_rows

    def spy(self, names, *args):
        batched.append(list(names))
        return original(self, names, *args)

    monkeypatch.setattr(BottleneckLayer, "_compose_rows", spy)
    for module in model.get_adapter("s1"):
        module.register_forward_hook(lambda *a: pytest.fail("s1 ran on its own instead of in the batched pass"))
    names = ["s2", "s1", None, "s3", "s1", None]
    inputs = _inputs(len(names), seed=9)
    mixed = _mixed(model, inputs, names)
    assert calls["backbone"] == 1
    sites = len(model.get_adapter("s1"))
    assert batched == [["s2", "s1", "s3", "s1"]] * sites
    monkeypatch.setattr(BottleneckLayer, "_compose_rows", original)
    model.set_active_adapters(None)
    base = _mixed(model, inputs, [None] * len(names))
    for module in model.get_adapter("s1"):
        module._forward_hooks.clear()
    _assert_rows(mixed, _alone(model, inputs, names), names, base)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_lora_adapters_of_one_rank_run_as_one_batched_pass(arch, monkeypatch):
    from adapters_client.methods.lora.layer import LoRALayer

    model = tiny_model(arch)
    configs = {"x": "lora[output_lora=True]", "y": "lora[output_lora=True,alpha=16]", "z": "lora[output_lora=True,r=4]"}
    for n, (name, config) in enumerate(configs.items()):
        model.add_adapter(name, config=config)
        randomise(model.get_adapter(name), seed=40 + n)
    batched, single = [], []
    original_rows, original_one = LoRALayer._lora_rows, LoRALayer._on_output

    def spy_rows(self, rows, *args):
        batched.append(self.path)
        return original_rows(self, rows, *args)

    def spy_one(self, module, args, output):
        single.append(self.path)
        return original_one(self, module, args, output)

    monkeypatch.setattr(LoRALayer, "_lora_rows", spy_rows)
    monkeypatch.setattr(LoRALayer, "_on_output", spy_one)
    inputs = _inputs(5, seed=11)
    same_rank = ["y", None, "x", "y", None]  # x and y: rank 8, other alpha (a scaling per row)
    mixed = _mixed(model, inputs, same_rank)
    plain = [m.path for m in model.adapter_engine.lora_layers if type(m) is LoRALayer and "x" in m.adapters]
    assert plain and sorted(batched) == sorted(plain)
    assert all(path not in plain for path in single)  # GPT-2's fused c_attn keeps its own per-group path
    batched.clear()
    mixed_ranks = _mixed(model, inputs, ["z", "x", None, "z", "x"])  # ranks 4 and 8: one group at a time
    assert not batched
    monkeypatch.setattr(LoRALayer, "_lora_rows", original_rows)
    monkeypatch.setattr(LoRALayer, "_on_output", original_one)
    base = _mixed(model, inputs, [None] * 5)
    _assert_rows(mixed, _alone(model, inputs, same_rank), same_rank, base)
    _assert_rows(mixed_ranks, _alone(model, inputs, ["z", "x", None, "z", "x"]), ["z", "x", None, "z", "x"], base)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_heads_per_row(arch):
    model = _model(arch, names=("s1", "l1", "i1"), pad=True)
    for n, name in enumerate(("s1", "l1", "i1")):
        model.add_classification_head(name, num_labels=3, set_active=False)
        randomise([model.heads[name]], seed=30 + n, std=0.5)
    names = ["l1", "s1", "i1", "s1", "l1"]
    inputs = _inputs(len(names), seed=7)
    mixed = model(**inputs, adapter_names=names)
    assert mixed.logits.shape == (len(names), 3)
    alone = _alone(model, inputs, names)  # set_active_adapters(name) also activates head `name`
    _assert_rows(mixed.logits.detach(), alone, names)
    # the heads really differ: the same hidden states through another head give other logits
    with torch.no_grad():
        other = model(**inputs, adapter_names=names, head="s1").logits
    assert not torch.allclose(other[0], mixed.logits[0].detach(), atol=1e-3)
    torch.testing.assert_close(other[1], mixed.logits[1].detach(), **TOL)


def test_heads_per_row_tuple_output_and_rows_without_adapter_use_the_active_head():
    model = _model("bert", names=("s1", "s2"))
    model.add_classification_head("s1", num_labels=2, set_active=False)
    model.add_classification_head("shared", num_labels=2, set_active=True)
    randomise([model.heads["s1"], model.heads["shared"]], seed=3, std=0.5)
    names = [None, "s1", "s2"]  # s2 has no head of its own: the active head, as set_active_adapters("s2")
    inputs = _inputs(3)
    with torch.no_grad():
        mixed = model(**inputs, adapter_names=names, return_dict=False)[0]
    expected = []
    with torch.no_grad():
        for row, name in enumerate(names):
            model.set_active_adapters(name)
            expected.append(model(**{k: v[row:row + 1] for k, v in inputs.items()}).logits)
            model.active_head = "shared"  # set_active_adapters("s1") switched it to head s1
    _assert_rows(mixed, expected, names)


def test_heads_of_different_shapes_or_missing_heads_are_refused():
    model = _model("bert", names=("s1", "s2", "s3"))
    model.add_classification_head("s1", num_labels=2, set_active=False)
    model.add_classification_head("s2", num_labels=5, set_active=False)
    inputs = _inputs(3)
    with torch.no_grad():
        with pytest.raises(InvalidHead, match="different shapes"):
            model(**inputs, adapter_names=["s1", "s2", "s1"])
        with pytest.raises(InvalidHead, match="no head"):
            model(**inputs, adapter_names=["s1", "s3", None])
        with pytest.raises(InvalidHead, match="labels"):
            model(**inputs, adapter_names=["s1", "s1", "s1"], labels=torch.tensor([0, 1, 0]))
        model.add_tagging_head("s3", num_labels=2, set_active=False)
        with pytest.raises(InvalidHead, match="different"):
            model(**inputs, adapter_names=["s1", "s3", "s1"])
        # without any head for these rows: the base outputs
        model.delete_head("s1")
        model.delete_head("s2")
        model.delete_head("s3")
        out = model(**inputs, adapter_names=["s1", "s2", None])
    assert out.last_hidden_state.shape[:2] == inputs["input_ids"].shape


@pytest.mark.parametrize("config", ["prefix_tuning", "prompt_tuning"])
def test_methods_that_change_the_sequence_are_refused(config):
    model = _model("bert", names=("s1",))
    model.add_adapter("x", config=config)
    with torch.no_grad(), pytest.raises(InvalidComposition, match="'x'"):
        model(**_inputs(2), adapter_names=["s1", "x"])


def test_refusals():
    model = _model("bert", names=("s1", "l1"))
    inputs = _inputs(3)
    with torch.no_grad():
        with pytest.raises(AdapterNameNotFound, match="nope"):
            model(**inputs, adapter_names=["s1", "nope", None])
        with pytest.raises(InvalidComposition, match="3 rows"):
            model(**inputs, adapter_names=["s1", None])
        with pytest.raises(InvalidComposition, match="list"):
            model(**inputs, adapter_names="s1")
        with pytest.raises(InvalidComposition, match="blocks per row"):
            model(**inputs, adapter_names=["s1", Parallel("s1", "l1"), None])
        with pytest.raises(AdapterNameNotFound):
            model(**inputs, adapter_names=["s1", "__base__", None])  # None is the one spelling of no adapter
        model.merge_adapter("l1")
        with pytest.raises(InvalidComposition, match="merged"):
            model(**inputs, adapter_names=["s1", None, None])
        model.reset_adapter()
    model.train()
    with pytest.raises(InvalidComposition, match="inference only"):
        model(**inputs, adapter_names=["s1", None, None])


def test_the_override_does_not_leak_into_the_next_call():
    model = _model("bert", names=("s1", "s2", "p1"))
    model.set_active_adapters(Parallel("s1", "s2"))
    inputs = _inputs(4)
    with torch.no_grad():
        before = model(**inputs)[0]
        mixed = model(**inputs, adapter_names=["p1", None, "s1", "s2"])[0]
        assert mixed.shape[0] == 4  # the active Parallel is not applied to this call
        with AdapterSetup("s2"):  # adapter_names also wins over an AdapterSetup context
            torch.testing.assert_close(model(**inputs, adapter_names=["p1", None, "s1", "s2"])[0], mixed, **TOL)
            inside = model(**inputs)[0]
        after = model(**inputs)[0]
        with pytest.raises(AdapterNameNotFound):
            model(**inputs, adapter_names=["p1", "missing", None, None])
        again = model(**inputs)[0]
    assert before.shape[0] == 8
    assert model.active_adapters == Parallel("s1", "s2")
    model.set_active_adapters("s2")
    with torch.no_grad():
        torch.testing.assert_close(inside, model(**inputs)[0], **TOL)
    torch.testing.assert_close(after, before, **TOL)
    torch.testing.assert_close(again, before, **TOL)
    assert RowAdapters.current() is None


def test_concurrent_threads_do_not_see_each_others_rows():
    model = _model("bert", names=("s1", "l1"))
    model.set_active_adapters("s1")
    inputs = _inputs(4)
    names = ["l1", None, "l1", None]
    with torch.no_grad():
        mixed_ref = model(**inputs, adapter_names=names)[0]
        active_ref = model(**inputs)[0]
    errors: list = []
    barrier = threading.Barrier(2)

    def work(mixed: bool):
        try:
            barrier.wait()
            for _ in range(5):
                with torch.no_grad():
                    out = model(**inputs, adapter_names=names)[0] if mixed else model(**inputs)[0]
                torch.testing.assert_close(out, mixed_ref if mixed else active_ref, **TOL)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert not torch.allclose(mixed_ref, active_ref, atol=1e-3)


def test_a_site_without_a_row_path_refuses_a_mixed_batch():
    from adapters_client.context import MixedRows
    from adapters_client.methods.composable import ComposableLayer

    class Toy(ComposableLayer):
        adapters = {"a": None}

        def compose_single(self, name, state):  # would apply one adapter to every row
            return state + 1

    with pytest.raises(InvalidComposition, match="no per-row path"):
        Toy().compose(MixedRows(["a"]), torch.zeros(2, 3), 0)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_reft_adapters_per_row(arch):
    """ReFT adapters of different configs (positions, tied units, layers) next to bottleneck/LoRA rows and rows
    without an adapter: each row equals that row run alone (its positions come from its own attention mask)."""
    from .test_methods_reft import randomise_reft

    model = _model(arch, names=("s1", "l1"))
    configs = {"r1": "loreft[suffix_positions=1]", "r2": "noreft[prefix_positions=2,suffix_positions=2,tied_weights=True]",
               "r3": "direft[layers=[1]]"}
    for n, (name, config) in enumerate(configs.items()):
        model.add_adapter(name, config=config)
        randomise_reft(model.get_adapter(name), seed=20 + n)
    names = ["r1", None, "r2", "s1", "r3", "r1", "l1", "r2"]
    inputs = _inputs(len(names))
    base = _mixed(model, inputs, [None] * len(names))
    _assert_rows(_mixed(model, inputs, names), _alone(model, inputs, names), names, base)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lm_heads_per_row_hand_on_the_cache(arch):
    """A mixed forward with LM heads per row returns the key/value cache (the whole batch's), and decoding one more
    token with it gives each row the logits of a full forward over the longer sequence."""
    names = ["s1", "l1", "s1"]
    model = _model(arch, names=("s1", "l1"))
    for n, name in enumerate(("s1", "l1")):
        model.add_causal_lm_head(name, set_active=False)
        randomise([model.heads[name]], seed=40 + n, std=0.5)
    model.eval()
    ids = torch.randint(3, 99, (3, 6), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        first = model(input_ids=ids[:, :5], adapter_names=names, use_cache=True)
        assert first.past_key_values is not None
        step = model(input_ids=ids[:, 5:], past_key_values=first.past_key_values, adapter_names=names,
                     use_cache=True)
        full = model(input_ids=ids, adapter_names=names, use_cache=False)
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], **TOL)
    torch.testing.assert_close(first.logits, full.logits[:, :5], **TOL)
