"""Code written for the `adapters` library runs with only its import lines changed to
`adapters_client`, and gives the same outputs (CONTRACTS.md section 3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

USER_SCRIPT = '''
import sys
import torch
import adapters
from adapters import AutoAdapterModel, Fuse, Parallel, Stack

base, out_path, save_dir = sys.argv[1:4]
torch.manual_seed(0)
model = AutoAdapterModel.from_pretrained(base)
model.add_adapter("a", config="seq_bn[reduction_factor=4,non_linearity='gelu']")
model.add_adapter("b", config="lora[r=4,alpha=8,attn_matrices=['q','k','v']]")
model.add_adapter("c", config="par_bn")
model.add_adapter("d", config=adapters.DoubleSeqBnConfig(reduction_factor=8))
model.add_classification_head("a", num_labels=3)
model.add_classification_head("c", num_labels=2)
model.add_adapter("e", config="pfeiffer")
model.add_classification_head("e", num_labels=2)
model.add_adapter_fusion(Fuse("a", "c"))

generator = torch.Generator().manual_seed(1)
with torch.no_grad():
    for name, param in sorted(model.named_parameters()):
        if any(part in name for part in ("adapters.", "loras.", "heads.", "adapter_fusion_layer.")):
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
model.eval()

ids = torch.randint(3, 90, (3, 7), generator=generator)
mask = torch.ones_like(ids)
mask[0, 5:] = 0
outputs = {}
for label, setup, head in [("a", "a", "a"), ("stack", Stack("b", "a"), "a"), ("double", Stack("d", "c"), "c"),
                           ("fuse", Fuse("a", "c"), "c")]:
    model.set_active_adapters(setup)
    model.active_head = head
    outputs[label] = model(input_ids=ids, attention_mask=mask).logits
model.set_active_adapters(Parallel("a", "e"))
parallel = model(input_ids=ids, attention_mask=mask)
outputs["parallel_a"], outputs["parallel_e"] = parallel[0].logits, parallel[1].logits

model.train_adapter("a")
outputs["trainable"] = sorted(n for n, p in model.named_parameters() if p.requires_grad)
model.save_adapter(save_dir + "/a", "a")
outputs["saved_files"] = sorted(p.name for p in __import__("pathlib").Path(save_dir, "a").iterdir())
torch.save(outputs, out_path)
'''


def swap_imports(script: str) -> str:
    return script.replace("import adapters\n", "import adapters_client as adapters\n").replace(
        "from adapters import", "from adapters_client import")


def run(script: str, base: str, tmp_path: Path, label: str) -> dict:
    path = tmp_path / f"{label}.py"
    path.write_text(script)
    out = tmp_path / f"{label}.pt"
    (tmp_path / f"{label}-saved").mkdir()  # the library's save_adapter needs the parent folder
    result = subprocess.run([sys.executable, str(path), base, str(out), str(tmp_path / f"{label}-saved")],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return torch.load(out, weights_only=False)


def test_library_script_with_swapped_imports_gives_the_same_outputs(backbone_dirs, tmp_path):
    swapped = swap_imports(USER_SCRIPT)
    assert "adapters_client" in swapped and "from adapters import" not in swapped
    theirs = run(USER_SCRIPT, backbone_dirs["bert"], tmp_path, "library")
    ours = run(swapped, backbone_dirs["bert"], tmp_path, "ours")
    # Same adapter weights train. Ours also freezes the heads of other adapters (CONTRACTS.md:
    # "freezes everything but this adapter and its head"); the library leaves every head trainable.
    not_head = [n for n in theirs["trainable"] if not n.startswith("heads.")]
    assert [n for n in ours["trainable"] if not n.startswith("heads.")] == not_head
    assert {n for n in ours["trainable"] if n.startswith("heads.")} == {
        n for n in theirs["trainable"] if n.startswith("heads.a.")}
    # Same files, but ours are safetensors by default where the library pickles unless asked not to.
    as_safetensors = {"pytorch_adapter.bin": "adapter.safetensors", "pytorch_model_head.bin": "model_head.safetensors"}
    assert ours["saved_files"] == sorted(as_safetensors.get(n, n) for n in theirs["saved_files"])
    for key in ("a", "stack", "double", "fuse", "parallel_a", "parallel_e"):
        torch.testing.assert_close(ours[key], theirs[key], atol=1e-5, rtol=0, msg=key)
    assert not torch.allclose(ours["a"], ours["stack"])  # the adapters really act
