"""Interleaved rounds: raw GET / cold download, and plain load / warm load_adapter.

Each measured round is compared with the mean of the two baseline rounds around it (the sequence
is baseline, measured, baseline, measured, ..., baseline), so a change of the machine's load during
the run moves both sides of a ratio; the report gives the median ratio with its min and max.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from .adapters import ADAPTER_CONFIG, WEIGHTS, BenchAdapter

CHUNK = 1024 * 1024  # the client's own chunk size (adapters_client.cache.CHUNK)
MB = 1_000_000


class OutOfTime(RuntimeError):
    """The run's time bound was reached."""


@dataclass
class Deadline:
    at: float

    def check(self, what: str) -> None:
        if time.monotonic() > self.at:
            raise OutOfTime(f"time bound reached before {what}")


@dataclass
class Pair:
    """A baseline and a measured side, interleaved; ``ratios`` are measured / mean(neighbour baselines)."""

    baseline: list[float] = field(default_factory=list)   # MB/s (downloads) or seconds (loads)
    measured: list[float] = field(default_factory=list)
    baseline_bytes: list[int] = field(default_factory=list)
    measured_bytes: list[int] = field(default_factory=list)
    checked: int = 0  # measured rounds whose result was verified (contents, parameters)

    @property
    def ratios(self) -> list[float]:
        return [m / ((self.baseline[i] + self.baseline[i + 1]) / 2) for i, m in enumerate(self.measured)
                if i + 1 < len(self.baseline)]

    def as_dict(self) -> dict:
        ratios = self.ratios
        return {"baseline": self.baseline, "measured": self.measured, "baseline_bytes": self.baseline_bytes,
                "measured_bytes": self.measured_bytes, "checked": self.checked, "ratios": ratios,
                "baseline_median": statistics.median(self.baseline) if self.baseline else float("nan"),
                "measured_median": statistics.median(self.measured) if self.measured else float("nan"),
                "ratio_median": statistics.median(ratios) if ratios else float("nan"),
                "ratio_min": min(ratios) if ratios else float("nan"),
                "ratio_max": max(ratios) if ratios else float("nan")}


# --- downloads ------------------------------------------------------------------------------

def object_url(base_url: str, file_id: int) -> str:
    """The URL the hub's download endpoint redirects to (a presigned URL on the S3 server)."""
    response = requests.get(f"{base_url}/api/v1/files/{file_id}/download", allow_redirects=False, timeout=30)
    if response.status_code != 302 or not response.headers.get("Location"):
        raise RuntimeError(f"the hub's download endpoint answered {response.status_code}, not a redirect to S3")
    return response.headers["Location"]


def raw_get(url: str, target: Path, timeout: float) -> tuple[float, int]:
    """(seconds, bytes on disk): a streamed GET to a file, no hashing; the baseline of a cold download."""
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=timeout) as response:
        response.raise_for_status()
        with open(target, "wb") as out:
            for chunk in response.iter_content(CHUNK):
                out.write(chunk)
    seconds = time.perf_counter() - started
    size = target.stat().st_size
    target.unlink()
    return seconds, size


def cold_download(base_url: str, identifier: str, cache_root: Path, timeout: float) -> tuple[float, int, Path]:
    """(seconds, bytes of the weights file, folder): ``adapters_client.download`` into an empty cache."""
    from adapters_client import download
    from adapters_client.hub_api import HubClient

    started = time.perf_counter()
    folder = download(identifier, hub=HubClient(base_url=base_url, token=None, timeout=timeout),
                      cache_dir=cache_root, progress=False)
    seconds = time.perf_counter() - started
    return seconds, (Path(folder) / WEIGHTS).stat().st_size, Path(folder)


def download_rounds(adapter: BenchAdapter, base_url: str, work: Path, rounds: int, deadline: Deadline,
                    timeout: float = 120.0) -> Pair:
    """raw, cold, raw, cold, ..., raw: ``rounds`` cold downloads, each into a fresh empty cache.

    One untimed raw GET first (the caller has already made one untimed download)."""
    pair = Pair()
    size = adapter.weights_bytes
    raw_get(object_url(base_url, adapter.file_ids[WEIGHTS]), work / "raw-warm-up.bin", timeout)  # untimed
    for i in range(rounds + 1):
        deadline.check(f"raw GET round {i + 1} of {adapter.size_mb} MB")
        url = object_url(base_url, adapter.file_ids[WEIGHTS])  # fresh presigned URL, not timed
        seconds, got = raw_get(url, work / f"raw-{i}.bin", timeout)
        pair.baseline.append(size / MB / seconds)
        pair.baseline_bytes.append(got)
        if i == rounds:
            break
        deadline.check(f"cold download round {i + 1} of {adapter.size_mb} MB")
        cache_root = Path(tempfile.mkdtemp(prefix=f"cold-{i}-", dir=work))
        try:
            seconds, got, folder = cold_download(base_url, adapter.identifier, cache_root, timeout)
            pair.measured.append(size / MB / seconds)
            pair.measured_bytes.append(got)
            if (folder / WEIGHTS).read_bytes() == adapter.weights_path.read_bytes():
                pair.checked += 1
        finally:
            shutil.rmtree(cache_root, ignore_errors=True)
    return pair


def breakdown(adapter: BenchAdapter, base_url: str, work: Path, repeats: int = 3) -> dict:
    """Medians (ms) of the parts a cold download adds to a raw GET, each timed on its own: the hub's
    resolve, plain and with presigned URLs (``direct=1``, what the client asks), one 302 from the
    download endpoint (what a client without direct URLs pays per file), sha256 of the weights (from
    the page cache; the client overlaps it with the transfer), and writing + fsync of a copy."""
    import hashlib

    times: dict = {"resolve_ms": [], "direct_resolve_ms": [], "redirect_ms": [], "sha256_ms": [], "write_fsync_ms": []}
    data = adapter.weights_path.read_bytes()
    for i in range(repeats):
        started = time.perf_counter()
        requests.get(f"{base_url}/api/v1/resolve", params={"id": adapter.identifier}, timeout=30).raise_for_status()
        times["resolve_ms"].append(time.perf_counter() - started)
        started = time.perf_counter()
        answer = requests.get(f"{base_url}/api/v1/resolve", params={"id": adapter.identifier, "direct": "1"},
                              timeout=30)
        answer.raise_for_status()
        times["direct_resolve_ms"].append(time.perf_counter() - started)
        if not all(f.get("direct_url") for f in answer.json()["files"]):
            raise RuntimeError("the hub gave no presigned URLs with direct=1 on its S3 store")
        started = time.perf_counter()
        object_url(base_url, adapter.file_ids[WEIGHTS])
        times["redirect_ms"].append(time.perf_counter() - started)
        started = time.perf_counter()
        hasher = hashlib.sha256()
        for at in range(0, len(data), CHUNK):
            hasher.update(data[at:at + CHUNK])
        times["sha256_ms"].append(time.perf_counter() - started)
        target = work / f"fsync-{i}.bin"
        started = time.perf_counter()
        with open(target, "wb") as out:
            for at in range(0, len(data), CHUNK):
                out.write(data[at:at + CHUNK])
            out.flush()
            os.fsync(out.fileno())
        times["write_fsync_ms"].append(time.perf_counter() - started)
        target.unlink()
    return {key: statistics.median(values) * 1000 for key, values in times.items()}


# --- loads ----------------------------------------------------------------------------------

@contextmanager
def offline_cache(cache_root: Path):
    """ADAPTERS_OFFLINE=1 and ADAPTERS_CACHE=cache_root for the block (the previous values restored)."""
    saved = {k: os.environ.get(k) for k in ("ADAPTERS_OFFLINE", "ADAPTERS_CACHE")}
    os.environ.update({"ADAPTERS_OFFLINE": "1", "ADAPTERS_CACHE": str(cache_root)})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def warm_load(model, identifier: str) -> tuple[float, str]:
    """(seconds, adapter name): ``model.load_adapter(identifier)`` served by the offline cache."""
    started = time.perf_counter()
    name = model.load_adapter(identifier)
    return time.perf_counter() - started, name


def plain_load(model, path: Path, name: str) -> float:
    """Seconds: ``safetensors.torch.load_file`` + ``add_adapter`` + copying the tensors into its parameters."""
    import torch
    from safetensors.torch import load_file

    started = time.perf_counter()
    state = load_file(str(path))
    model.add_adapter(name, ADAPTER_CONFIG)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, tensor in state.items():
            params[key].copy_(tensor)
    return time.perf_counter() - started


def _holds(model, name: str, reference: dict) -> bool:
    """The model's adapter ``name`` has exactly the reference tensors."""
    import torch

    params = {k: v for k, v in model.named_parameters() if f".adapters.{name}." in k}
    return set(params) == set(reference) and all(torch.equal(params[k], reference[k]) for k in reference)


def load_rounds(model, adapter: BenchAdapter, cache_root: Path, rounds: int, deadline: Deadline) -> Pair:
    """plain, warm, plain, warm, ..., plain; the adapter is deleted after every round.

    One untimed round of each first (imports, allocator warm-up). ``baseline``/``measured`` are seconds."""
    from safetensors.torch import load_file

    from adapters_client.cache import find_cached
    from adapters_client.identifiers import AdapterId

    pair = Pair()
    reference = load_file(str(adapter.weights_path))
    with offline_cache(cache_root):
        _, folder = find_cached(cache_root, AdapterId.parse(adapter.identifier))
        path = folder / WEIGHTS  # the cached file itself: both sides read the same bytes from the page cache
        name = warm_load(model, adapter.identifier)[1]
        model.delete_adapter(name)
        plain_load(model, path, name)
        model.delete_adapter(name)
        for i in range(rounds + 1):
            deadline.check(f"plain load round {i + 1} of {adapter.size_mb} MB")
            pair.baseline.append(plain_load(model, path, name))
            pair.baseline_bytes.append(path.stat().st_size)
            ok = _holds(model, name, reference)
            model.delete_adapter(name)
            if not ok:
                raise RuntimeError("the plain load did not reproduce the saved tensors")
            if i == rounds:
                break
            deadline.check(f"warm load round {i + 1} of {adapter.size_mb} MB")
            seconds, loaded = warm_load(model, adapter.identifier)
            pair.measured.append(seconds)
            pair.measured_bytes.append(path.stat().st_size)
            if loaded == name and _holds(model, name, reference):
                pair.checked += 1
            model.delete_adapter(loaded)
    return pair
