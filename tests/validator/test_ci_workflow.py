"""docs/ci/validate-adapter.yml: valid YAML, and its validator command uses options the CLI accepts."""

from __future__ import annotations

import os
import shlex

import yaml

from validator.cli import build_parser

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKFLOW = os.path.join(ROOT, "docs", "ci", "validate-adapter.yml")


def _steps():
    with open(WORKFLOW, encoding="utf-8") as fh:
        workflow = yaml.safe_load(fh)
    assert set(workflow["env"]) >= {"ADAPTER_PATH", "BACKBONE", "BACKBONE_REVISION", "HUB_PACKAGE"}
    return workflow["jobs"]["validate"]["steps"]


def test_the_validate_step_calls_the_cli_with_accepted_options():
    scripts = [step["run"] for step in _steps() if "run" in step]
    [script] = [s for s in scripts if "python -m validator" in s]
    command = script[script.index("python -m validator"):].split(">")[0].replace("\\\n", " ")
    argv = shlex.split(command)[3:]
    args = build_parser().parse_args([a.replace("$", "") for a in argv])
    assert args.json and args.allow_list == "backbones.json" and args.backbone == "BACKBONE"
    assert 'exit "$status"' in script  # the job fails exactly when the validator does


def test_the_backbone_is_read_offline_when_validating():
    [step] = [s for s in _steps() if "python -m validator" in s.get("run", "")]
    assert step["env"]["HF_HUB_OFFLINE"] == "1"
    assert any("hf_cache" in s.get("run", "") for s in _steps())
