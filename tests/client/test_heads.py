"""Unit tests of the prediction heads on a tiny in-memory backbone (no engine needed)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig, BertModel, GPT2Config, GPT2Model
from transformers.modeling_outputs import (
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from adapters_client.heads import HeadsMixin, InvalidHead, MultiHeadOutput

VOCAB = 99


class HeadHarness(HeadsMixin, nn.Module):
    """Stands in for the engine's adapter model: config, base_model and an empty heads dict."""

    def __init__(self, base_model):
        super().__init__()
        self.base_model = base_model
        self.config = base_model.config
        self.heads = nn.ModuleDict()

    def forward(self, input_ids, attention_mask=None, head=None, **kwargs):
        outputs = self.base_model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return self.forward_head(outputs, head_name=head, attention_mask=attention_mask, input_ids=input_ids,
                                 **kwargs)


def make_bert(seed: int = 0) -> HeadHarness:
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=VOCAB)
    return HeadHarness(BertModel(config)).eval()


def make_gpt2(seed: int = 0, pad_token_id: int | None = 0) -> HeadHarness:
    torch.manual_seed(seed)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=64, bos_token_id=1,
                        eos_token_id=1, pad_token_id=pad_token_id)
    return HeadHarness(GPT2Model(config)).eval()


def ids(batch: int = 4, length: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randint(2, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def stack(head, x: torch.Tensor) -> torch.Tensor:
    """The head's layers applied to a tensor (the math the head must perform)."""
    return nn.Sequential.forward(head, x)


@pytest.fixture
def bert():
    return make_bert()


def test_classification_layers_keys_and_labels(bert):
    bert.add_classification_head("sst", num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"})
    keys = sorted(f"heads.{k}" for k in bert.heads.state_dict())
    assert keys == ["heads.sst.1.bias", "heads.sst.1.weight", "heads.sst.4.bias", "heads.sst.4.weight"]
    assert isinstance(bert.heads.sst[2].f, nn.Tanh) and isinstance(bert.heads.sst[0], nn.Dropout)
    assert bert.get_head_config("sst")["label2id"] == {"neg": 0, "neu": 1, "pos": 2}
    assert bert.get_labels() == ["neg", "neu", "pos"]
    assert bert.active_head == "sst" and bert.config.id2label == {0: "neg", 1: "neu", 2: "pos"}


def test_classification_uses_first_token_and_cross_entropy(bert):
    bert.add_classification_head("c", num_labels=3)
    x, labels = ids(), torch.tensor([0, 2, 1, 2])
    out = bert(x, labels=labels)
    hidden = bert.base_model(x).last_hidden_state[:, 0]
    expected = stack(bert.heads.c, hidden)
    assert isinstance(out, SequenceClassifierOutput) and out.logits.shape == (4, 3)
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(out.loss, F.cross_entropy(expected, labels))
    assert out.hidden_states is not None and len(out.hidden_states) == 3
    assert bert.get_head_config("c")["label2id"] == {"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2}


def test_regression_and_multilabel_losses(bert):
    bert.add_classification_head("reg", num_labels=1)
    target = torch.tensor([0.5, -1.0, 2.0, 0.0])
    out = bert(ids(), labels=target)
    torch.testing.assert_close(out.loss, F.mse_loss(out.logits.view(-1), target))
    bert.add_multilabel_classification_head("ml", num_labels=4)
    assert bert.get_head_config("ml")["head_type"] == "multilabel_classification"
    multi = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0]])
    out = bert(ids(), labels=multi)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi.float()))


def test_pooler_head_reads_pooled_output(bert):
    bert.add_classification_head("p", num_labels=2, use_pooler=True)
    x = ids()
    out = bert(x)
    torch.testing.assert_close(out.logits, stack(bert.heads.p, bert.base_model(x).pooler_output))


def test_multiple_choice_reshapes_per_question(bert):
    bert.add_multiple_choice_head("mc", num_choices=3)
    x = ids(batch=6)  # 2 questions x 3 choices, flattened
    labels = torch.tensor([2, 0])
    out = bert(x, labels=labels)
    assert isinstance(out, MultipleChoiceModelOutput) and out.logits.shape == (2, 3)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert bert.heads.mc[4].out_features == 1


def test_tagging_loss_ignores_masked_tokens(bert):
    bert.add_tagging_head("ner", num_labels=5)
    x, mask = ids(), torch.ones(4, 7, dtype=torch.long)
    mask[:, 5:] = 0
    labels = torch.randint(0, 5, (4, 7), generator=torch.Generator().manual_seed(3))
    out = bert(x, attention_mask=mask, labels=labels)
    assert isinstance(out, TokenClassifierOutput) and out.logits.shape == (4, 7, 5)
    keep = mask.view(-1) == 1
    expected = F.cross_entropy(out.logits.view(-1, 5)[keep], labels.view(-1)[keep])
    torch.testing.assert_close(out.loss, expected)


def test_qa_start_end_logits_and_loss(bert):
    bert.add_qa_head("qa")
    start, end = torch.tensor([1, 2, 3, 40]), torch.tensor([[2], [3], [4], [5]])
    out = bert(ids(), start_positions=start, end_positions=end)
    assert isinstance(out, QuestionAnsweringModelOutput) and out.start_logits.shape == (4, 7)
    ignored = 7
    expected = (F.cross_entropy(out.start_logits, start.clamp(0, ignored), ignore_index=ignored)
                + F.cross_entropy(out.end_logits, end.view(-1), ignore_index=ignored)) / 2
    torch.testing.assert_close(out.loss, expected)
    assert start.tolist() == [1, 2, 3, 40]  # the caller's tensor is not clamped in place


def test_causal_lm_head_is_tied_and_shifts_labels():
    model = make_gpt2()
    model.add_causal_lm_head("lm")
    head = model.heads.lm
    assert [type(m).__name__ for m in head] == ["Linear", "HeadActivation", "LayerNorm", "Linear"]
    assert head[3].weight is model.base_model.wte.weight
    x = ids()
    out = model(x, labels=x)
    assert out.logits.shape == (4, 7, VOCAB)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, VOCAB), x[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    assert out.past_key_values is not None


def test_gpt2_classification_reads_last_non_pad_token():
    model = make_gpt2(pad_token_id=0)
    model.add_classification_head("c", num_labels=2)
    x = ids()
    x[0, 4:] = 0
    x[2, 6:] = 0
    hidden = model.base_model(x).last_hidden_state
    expected = stack(model.heads.c, hidden[torch.arange(4), torch.tensor([3, 6, 5, 6])])
    torch.testing.assert_close(model(x).logits, expected)


def test_decoder_only_model_refuses_multiple_choice():
    with pytest.raises(InvalidHead) as info:
        make_gpt2().add_multiple_choice_head("mc")
    assert info.value.code == "invalid_head"


def test_duplicate_unknown_and_delete(bert):
    bert.add_classification_head("a")
    with pytest.raises(InvalidHead):
        bert.add_classification_head("a")
    bert.add_classification_head("a", num_labels=4, overwrite_ok=True)
    assert bert.heads.a[4].out_features == 4
    with pytest.raises(InvalidHead):
        bert.active_head = "missing"
    with pytest.raises(InvalidHead):
        bert.forward_head(bert.base_model(ids()), head_name="missing")
    bert.add_tagging_head("b", set_active=False)
    assert bert.active_head == "a"
    bert.delete_head("a")
    assert "a" not in bert.heads and bert.active_head is None
    assert "a" not in bert.config.prediction_heads
    bert.delete_head("a")  # no-op
    outputs = bert.base_model(ids())
    assert bert.forward_head(outputs) is outputs  # no active head: base outputs unchanged


def test_parallel_splits_batch_and_sums_losses(bert):
    bert.add_classification_head("a", num_labels=2)
    bert.add_classification_head("b", num_labels=3)
    x = ids()
    base = bert.base_model(torch.cat([x, x]))  # what a Parallel block of two produces
    labels = torch.tensor([0, 1, 1, 0])
    out = bert.forward_head(base, labels=labels, parallel_names=["a", "b"])
    assert isinstance(out, MultiHeadOutput) and len(out) == 2
    assert out[0].logits.shape == (4, 2) and out[1].logits.shape == (4, 3)
    cls = base.last_hidden_state[:, 0]
    torch.testing.assert_close(out[0].logits, stack(bert.heads.a, cls[:4]))
    torch.testing.assert_close(out[1].logits, stack(bert.heads.b, cls[4:]))
    torch.testing.assert_close(out.loss, out[0].loss + out[1].loss)
    torch.testing.assert_close(out[1].loss, F.cross_entropy(stack(bert.heads.b, cls[4:]), labels))
    replicated = bert.forward_head(base, labels=torch.cat([labels, labels]), parallel_names=["a", "b"])
    torch.testing.assert_close(replicated.loss, out.loss)
    with pytest.raises(InvalidHead):
        out.logits  # different label counts cannot be stacked
    with pytest.raises(InvalidHead):
        bert.forward_head(base, labels=torch.tensor([0, 1, 0]), parallel_names=["a", "b"])


def test_parallel_without_labels_has_no_loss_and_stacks_equal_logits(bert):
    bert.add_classification_head("a")
    bert.add_classification_head("b")
    base = bert.base_model(ids(batch=6))
    out = bert.forward_head(base, parallel_names=["a", "b", "a"])
    assert out.loss is None and [o.logits.shape[0] for o in out] == [2, 2, 2]
    assert out.logits.shape == (6, 2)
    with pytest.raises(InvalidHead):
        bert.forward_head(bert.base_model(ids(batch=5)), parallel_names=["a", "b"])


class _Split:
    def __init__(self, *children, batch_sizes):
        self.children, self.batch_sizes = list(children), batch_sizes


def test_batch_split_and_head_lists(bert):
    bert.add_classification_head("a")
    bert.add_tagging_head("t", num_labels=3)
    bert.active_head = _Split("a", "t", batch_sizes=[1, 3])
    x = ids()
    out = bert(x, labels=None)
    assert out[0].logits.shape == (1, 2) and out[1].logits.shape == (3, 7, 3)
    bert.active_head = ["a", "t"]
    both = bert(x)
    assert isinstance(both, MultiHeadOutput) and both[1].logits.shape == (4, 7, 3)
    assert bert.active_head == ["a", "t"]


def test_return_dict_false_gives_tuple(bert):
    bert.add_classification_head("a")
    base = bert.base_model(ids())
    out = bert.forward_head(base, labels=torch.tensor([0, 1, 0, 1]), return_dict=False)
    assert isinstance(out, tuple) and out[0].dim() == 0 and out[1].shape == (4, 2)


def test_head_setup_follows_the_library_rules(bert):
    from adapters_client.composition import BatchSplit, Fuse, Parallel, Stack
    from adapters_client.heads import head_setup_for

    available = {"a", "b"}
    assert head_setup_for(Stack("x", "a"), available) == "a"
    assert head_setup_for("b", available) == "b"
    assert head_setup_for(Parallel("a", Stack("x", "b")), available) == Parallel("a", Stack("x", "b"))
    assert head_setup_for(Parallel("a", "x"), available) is None
    assert head_setup_for(Fuse("a", "b"), available) is None
    split = BatchSplit("a", "b", batch_sizes=[1, 3])
    assert head_setup_for(split, available) is split
    bert.add_classification_head("a")
    bert.add_classification_head("b", num_labels=3)
    bert.active_head = Stack("a", "b")
    assert bert.active_head == "b"
    bert.active_head = Parallel("a", Stack("x", "b"))
    assert bert.active_head == ["a", "b"]


def test_parallel_split_read_from_the_forward_context(bert):
    from adapters_client.context import ForwardContext

    bert.add_classification_head("a")
    bert.add_classification_head("b", num_labels=3)
    bert.active_head = ["a", "b"]
    base = bert.base_model(ids(batch=8))
    with ForwardContext() as state:
        state.parallel_channels = 2
        out = bert.forward_head(base, labels=torch.tensor([0, 1, 1, 0]))
        assert [o.logits.shape for o in out] == [(4, 2), (4, 3)] and out.loss is not None
        bert.active_head = ["a", "b", "a"]
        with pytest.raises(InvalidHead):
            bert.forward_head(base)
