"""``generate()`` on AdapterModel (causal and seq2seq LM heads) and on ``init()``-wrapped HF models.

The main reference is a greedy argmax loop over full forwards without a cache (decoder-only: position ids from
the attention mask, as transformers' generation makes them). Decoder-only prompts are left-padded with mixed
lengths and a pad id inside the text; encoder inputs are right-padded. Runs in both venvs.
"""

from __future__ import annotations

import zlib

import pytest
import torch
import transformers

from adapters_client import AutoAdapterModel, BatchSplit, Parallel
from adapters_client.errors import InvalidComposition
from adapters_client.heads.errors import InvalidHead
from tests.client.engine_helpers import randomise, tiny_config

PAD, EOS = 0, 5
NEW = 6
ARCHS = ("gpt2", "llama", "bart", "t5")
CONFIGS = ("seq_bn", "lora[r=4,alpha=8]", "prefix_tuning[prefix_length=3]", "ia3")


def _config(arch: str):
    config = tiny_config(arch)
    config.pad_token_id, config.eos_token_id = PAD, EOS
    return config


def _backbone_noise(model) -> None:
    """Large seeded weights (matrices and embeddings, by name: the same on both transformers lines), so that the next
    token depends on the whole prompt and generations do not collapse into one repeated token."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)


def _model(arch: str, adapters=("a",), config="seq_bn", seed=0):
    torch.manual_seed(seed)
    model = AutoAdapterModel.from_config(_config(arch)).eval()
    _backbone_noise(model)
    for index, name in enumerate(adapters):
        model.add_adapter(name, config=config)
        randomise(model.adapter_engine.modules_of(name), seed=7 + index, std=0.3)
        if model.config.is_encoder_decoder:
            model.add_seq2seq_lm_head(name)
        else:
            model.add_causal_lm_head(name)
    model.set_active_adapters(adapters[0])
    return model


def _prompts(encoder_decoder: bool, rows: int = 3, length: int = 7) -> dict:
    ids = torch.randint(6, 99, (rows, length), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    if encoder_decoder:
        ids[1, 4:], mask[1, 4:] = PAD, 0
    else:
        ids[1, :3], mask[1, :3] = PAD, 0  # a shorter prompt, left-padded
        ids[2, 2] = PAD  # a pad id inside the text, attended
    return {"input_ids": ids, "attention_mask": mask}


def _start(model) -> int:
    return model.generation_config.decoder_start_token_id


def _argmax_loop(model, input_ids, attention_mask, steps: int = NEW, start=None, **forward):
    """Greedy decoding with one full forward per token and no cache."""
    with torch.no_grad():
        if model.config.is_encoder_decoder:
            decoded = torch.full((input_ids.shape[0], 1), _start(model) if start is None else start)
            for _ in range(steps):
                logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoded,
                               use_cache=False, **forward).logits
                decoded = torch.cat([decoded, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            return decoded
        for _ in range(steps):
            positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                           use_cache=False, **forward).logits
            input_ids = torch.cat([input_ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        return input_ids


def _greedy(model, inputs, **options):
    return model.generate(**inputs, max_new_tokens=NEW, do_sample=False, num_beams=1, pad_token_id=PAD,
                          eos_token_id=None, **options)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_generate_equals_an_argmax_loop_over_full_forwards(arch, config):
    model = _model(arch, config=config)
    inputs = _prompts(model.config.is_encoder_decoder)
    got = _greedy(model, inputs)
    assert torch.equal(got, _argmax_loop(model, **inputs))
    model.set_active_adapters(None)  # the adapter changes the generated tokens (the test can fail)
    assert not torch.equal(_greedy(model, inputs, head="a"), got)


@pytest.mark.parametrize("arch,config", [("mistral", "prefix_tuning[prefix_length=3]"), ("mistral", "seq_bn"),
                                         ("qwen2", "lora[r=4,alpha=8]")])
def test_sliding_window_rows_generate_past_the_window(arch, config):
    """Mistral and Qwen2 (window 4 in the tiny configs): prompt and generated tokens run past the window."""
    model = _model(arch, config=config)
    inputs = _prompts(False)
    assert inputs["input_ids"].shape[1] + NEW > model.config.sliding_window
    assert torch.equal(_greedy(model, inputs), _argmax_loop(model, **inputs))


GATED_PREFIX = "prefix_tuning[prefix_length=3,use_gating=True]"


@pytest.mark.parametrize("arch,config", [("gpt2", GATED_PREFIX), ("llama", "unipelt"), ("bart", GATED_PREFIX),
                                         ("t5", "unipelt"), ("gpt2", "seq_bn[use_gating=True]")])
def test_gated_adapters_generate_as_full_forwards(arch, config):
    """A gate averages over the positions of each forward: generate() then decodes without the cache (as the
    library's generate recomputes the whole sequence), unless use_cache is given."""
    model = _model(arch, config=config)
    inputs = _prompts(model.config.is_encoder_decoder)
    got = _greedy(model, inputs)
    assert torch.equal(got, _argmax_loop(model, **inputs))
    if arch == "gpt2":  # with the cache each step gates its own position only: other tokens here
        assert not torch.equal(_greedy(model, inputs, use_cache=True), got)


@pytest.mark.parametrize("arch", ("gpt2", "llama"))
def test_left_padded_rows_generate_as_each_row_alone(arch):
    model = _model(arch, config="prefix_tuning[prefix_length=3]")
    inputs = _prompts(False)
    batch = _greedy(model, inputs)
    for row in range(3):
        keep = inputs["attention_mask"][row].bool()
        alone = {"input_ids": inputs["input_ids"][row:row + 1, keep],
                 "attention_mask": inputs["attention_mask"][row:row + 1, keep]}
        assert torch.equal(_greedy(model, alone)[0, -NEW:], batch[row, -NEW:]), row


@pytest.mark.parametrize("arch", ARCHS)
def test_the_cache_is_used_and_holds_no_prefix(arch):
    model = _model(arch, config="prefix_tuning[prefix_length=4]")
    inputs = _prompts(model.config.is_encoder_decoder)
    lengths = []
    decoder_key = "decoder_input_ids" if model.config.is_encoder_decoder else "input_ids"
    hook = model.base_model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs[decoder_key].shape[1]), with_kwargs=True)
    try:
        out = _greedy(model, inputs, return_dict_in_generate=True)
    finally:
        hook.remove()
    steps = lengths[1:] if model.config.is_encoder_decoder else lengths  # encoder run: one decoder position
    first = 1 if model.config.is_encoder_decoder else inputs["input_ids"].shape[1]
    assert steps == [first] + [1] * (NEW - 1)
    cache = getattr(out, "cache", None) or out.past_key_values
    seen = first + NEW - 1  # every position fed to the decoder, the prefix not counted
    assert cache.get_seq_length() == seen
    assert out.sequences.shape[1] == (1 if model.config.is_encoder_decoder else first) + NEW


@pytest.mark.parametrize("arch", ("gpt2", "t5"))
def test_beam_search_scores_are_the_sequences_log_probabilities(arch):
    model = _model(arch, config="lora[r=4,alpha=8]")
    inputs = _prompts(model.config.is_encoder_decoder)
    out = model.generate(**inputs, max_new_tokens=NEW, num_beams=4, num_return_sequences=3, do_sample=False,
                         length_penalty=0.0, pad_token_id=PAD, eos_token_id=None, return_dict_in_generate=True,
                         output_scores=True)
    assert out.sequences.shape[0] == 9
    scores = out.sequences_scores.view(3, 3)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])  # best beam first
    greedy = _greedy(model, inputs)
    with torch.no_grad():
        for index, sequence in enumerate(out.sequences):
            row = index // 3
            if model.config.is_encoder_decoder:
                logits = model(input_ids=inputs["input_ids"][row:row + 1],
                               attention_mask=inputs["attention_mask"][row:row + 1],
                               decoder_input_ids=sequence[None, :-1]).logits
                targets, logits = sequence[1:], logits[0]
            else:
                mask = inputs["attention_mask"][row:row + 1]
                mask = torch.cat([mask, torch.ones(1, NEW, dtype=mask.dtype)], dim=1)
                logits = model(input_ids=sequence[None, :-1], attention_mask=mask[:, :-1],
                               position_ids=(mask[:, :-1].cumsum(-1) - 1).clamp(min=0)).logits
                targets, logits = sequence[-NEW:], logits[0, -NEW:]
            total = logits.log_softmax(-1).gather(1, targets[:, None]).sum()
            torch.testing.assert_close(total, out.sequences_scores[index], atol=1e-4, rtol=0)
        best = out.sequences_scores.view(3, 3)[:, 0]
        for row in range(3):  # the best beam is at least as likely as the greedy sequence
            assert best[row] >= _sequence_log_prob(model, inputs, row, greedy[row]) - 1e-5


def _sequence_log_prob(model, inputs, row, sequence):
    if model.config.is_encoder_decoder:
        logits = model(input_ids=inputs["input_ids"][row:row + 1], attention_mask=inputs["attention_mask"][row:row + 1],
                       decoder_input_ids=sequence[None, :-1]).logits[0]
        return logits.log_softmax(-1).gather(1, sequence[1:, None]).sum()
    mask = torch.cat([inputs["attention_mask"][row:row + 1], torch.ones(1, NEW, dtype=torch.long)], dim=1)[:, :-1]
    logits = model(input_ids=sequence[None, :-1], attention_mask=mask,
                   position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[0, -NEW:]
    return logits.log_softmax(-1).gather(1, sequence[-NEW:, None]).sum()


@pytest.mark.parametrize("arch", ("llama", "bart"))
def test_sampling_is_reproducible_with_a_seed(arch):
    model = _model(arch, config="seq_bn")
    inputs = _prompts(model.config.is_encoder_decoder)
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        runs.append(model.generate(**inputs, max_new_tokens=NEW, do_sample=True, top_k=0, temperature=2.0,
                                   pad_token_id=PAD, eos_token_id=None))
    assert torch.equal(runs[0], runs[1])
    assert not torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("arch", ("gpt2", "bart"))
def test_eos_ends_a_row_and_pads_it(arch):
    model = _model(arch, config="seq_bn")
    inputs = _prompts(model.config.is_encoder_decoder)
    free = _greedy(model, inputs)
    eos = int(free[0, -NEW + 1])  # row 0's second generated token
    out = model.generate(**inputs, max_new_tokens=NEW, do_sample=False, pad_token_id=PAD, eos_token_id=eos)
    row = out[0, -(out.shape[1] - free.shape[1] + NEW):]
    end = (row == eos).nonzero()[0, 0]
    assert torch.all(row[end + 1:] == PAD)
    for other in range(3):  # rows that never produce eos are unchanged
        if eos not in free[other, -NEW:]:
            assert torch.equal(out[other, :free.shape[1]], free[other, :out.shape[1]])


@pytest.mark.parametrize("arch", ("bart", "t5"))
def test_decoder_start_token(arch):
    model = _model(arch, config="prefix_tuning[prefix_length=3]")
    inputs = _prompts(True)
    assert torch.all(_greedy(model, inputs)[:, 0] == model.config.decoder_start_token_id)
    got = _greedy(model, inputs, decoder_start_token_id=7)
    assert torch.all(got[:, 0] == 7)
    assert torch.equal(got, _argmax_loop(model, **inputs, start=7))


@pytest.mark.parametrize("arch,config", [("gpt2", "seq_bn"), ("llama", "lora[r=4,alpha=8]"), ("bart", "seq_bn"),
                                         ("t5", "par_bn")])
def test_parallel_generates_each_branch(arch, config):
    model = _model(arch, adapters=("a", "b"), config=config)
    inputs = _prompts(model.config.is_encoder_decoder)
    beam = dict(max_new_tokens=NEW, num_beams=2, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    single, single_beams = [], []
    for name in "ab":
        model.set_active_adapters(name)
        single.append(_greedy(model, inputs))
        single_beams.append(model.generate(**inputs, **beam))
    assert not torch.equal(single[0], single[1])
    model.set_active_adapters(Parallel("a", "b"))
    assert torch.equal(_greedy(model, inputs), torch.cat(single))
    assert torch.equal(model.generate(**inputs, **beam), torch.cat(single_beams))  # beams stay in their branch


def test_refusals():
    model = _model("gpt2", adapters=("a", "b"))
    inputs = _prompts(False)
    model.add_classification_head("cls", num_labels=2)  # becomes the active head
    with pytest.raises(InvalidHead, match="'cls' is a 'classification' head"):
        _greedy(model, inputs)
    with pytest.raises(InvalidHead, match="'cls'"):
        _greedy(model, inputs, head="cls")
    model.active_head = ["a", "b"]
    with pytest.raises(InvalidHead, match="one LM head at a time"):
        _greedy(model, inputs)
    model.set_active_adapters(BatchSplit("a", "b", batch_sizes=[1, 2]))
    with pytest.raises(InvalidComposition, match="BatchSplit"):
        _greedy(model, inputs)
    model.set_active_adapters("a")
    with pytest.raises(InvalidComposition, match="adapter_names has 2 entries"):  # mixed batches: one name per row
        _greedy(model, inputs, adapter_names=["a", "b"])
    model.delete_head("b")
    model.set_active_adapters(Parallel("a", "b"))
    with pytest.raises(InvalidHead, match="one LM head per Parallel branch"):
        _greedy(model, inputs)
    prefix = _model("gpt2", adapters=("p", "q"), config="prefix_tuning[prefix_length=2]")
    prefix.set_active_adapters(Parallel("p", "q"))  # as in a forward: prefixes only alone or in a Stack
    with pytest.raises(InvalidComposition, match="prefix tuning"):
        _greedy(prefix, inputs)
    bare = AutoAdapterModel.from_config(_config("bart")).eval()
    with pytest.raises(InvalidHead, match="needs an active LM head"):
        _greedy(bare, _prompts(True))
    assert type(bare).can_generate()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("config", ("prefix_tuning[prefix_length=3]", "lora[r=4,alpha=8]"))
def test_init_wrapped_hf_models_generate_with_adapters(arch, config):
    import adapters_client

    torch.manual_seed(0)
    auto = transformers.AutoModelForSeq2SeqLM if arch in ("bart", "t5") else transformers.AutoModelForCausalLM
    model = auto.from_config(_config(arch)).eval()
    _backbone_noise(model)
    model = adapters_client.init(model)
    model.add_adapter("a", config=config)
    randomise(model.adapter_engine.modules_of("a"), seed=9, std=0.3)
    inputs = _prompts(model.config.is_encoder_decoder)
    plain = _greedy(model, inputs)
    model.set_active_adapters("a")
    got = _greedy(model, inputs)
    assert not torch.equal(got, plain)
    assert torch.equal(got, _argmax_loop(model, **inputs))
    if arch in ("gpt2", "bart") and config.startswith("lora"):  # Parallel: one block of rows per branch
        single = []
        for index, name in enumerate("bc"):
            model.add_adapter(name, config="seq_bn")
            randomise(model.adapter_engine.modules_of(name), seed=11 + index, std=0.3)
            model.set_active_adapters(name)
            single.append(_greedy(model, inputs))
        model.set_active_adapters(Parallel("b", "c"))
        assert torch.equal(_greedy(model, inputs), torch.cat(single))


@pytest.mark.parametrize("arch", ("gpt2", "bart"))
def test_generation_config_is_saved_and_read_back(arch, tmp_path):
    """Decoding defaults set on the model travel with ``save_pretrained``; a plain HF folder's
    ``generation_config.json`` is read by ``from_pretrained`` as a generating HF model reads it."""
    model = _model(arch, config="seq_bn")
    inputs = _prompts(model.config.is_encoder_decoder)
    model.generation_config.max_new_tokens = 3
    model.generation_config.pad_token_id = PAD
    expected = model.generate(**inputs, do_sample=False)
    assert expected.shape[1] - (0 if model.config.is_encoder_decoder else inputs["input_ids"].shape[1]) <= 4
    model.save_pretrained(str(tmp_path / "whole"))
    again = AutoAdapterModel.from_pretrained(str(tmp_path / "whole")).eval()
    assert again.generation_config.max_new_tokens == 3
    assert torch.equal(again.generate(**inputs, do_sample=False), expected)

    model.base_model.save_pretrained(str(tmp_path / "plain"))
    saved = model.generation_config.__class__(max_new_tokens=2, pad_token_id=PAD, eos_token_id=None,
                                              decoder_start_token_id=model.generation_config.decoder_start_token_id)
    saved.save_pretrained(str(tmp_path / "plain"))
    assert AutoAdapterModel.from_pretrained(str(tmp_path / "plain")).generation_config.max_new_tokens == 2
    no_file = tmp_path / "bare"
    model.base_model.save_pretrained(str(no_file))
    (no_file / "generation_config.json").unlink(missing_ok=True)
    assert AutoAdapterModel.from_pretrained(str(no_file)).generation_config.max_new_tokens is None
