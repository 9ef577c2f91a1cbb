"""The README's scripts: failures are reported by step and command, the locks are exact and current."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "scripts" / "lib.sh"


def bash(script, tmp_path):
    """Run `script` after sourcing scripts/lib.sh in strict mode; returns the finished process."""
    env = {**os.environ, "PYTHON": sys.executable}
    return subprocess.run(["bash", "-c", f'source "{LIB}"\nstrict_mode\n{script}'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def fake_venv(tmp_path, output, status):
    """A folder with a bin/pip that prints `output` and exits with `status`."""
    pip = tmp_path / "venv" / "bin" / "pip"
    pip.parent.mkdir(parents=True)
    pip.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {status}\n")
    pip.chmod(0o755)
    return pip.parent.parent


def test_pip_failure_is_reported_even_when_its_only_output_is_a_filtered_warning(tmp_path):
    venv = fake_venv(tmp_path, "WARNING: Location 'file:///x' is ignored: it is neither a file nor a directory.", 1)
    result = bash(f'step "installing foo"\n_pip "{venv}" foo==1\necho NOT-REACHED', tmp_path)
    assert result.returncode == 1
    assert "NOT-REACHED" not in result.stdout
    assert "FAILED: pip install foo==1" in result.stderr
    assert "step 'installing foo'" in result.stderr


def test_pip_success_hides_only_the_known_warnings(tmp_path):
    venv = fake_venv(tmp_path, "WARNING: Location 'file:///x' is ignored: it is neither a file nor a directory.", 0)
    result = bash(f'_pip "{venv}" foo==1\necho REACHED', tmp_path)
    assert result.returncode == 0, result.stderr
    assert "REACHED" in result.stdout
    assert "is ignored" not in result.stderr


def test_a_failing_command_names_its_step_and_itself(tmp_path):
    result = bash("step \"doing the thing\"\nsh -c 'exit 7'\necho NOT-REACHED", tmp_path)
    assert result.returncode == 7
    assert "NOT-REACHED" not in result.stdout
    assert "step 'doing the thing'" in result.stderr
    assert "sh -c 'exit 7'" in result.stderr and "status 7" in result.stderr


def test_run_hub_refuses_an_unknown_argument():
    result = subprocess.run([str(ROOT / "scripts" / "run-hub.sh"), "--bogus"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "unknown argument '--bogus'" in result.stderr


@pytest.mark.parametrize(("name", "line"), [("main", "5."), ("ref", "4.57.")])
def test_locks_pin_exact_versions_and_match_their_inputs(name, line, tmp_path):
    text = (ROOT / "requirements" / f"{name}.lock").read_text()
    pins = [row for row in text.splitlines() if row and not row.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.]+", row) for row in pins), pins
    names = {row.split("==")[0].lower() for row in pins}
    assert "torch==2.13.0" in pins and "adapter-hub" not in names
    assert any(row.startswith(f"transformers=={line}") for row in pins)
    recorded = re.search(r"^# inputs: (\w+)$", text, re.M).group(1)
    current = bash(f"lock_inputs_hash {name}", tmp_path)
    assert current.returncode == 0, current.stderr
    assert current.stdout.strip() == recorded, f"requirements/{name}.lock is stale: run ./scripts/lock.sh {name}"


def load_summarizer():
    spec = importlib.util.spec_from_file_location("summarize_reports", ROOT / "scripts" / "summarize_reports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_recorded_check_counts_in_the_summary(tmp_path, capsys):
    summarizer = load_summarizer()
    log = tmp_path / "check.log"
    log.write_text("\x1b[1;31m==> FAILED:\x1b[0m migrations exploded\x07\n")
    summarizer.record(tmp_path / "bad.xml", "run-hub.sh --check", 3, log)
    summarizer.record(tmp_path / "good.xml", "run-hub.sh --check", 0, log)
    assert summarizer.count([tmp_path / "bad.xml", tmp_path / "good.xml"]) == (1, 1, 0, [])
    assert "migrations exploded" in (tmp_path / "bad.xml").read_text()
    assert summarizer.main([str(tmp_path / "bad.xml")]) == 1
    assert summarizer.main([str(tmp_path / "good.xml")]) == 0
    assert summarizer.main([str(tmp_path / "good.xml"), str(tmp_path / "missing.xml")]) == 1
    assert "tests: 1 passed, 0 failed, 0 skipped" in capsys.readouterr().out
