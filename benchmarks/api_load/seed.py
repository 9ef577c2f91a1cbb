"""Seed N public adapters (each with a valid version and two files) with bulk inserts."""

from __future__ import annotations

import hashlib
import random

WORDS = (
    "sentiment movie review product tweet emotion sarcasm topic news legal medical biomedical finance "
    "question answering entailment paraphrase similarity grammar commonsense multilingual german french "
    "spanish chinese arabic hindi dialogue summarisation translation toxicity hate speech stance irony"
).split()
BACKBONES = [("bert-base-uncased", "bert"), ("roberta-base", "roberta"), ("distilbert-base-uncased", "distilbert"),
             ("xlm-roberta-base", "xlm-roberta"), ("gpt2", "gpt2")]
METHODS = ["seq_bn", "lora", "double_seq_bn", "par_bn", "ia3", "prefix_tuning"]


def seed(n_adapters: int, seed_value: int = 0) -> list[str]:
    """Create the data; returns the identifiers (task/subtask@org) that resolve to one adapter."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from registry.models import Adapter, AdapterVersion, Organisation, Subtask, Task, VersionFile

    rng = random.Random(seed_value)
    with transaction.atomic():
        user = get_user_model().objects.create(username="bench")
        orgs = Organisation.objects.bulk_create([Organisation(slug=f"org-{i}") for i in range(200)])
        tasks = Task.objects.bulk_create([Task(slug=f"task-{i}", name=f"Task {i}") for i in range(20)])
        subtasks = Subtask.objects.bulk_create(
            [Subtask(task=t, slug=f"sub-{j}", name=f"{t.slug} sub {j}") for t in tasks for j in range(10)]
        )
        adapters, idents, seen = [], [], set()
        while len(adapters) < n_adapters:
            org, sub = rng.choice(orgs), rng.choice(subtasks)
            model_name, model_type = rng.choice(BACKBONES)
            method = rng.choice(METHODS)
            key = (org.pk, sub.pk, model_name, method)
            if key in seen:
                continue
            seen.add(key)
            idents.append(f"{sub.task.slug}/{sub.slug}@{org.slug}")
            words = " ".join(rng.sample(WORDS, 8))
            adapters.append(Adapter(
                organisation=org, task_id=sub.task_id, subtask=sub, model_name=model_name, model_type=model_type,
                method=method, config={"architecture": method}, config_hash=hashlib.sha1(method.encode()).hexdigest()[:16],
                description=f"An adapter for {words}.", license="apache-2.0",
                download_count=rng.randint(0, 100000), created_by=user,
            ))
        adapters = Adapter.objects.bulk_create(adapters, batch_size=2000)
        versions = AdapterVersion.objects.bulk_create([
            AdapterVersion(adapter=a, version="1", status="valid", digest=hashlib.sha256(str(a.pk).encode()).hexdigest(),
                           uploaded_by=user, claimed_score=rng.random(), verified_score=rng.random())
            for a in adapters
        ], batch_size=2000)
        files = []
        for v in versions:
            for name, size in (("adapter_config.json", 900), ("adapter.safetensors", 1_200_000)):
                digest = hashlib.sha256(f"{v.pk}/{name}".encode()).hexdigest()
                files.append(VersionFile(version=v, name=name, size=size, sha256=digest,
                                         storage_key=f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"))
        VersionFile.objects.bulk_create(files, batch_size=5000)
    by_ident: dict[str, int] = {}
    for ident in idents:
        by_ident[ident] = by_ident.get(ident, 0) + 1
    return [ident for ident, count in by_ident.items() if count == 1]

