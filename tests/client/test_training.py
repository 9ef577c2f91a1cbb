"""train_adapter / train_adapter_fusion with the Hugging Face Trainer, unchanged."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from adapters_client import Fuse
from tests.client.engine_helpers import randomise, tiny_model


class _Toy(Dataset):
    """Label = whether token 5 occurs in the sequence: learnable by a tiny adapter + head."""

    def __init__(self, n: int = 32, length: int = 8):
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(6, 99, (n, length), generator=generator)
        self.labels = torch.arange(n) % 2
        self.ids[self.labels == 1, 3] = 5

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def _loss(model, data) -> float:
    model.eval()
    batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("input_ids", "attention_mask", "labels")}
    with torch.no_grad():
        return model(**batch).loss.item()


def _train(model, data, tmp_path, steps: int = 20) -> None:
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=8,
                             learning_rate=1e-2, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, seed=0, dataloader_num_workers=0)
    Trainer(model=model, args=args, train_dataset=data).train()


def _frozen_snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}


def test_trainer_trains_only_the_adapter_and_its_head(tmp_path):
    data = _Toy()
    model = tiny_model()
    model.add_adapter("task", config="seq_bn[reduction_factor=2]")
    model.add_classification_head("task", num_labels=2)
    model.add_adapter("other", config="lora")
    model.train_adapter("task")
    frozen = _frozen_snapshot(model)
    assert not any(".adapters.task." in n or n.startswith("heads.task.") for n in frozen)
    assert any(".loras.other." in n for n in frozen) and any("word_embeddings" in n for n in frozen)
    before = _loss(model, data)
    model.train_adapter("task")
    _train(model, data, tmp_path)
    after = _loss(model, data)
    assert after < before - 0.01
    for name, value in frozen.items():
        assert torch.equal(dict(model.named_parameters())[name], value), name


def test_trainer_trains_fusion_only(tmp_path):
    data = _Toy()
    model = tiny_model()
    for i, name in enumerate(("a", "b")):
        model.add_adapter(name, config="seq_bn")
        randomise(model.get_adapter(name), seed=i)
    model.add_adapter_fusion(Fuse("a", "b"))
    model.add_classification_head("a,b", num_labels=2)
    model.train_adapter_fusion(Fuse("a", "b"))
    frozen = _frozen_snapshot(model)
    assert any(".adapters.a." in n for n in frozen)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("adapter_fusion_layer" in n or n.startswith("heads.a,b.") for n in trainable)
    before = _loss(model, data)
    model.train_adapter_fusion(Fuse("a", "b"))
    _train(model, data, tmp_path)
    assert _loss(model, data) < before
    for name, value in frozen.items():
        assert torch.equal(dict(model.named_parameters())[name], value), name


def test_trainer_checkpoints_hold_no_shared_tensors(tmp_path):
    from safetensors.torch import load_file
    from transformers import Trainer, TrainingArguments

    model = tiny_model()
    model.add_adapter("t", config="double_seq_bn[ln_before=True]")
    model.add_adapter("p", config="prefix_tuning[prefix_length=2,bottleneck_size=4]")
    model.add_classification_head("t", num_labels=2)
    model.train_adapter("t")
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=8,
                             report_to=[], save_strategy="steps", save_steps=1, logging_strategy="no",
                             use_cpu=True)
    Trainer(model=model, args=args, train_dataset=_Toy(n=8)).train()
    saved = load_file(str(tmp_path / "out" / "checkpoint-1" / "model.safetensors"))
    assert "bert.encoder.layer.0.output.adapters.t.adapter_down.0.weight" in saved
    assert saved.keys() == model.state_dict().keys()
