"""GPT-2 sequence heads through ``AdapterModel.forward``: the token is picked as the adapters library does.

The rule is ``count(input_ids != pad_token_id) - 1`` (the library's ``GPT2AdapterModel``); the attention
mask is never looked at, so padded positions that hold ordinary tokens and a pad id inside the text are
where a mask-based rule would disagree.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config

from adapters_client import AutoAdapterModel

PAD = 0


def _model(pad_token_id=PAD):
    torch.manual_seed(0)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=99, n_positions=64, bos_token_id=1,
                        eos_token_id=1, pad_token_id=pad_token_id)
    model = AutoAdapterModel.from_config(config).eval()
    model.add_adapter("a", config="seq_bn")
    model.add_classification_head("a", num_labels=3)
    model.set_active_adapters("a")
    return model


def _batch():
    ids = torch.randint(2, 99, (3, 8), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # padded positions holding ordinary tokens (a user's own padding)
    ids[1, 2] = PAD  # a pad id inside the text
    ids[2, 6:] = PAD  # ordinary right padding with the pad id
    mask[2, 6:] = 0
    return ids, mask


def _expected(model, ids, mask, positions):
    with torch.no_grad():
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        return model.heads["a"](None, cls_output=hidden[torch.arange(3), positions]).logits


def test_token_comes_from_input_ids_and_pad_id_not_the_mask():
    model = _model()
    ids, mask = _batch()
    positions = torch.ne(ids, PAD).sum(-1) - 1
    assert positions.tolist() == [7, 6, 5]  # row 0: the mask would say 4; row 1: the last position is 7
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, _expected(model, ids, mask, positions))
    wrong = _expected(model, ids, mask, mask.sum(-1) - 1)
    assert not torch.allclose(logits, wrong)


def test_without_input_ids_or_pad_id_the_last_position_is_used():
    ids, mask = _batch()
    model = _model(pad_token_id=None)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(logits, _expected(model, ids, mask, torch.full((3,), 7)))
    model = _model()
    with torch.no_grad():
        embeds = model.base_model.get_input_embeddings()(ids)
        logits = model(inputs_embeds=embeds, attention_mask=mask).logits
    torch.testing.assert_close(logits, _expected(model, ids, mask, torch.full((3,), 7)))
