"""Tiny BERT backbones saved to folders, adapters made on them, and ways to break an adapter's files."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(94)]


def tiny_config(**overrides):
    from transformers import BertConfig

    values = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99)
    values.update(overrides)
    return BertConfig(**values)


def save_backbone(folder: Path, seed: int = 0, tokenizer: bool = False, **overrides) -> Path:
    """A randomly initialised tiny BERT written by ``save_pretrained`` (optionally with a WordPiece tokenizer)."""
    from transformers import AutoModel, BertTokenizer

    torch.manual_seed(seed)
    AutoModel.from_config(tiny_config(**overrides)).save_pretrained(str(folder))
    if tokenizer:
        vocab = folder / "vocab.txt"
        vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
        BertTokenizer(str(vocab)).save_pretrained(str(folder))
    return folder


def make_adapter(backbone: Path, out: Path, config="seq_bn", name: str = "demo", head: str | None = "classification",
                 num_labels: int = 2, seed: int = 3, scale: float = 0.1, head_kwargs: dict | None = None) -> Path:
    """Train-free adapter: ``config`` on the backbone, weights drawn at random (``scale`` 0 gives zeros)."""
    from adapters_client import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(backbone))
    model.add_adapter(name, config=config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.get_adapter(name):
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    if head == "classification":
        model.add_classification_head(name, num_labels=num_labels, **(head_kwargs or {}))
    elif head == "tagging":
        model.add_tagging_head(name, num_labels=num_labels, **(head_kwargs or {}))
    model.save_adapter(str(out), name, with_head=head is not None)
    return out


def edit_weights(folder: Path, edit, filename: str = "adapter.safetensors") -> None:
    """Rewrite a weights file: ``edit(dict of tensors)`` changes the dict in place."""
    path = folder / filename
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def edit_json(folder: Path, filename: str, edit) -> None:
    path = folder / filename
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")


def first_key(folder: Path, contains: str, filename: str = "adapter.safetensors") -> str:
    return next(k for k in sorted(load_file(str(folder / filename))) if contains in k)
