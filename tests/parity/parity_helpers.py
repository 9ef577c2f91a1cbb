"""Shared pieces of the parity suite: tiny backbones on disk, both libraries' models, randomising.

Runs only in the reference virtualenv (.venv-ref) where the ``adapters`` library is installed.
"""

from __future__ import annotations

import zlib

import adapters
import torch
from torch import nn
from adapters_client.heads import HeadsMixin
from transformers import AutoModel, BertConfig, BertModel, GPT2Config, GPT2Model, RobertaConfig, RobertaModel

ATOL = 1e-5
VOCAB = 99
PAD = 0

TINY = {
    "bert": lambda: BertModel(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=37, vocab_size=VOCAB, pad_token_id=PAD)),
    "roberta": lambda: RobertaModel(RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                  intermediate_size=37, vocab_size=VOCAB, pad_token_id=1,
                                                  max_position_embeddings=64)),
    "gpt2": lambda: GPT2Model(GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=64,
                                         bos_token_id=2, eos_token_id=2, pad_token_id=PAD)),
}


def save_backbone(kind: str, folder) -> str:
    """A tiny backbone with fixed random weights, saved so both libraries load identical weights."""
    torch.manual_seed(1234)
    model = TINY[kind]()
    model.save_pretrained(str(folder))
    return str(folder)


class HeadHarness(HeadsMixin, nn.Module):
    """Our heads on a plain HF backbone (used for head parity until the engine's model exists)."""

    def __init__(self, base_model):
        super().__init__()
        self.base_model = base_model
        self.config = base_model.config
        self.heads = nn.ModuleDict()

    def forward(self, input_ids=None, attention_mask=None, head=None, **kwargs):
        outputs = self.base_model(input_ids, attention_mask=attention_mask)
        return self.forward_head(outputs, head_name=head, attention_mask=attention_mask, input_ids=input_ids,
                                 **kwargs)


def library_model(folder: str):
    return adapters.AutoAdapterModel.from_pretrained(folder).eval()


def our_model(folder: str, via: str = "engine"):
    """Our model: the engine's AutoAdapterModel, or (``via="harness"``) our heads on a plain HF backbone."""
    if via == "engine":
        return engine_model(folder)
    return HeadHarness(AutoModel.from_pretrained(folder)).eval()


def engine_model(folder: str):
    """The engine's AutoAdapterModel (no fallback: composition needs the engine)."""
    import adapters_client

    return adapters_client.AutoAdapterModel.from_pretrained(folder).eval()


def randomise(model: nn.Module, patterns, seed: int = 0, std: float = 0.2) -> list[str]:
    """Fill every parameter whose name contains one of ``patterns`` with seeded noise; returns the names."""
    touched = []
    with torch.no_grad():
        for name, param in model.named_parameters():
            if any(pattern in name for pattern in patterns):
                generator = torch.Generator().manual_seed(seed + zlib.crc32(name.encode()))
                param.copy_(torch.randn(param.shape, generator=generator) * std)
                touched.append(name)
    assert touched, f"no parameter matched {patterns}"
    return touched


def batch(kind: str, size: int = 4, length: int = 9, seed: int = 5) -> dict:
    """Input ids with right padding on some rows, and the matching attention mask."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, VOCAB, (size, length), generator=generator)
    mask = torch.ones(size, length, dtype=torch.long)
    pad = 1 if kind == "roberta" else PAD
    for row, cut in ((1, length - 3), (size - 1, length - 5)):
        input_ids[row, cut:] = pad
        mask[row, cut:] = 0
    return {"input_ids": input_ids, "attention_mask": mask}


OUTPUT_FIELDS = ("logits", "start_logits", "end_logits", "loss")


def assert_same_output(ours, theirs, atol: float = ATOL) -> int:
    """Every prediction field both outputs have is equal within ``atol``; returns how many were compared."""
    compared = 0
    for field in OUTPUT_FIELDS:
        mine, ref = _field(ours, field), _field(theirs, field)
        if ref is None:
            continue
        assert mine is not None, f"our output lacks '{field}'"
        torch.testing.assert_close(mine, ref, atol=atol, rtol=0)
        compared += 1
    assert compared, "nothing compared"
    return compared


def _field(output, field):
    try:
        return output[field]
    except (KeyError, IndexError, TypeError):
        return getattr(output, field, None)


def randomise_new_params(model, before: set, salt: str, std: float) -> None:
    """Seeded random values (from ``salt`` and each parameter's name) for the parameters not in ``before``
    (ids of the parameters the model had before adapters or heads were added)."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if id(param) not in before:
                generator = torch.Generator().manual_seed(zlib.crc32(f"{salt}/{name}".encode()))
                param.copy_(torch.randn(param.shape, generator=generator) * std)
