"""Helpers for the upload, storage and download tests: people, adapter folders, multipart bodies."""

from __future__ import annotations

import json
import os
import struct
import uuid
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from safetensors.numpy import save as save_safetensors

from registry.choices import Role
from registry.models import AdapterVersion, Membership, Organisation, Subtask, Task, VersionFile
from registry.tokens import create_token

UPLOAD_URL = "/api/v1/adapters/upload"
IDENTIFIER = "sentiment/sst-2@ukp"
HIDDEN = 32

# adapter_config.json exactly as adapters 1.3.0 writes it for config="seq_bn" on a tiny BERT.
SEQ_BN_CONFIG = {
    "adapter_residual_before_ln": False, "cross_adapter": False, "dropout": 0.0, "factorized_phm_W": True,
    "factorized_phm_rule": False, "hypercomplex_nonlinearity": "glorot-uniform", "init_weights": "bert",
    "init_weights_seed": None, "inv_adapter": None, "inv_adapter_reduction_factor": None, "is_parallel": False,
    "learn_phm": True, "leave_out": [], "ln_after": False, "ln_before": False, "mh_adapter": False,
    "non_linearity": "relu", "original_ln_after": True, "original_ln_before": True, "output_adapter": True,
    "phm_bias": True, "phm_c_init": "normal", "phm_dim": 4, "phm_init_range": 0.0001, "phm_layer": False,
    "phm_rank": 1, "reduction_factor": 16, "residual_before_ln": True, "scaling": 1.0, "shared_W_phm": False,
    "shared_phm_rule": True, "stochastic_depth": 0.0, "use_gating": False,
}


def adapter_config(**overrides) -> dict:
    data = {
        "config": dict(SEQ_BN_CONFIG), "hidden_size": HIDDEN, "model_class": "BertAdapterModel",
        "model_name": "", "model_type": "bert", "name": "sst-2", "version": "adapters.1.3.0",
    }
    data.update(overrides)
    return data


def adapter_weights(seed: int = 0) -> bytes:
    """A seq_bn adapter's weights for a 2-layer BERT with hidden size 32 (reduction 16)."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for layer in range(2):
        prefix = f"bert.encoder.layer.{layer}.output.adapters.sst-2"
        tensors[f"{prefix}.adapter_down.0.weight"] = rng.standard_normal((2, HIDDEN), dtype=np.float32)
        tensors[f"{prefix}.adapter_down.0.bias"] = np.zeros(2, dtype=np.float32)
        tensors[f"{prefix}.adapter_up.weight"] = rng.standard_normal((HIDDEN, 2), dtype=np.float32)
        tensors[f"{prefix}.adapter_up.bias"] = np.zeros(HIDDEN, dtype=np.float32)
    return save_safetensors(tensors)


def adapter_files(seed: int = 0, **extra: bytes) -> dict[str, bytes]:
    """A valid adapter folder as {file name: bytes}; ``extra`` adds or replaces files."""
    files = {
        "adapter_config.json": json.dumps(adapter_config(), indent=2).encode(),
        "adapter.safetensors": adapter_weights(seed),
    }
    files.update(extra)
    return files


def head_files() -> dict[str, bytes]:
    """head_config.json and model_head.safetensors as adapters 1.3.0 writes a 2-label classification head."""
    config = {
        "config": {"activation_function": "tanh", "bias": True, "dropout_prob": None, "head_type": "classification",
                   "label2id": {"LABEL_0": 0, "LABEL_1": 1}, "layers": 2, "num_labels": 2, "use_pooler": False},
        "hidden_size": HIDDEN, "model_class": "BertAdapterModel", "model_name": "", "model_type": "bert",
        "name": "sst-2", "version": "adapters.1.3.0",
    }
    weights = {
        "heads.sst-2.1.weight": np.zeros((HIDDEN, HIDDEN), dtype=np.float32),
        "heads.sst-2.1.bias": np.zeros(HIDDEN, dtype=np.float32),
        "heads.sst-2.4.weight": np.zeros((2, HIDDEN), dtype=np.float32),
        "heads.sst-2.4.bias": np.zeros(2, dtype=np.float32),
    }
    return {"head_config.json": json.dumps(config).encode(), "model_head.safetensors": save_safetensors(weights)}


def raw_safetensors(header, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file built by hand: ``header`` (dict or raw bytes), then ``data``."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def multipart(fields: dict, files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """Encode a multipart body by hand, so that file names reach the server unaltered."""
    boundary = "----hubtest" + uuid.uuid4().hex
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    for name, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        )
        parts.append(head.encode("utf-8", "surrogatepass") + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def post_upload(client, files, token: str | None = None, headers: dict | None = None, **fields):
    """POST an upload; ``files`` is a {name: bytes} dict or a list of (name, bytes) pairs."""
    form = {"identifier": IDENTIFIER, "model_name": "bert-base-uncased", "version": "1"}
    form.update({k: v for k, v in fields.items() if v is not None})
    pairs = list(files.items()) if isinstance(files, dict) else list(files)
    body, content_type = multipart(form, pairs)
    extra = dict(headers or {})
    if token:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.generic("POST", UPLOAD_URL, body, content_type=content_type, **extra)


def make_user(username: str = "alice"):
    return get_user_model().objects.create_user(username=username, password="pw-" + username)


def make_org(slug: str = "ukp", members: dict | None = None) -> Organisation:
    org = Organisation.objects.create(slug=slug, name=slug.upper())
    for user, role in (members or {}).items():
        Membership.objects.create(organisation=org, user=user, role=role)
    return org


def make_subtask(task: str = "sentiment", subtask: str = "sst-2") -> Subtask:
    t, _ = Task.objects.get_or_create(slug=task, defaults={"name": task.title()})
    return Subtask.objects.create(task=t, slug=subtask, name=subtask.upper())


def maintainer_setup(role=Role.MAINTAINER, **token_kwargs):
    """A user with ``role`` in 'ukp', the subtask sentiment/sst-2, and an upload token for them."""
    from registry.choices import TokenScope

    user = make_user()
    org = make_org(members={user: role})
    make_subtask()
    token_kwargs.setdefault("scope", TokenScope.UPLOAD)
    _, raw = create_token(user, **token_kwargs)
    return user, org, raw


def files_under(root) -> list[str]:
    root = Path(root)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def hub_dirs(settings, tmp_path):
    """A private filesystem weights store and upload temp dir for one test."""
    weights = tmp_path / "weights"
    upload_tmp = tmp_path / "upload-tmp"
    upload_tmp.mkdir()
    settings.STORAGES = {
        **settings.STORAGES,
        "weights": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(weights)}},
    }
    settings.HUB_UPLOAD_TMP_DIR = str(upload_tmp)
    settings.FILE_UPLOAD_TEMP_DIR = str(upload_tmp)
    return {"weights": weights, "tmp": upload_tmp}


def assert_nothing_left(dirs, s3_objects=None) -> None:
    """No version row, no file row, no stored object, no temporary file."""
    assert AdapterVersion.objects.count() == 0
    assert VersionFile.objects.count() == 0
    assert files_under(dirs["weights"]) == []
    assert os.listdir(dirs["tmp"]) == []
    if s3_objects is not None:
        assert s3_objects() == []


def s3_storage_settings(endpoint_url: str, bucket: str, **options) -> dict:
    """settings.STORAGES["weights"] for django-storages' S3 backend against ``endpoint_url``."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket, "endpoint_url": endpoint_url, "access_key": "test", "secret_key": "test",
            "region_name": "us-east-1", "querystring_auth": True, "querystring_expire": 60,
            "file_overwrite": True, "default_acl": None, "addressing_style": "path", "signature_version": "s3v4",
            **options,
        },
    }


@pytest.fixture
def s3_weights(settings, s3_server, hub_dirs):
    """The weights alias on the moto S3 server (over HTTP), in a fresh bucket; yields a lister."""
    bucket = "weights-" + uuid.uuid4().hex[:12]
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {**settings.STORAGES, "weights": s3_storage_settings(s3_server.endpoint_url, bucket)}

    def objects() -> list[str]:
        listing = client.list_objects_v2(Bucket=bucket)
        return sorted(o["Key"] for o in listing.get("Contents", []))

    return {"bucket": bucket, "client": client, "objects": objects, **hub_dirs}
