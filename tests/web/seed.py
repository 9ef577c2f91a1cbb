"""A small, realistic catalogue for the web tests, the browser tests and the screenshots."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from registry.choices import Role, VersionStatus, Visibility
from registry.models import Adapter, AdapterVersion, Membership, Organisation, Subtask, Task, VersionFile

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
PASSWORD = "correct-horse-battery-42"
XSS = '<script>window.__pwned = true;</script><img src=x onerror="window.__pwned = true">'

# (org, subtask, backbone, method, verified score, parameters, downloads, description)
CATALOGUE = [
    ("demo", "rotten-tomatoes", MINILM, "seq_bn", 0.781, 148_736, 5400,
     "A bottleneck adapter for **movie review sentiment** (positive / negative), trained on Rotten Tomatoes."),
    ("demo", "rotten-tomatoes", MINILM, "lora", 0.772, 73_728, 2100,
     "LoRA (rank 8) on the attention of MiniLM for movie review sentiment."),
    ("ukp", "rotten-tomatoes", "bert-base-uncased", "seq_bn", 0.853, 894_528, 3900,
     "Pfeiffer-style bottleneck adapter on BERT base for movie reviews."),
    ("ukp", "rotten-tomatoes", "roberta-base", "prefix_tuning", 0.861, 9_912_384, 800,
     "Prefix tuning on RoBERTa base: sentiment of short movie reviews."),
    ("ukp", "rotten-tomatoes", "bert-base-uncased", "ia3", 0.832, 64_512, 450,
     "IA3: three learned vectors per layer, the smallest adapter here."),
    ("ukp", "sst-2", "bert-base-uncased", "seq_bn", 0.921, 894_528, 12000,
     "Sentiment on the Stanford Sentiment Treebank (binary)."),
    ("demo", "imdb", MINILM, "seq_bn", 0.842, 148_736, 700, "Long movie reviews from IMDb."),
]


def report(parameters: int, backbone: str, verdict: str = "valid") -> dict:
    """A validation report shaped like validator.report.Report.to_dict()."""
    checks = [
        {"name": "files", "outcome": "passed", "code": "", "seconds": 0.002, "figures": {}},
        {"name": "backbone", "outcome": "passed", "code": "", "seconds": 0.41,
         "figures": {"cached": True, "probe": "tokenizer", "backbone_bytes": 90_868_376}},
        {"name": "weights", "outcome": "passed", "code": "", "seconds": 0.004,
         "figures": {"tensors": 24, "parameters": parameters}},
        {"name": "forward", "outcome": "passed", "code": "", "seconds": 0.05, "figures": {"max_abs_change": 0.173}},
        {"name": "head", "outcome": "passed", "code": "", "seconds": 0.01, "figures": {}},
    ]
    return {
        "format": 1, "verdict": verdict, "codes": [], "warnings": [], "seconds": 0.52, "memory_source": "rss",
        "adapter": {"name": "rotten-tomatoes", "method": "seq_bn", "head_type": "classification"},
        "backbone": {"model_name": backbone, "revision": "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
                     "config_sha256": hashlib.sha256(backbone.encode()).hexdigest(), "device": "cpu",
                     "dtype": "float32"},
        "checks": checks,
    }


def _subtask(task_slug: str, slug: str) -> Subtask:
    names = {"sentiment": "Sentiment analysis"}
    task, _ = Task.objects.get_or_create(slug=task_slug, defaults={"name": names.get(task_slug, task_slug)})
    sub, _ = Subtask.objects.get_or_create(task=task, slug=slug, defaults={
        "name": {"rotten-tomatoes": "Rotten Tomatoes", "sst-2": "SST-2", "imdb": "IMDb"}.get(slug, slug),
        "description": "Binary sentiment of movie reviews.", "metric_name": "accuracy",
        "dataset_url": "https://huggingface.co/datasets/rotten_tomatoes",
    })
    return sub


def add_version(adapter: Adapter, version: str, *, status=VersionStatus.VALID, score=None, parameters=150_000,
                age_days: int = 0) -> AdapterVersion:
    row = AdapterVersion.objects.create(
        adapter=adapter, version=version, status=status,
        digest=hashlib.sha256(f"{adapter.pk}{version}".encode()).hexdigest(),
        verified_score=score, claimed_score=round(score + 0.004, 4) if score is not None else None,
        validation_report=report(parameters, adapter.model_name) if status == VersionStatus.VALID else {},
        created_at=timezone.now() - timedelta(days=age_days),
    )
    for name, size in (("adapter_config.json", 1100), ("adapter.safetensors", parameters * 4)):
        digest = hashlib.sha256(f"{row.pk}{name}".encode()).hexdigest()
        VersionFile.objects.create(version=row, name=name, size=size, sha256=digest, storage_key=f"seed/{digest}")
    return row


def seed_catalogue() -> dict:
    """Users (owner 'olivia' of demo and ukp, outsider 'oscar'), the catalogue, one private adapter."""
    users = get_user_model().objects
    owner = users.create_user("olivia", "olivia@example.org", PASSWORD)
    outsider = users.create_user("oscar", "oscar@example.org", PASSWORD)
    orgs = {}
    for slug, name in (("demo", "Adapter Hub demo"), ("ukp", "UKP Lab"), ("secret", "Secret Lab")):
        orgs[slug] = Organisation.objects.create(slug=slug, name=name, description=f"{name} adapters.")
        Membership.objects.create(organisation=orgs[slug], user=owner, role=Role.OWNER)
    adapters = []
    for i, (org, sub, backbone, method, score, params, downloads, text) in enumerate(CATALOGUE):
        subtask = _subtask("sentiment", sub)
        adapter = Adapter.objects.create(
            organisation=orgs[org], task=subtask.task, subtask=subtask, model_name=backbone,
            model_type=backbone.split("/")[-1].split("-")[0], method=method,
            config={"architecture": method, "reduction_factor": 16}, config_hash=f"{i:016x}",
            description=text, license="apache-2.0", download_count=downloads,
            created_at=timezone.now() - timedelta(days=30 - i),
        )
        add_version(adapter, "1", score=round(score - 0.01, 4), parameters=params, age_days=20)
        add_version(adapter, "2", score=score, parameters=params, age_days=2)
        adapters.append(adapter)
    subtask = _subtask("sentiment", "rotten-tomatoes")
    hidden = Adapter.objects.create(
        organisation=orgs["secret"], task=subtask.task, subtask=subtask, model_name="secret-bert", model_type="bert",
        method="lora", config={"architecture": "lora"}, config_hash="f" * 16, description="hidden movie review model",
        visibility=Visibility.PRIVATE, license="proprietary", download_count=99999,
    )
    add_version(hidden, "1", score=0.99, parameters=1000)
    Membership.objects.filter(organisation=orgs["secret"], user=owner).delete()
    secret_member = users.create_user("sam", "sam@example.org", PASSWORD)
    Membership.objects.create(organisation=orgs["secret"], user=secret_member, role=Role.OWNER)
    return {"owner": owner, "outsider": outsider, "secret_member": secret_member, "orgs": orgs,
            "adapters": adapters, "private": hidden}
