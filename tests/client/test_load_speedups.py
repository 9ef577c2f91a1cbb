"""What makes loading a saved adapter cheap, and why it stays correct.

- ``all_finite``: a finite sum proves a tensor finite; every other case is settled exactly.
- ``overwritten_init``: random initialisation skipped (thread-locally) for modules a checkpoint
  overwrites; ``load_adapter`` gives exactly the saved tensors and leaves the global generator alone.
"""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

from adapters_client.errors import IncompatibleAdapter
from adapters_client.weights import all_finite, overwritten_init
from tests.client.engine_helpers import hidden, randomise, tiny_inputs, tiny_model


@pytest.mark.parametrize("values, expected", [
    ([1.0, -2.0, 3.5], True),
    ([3e38, 3e38, 3e38], True),  # the sum overflows to inf: settled element by element
    ([-3e38, -3e38], True),
    ([1.0, float("nan")], False),
    ([float("inf"), 1.0], False),
    ([float("inf"), float("-inf")], False),  # sums to NaN
    ([float("-inf")], False),
    ([], True),
])
def test_all_finite(values, expected):
    assert all_finite(torch.tensor(values, dtype=torch.float32)) is expected


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_all_finite_other_dtypes(dtype):
    big = torch.full((1000,), 60000.0 if dtype == torch.float16 else 1e30, dtype=dtype)
    assert all_finite(big)  # float16: the sum overflows at 65504
    big[7] = float("nan")
    assert not all_finite(big)


def test_overwritten_init_skips_random_fills_and_the_generator():
    torch.manual_seed(0)
    expected_next = torch.rand(3)
    torch.manual_seed(0)
    with overwritten_init():
        layer = nn.Linear(64, 64)
        torch.nn.init.normal_(layer.weight)
        layer.weight.uniform_(-1, 1)
    torch.testing.assert_close(torch.rand(3), expected_next)  # no random number was drawn
    torch.manual_seed(0)
    normal = nn.Linear(64, 64)
    assert not torch.equal(torch.nan_to_num(layer.weight.detach()), normal.weight.detach())


def test_overwritten_init_is_local_to_its_thread():
    entered, done = threading.Event(), threading.Event()
    seen = {}

    def other():
        entered.wait(10)
        torch.manual_seed(1)
        seen["weight"] = nn.Linear(16, 16).weight.detach().clone()
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    with overwritten_init():
        entered.set()
        done.wait(10)
    thread.join(10)
    torch.manual_seed(1)
    torch.testing.assert_close(seen["weight"], nn.Linear(16, 16).weight.detach())


@pytest.mark.parametrize("config", ["seq_bn[reduction_factor=4]", "lora[r=4]", "prefix_tuning[prefix_length=4]",
                                    "prompt_tuning[prompt_length=3]", "double_seq_bn"])
def test_loaded_adapter_holds_exactly_the_saved_tensors(tmp_path, config):
    model = tiny_model()
    model.add_adapter("a", config=config, set_active=True)
    randomise(model.get_adapter("a"))
    model.save_adapter(str(tmp_path / "a"), "a")
    saved = {k: v.detach().clone() for k, v in model.named_parameters() if ".a." in k or k.endswith(".a")}
    inputs = tiny_inputs()
    expected = hidden(model, inputs)
    other = tiny_model()
    torch.manual_seed(5)
    before = torch.rand(2)
    torch.manual_seed(5)
    other.load_adapter(str(tmp_path / "a"), set_active=True)
    torch.testing.assert_close(torch.rand(2), before)  # loading drew no random numbers
    loaded = dict(other.named_parameters())
    assert saved and all(torch.equal(loaded[k], v) for k, v in saved.items())
    torch.testing.assert_close(hidden(other, inputs), expected)


def test_refused_checkpoint_leaves_no_uninitialised_adapter(tmp_path):
    from safetensors.torch import load_file, save_file

    model = tiny_model()
    model.add_adapter("a", config="seq_bn[reduction_factor=4]")
    model.save_adapter(str(tmp_path / "a"), "a")
    path = tmp_path / "a" / "adapter.safetensors"
    state = load_file(str(path))
    state.pop(sorted(state)[0])
    save_file(state, str(path))
    other = tiny_model()
    with pytest.raises(IncompatibleAdapter, match="missing weight"):
        other.load_adapter(str(tmp_path / "a"))
    assert not other.has_adapter("a")
    assert not any(".adapters.a." in k for k, _ in other.named_parameters())
