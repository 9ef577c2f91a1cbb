"""The registry's data model: organisations, tasks, adapters, immutable versions, tokens."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from adapters_client.rules import SLUG_HELP, is_slug

from .choices import MetricDirection, Role, TokenScope, Visibility, VersionStatus

def slug_validator(value) -> None:
    """The identifier grammar (adapters_client.rules.is_slug): its pattern, and no '..' in a part."""
    if not is_slug(value):
        raise ValidationError(SLUG_HELP + ", without '..'", code="invalid", params={"value": value})


class Organisation(models.Model):
    slug = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    website = models.URLField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="organisations")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "user"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} ({self.role})"


class Task(models.Model):
    slug = models.CharField(max_length=64, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Subtask(models.Model):
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="subtasks")
    slug = models.CharField(max_length=64, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    dataset_url = models.URLField(blank=True)
    metric_name = models.CharField(max_length=64, blank=True)
    metric_direction = models.CharField(
        max_length=8, choices=MetricDirection.choices, default=MetricDirection.HIGHER
    )
    language = models.CharField(max_length=16, blank=True, default="en")
    # Held-out text/label pairs the validator scores every fitting version on ([{"text", "label"}, ...]);
    # set by staff (admin or ``manage.py evalsample``); ``evaluation_source`` says where they come from.
    evaluation_sample = models.JSONField(default=list, blank=True)
    evaluation_source = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["task__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["task", "slug"], name="unique_subtask_per_task")]

    @property
    def path(self) -> str:
        return f"{self.task.slug}/{self.slug}"

    def __str__(self) -> str:
        return self.path


class Backbone(models.Model):
    """An allow-listed backbone: a public ``model_name`` and where the validator loads it from.

    Rows extend (and override) ``HUB_VALIDATOR_BACKBONES`` from the settings; see validator/backbones.py
    for the meaning of each source.
    """

    class Source(models.TextChoices):
        FOLDER = "folder", "Local folder"
        HF_CACHE = "hf_cache", "Hugging Face cache (offline)"
        CONFIG_ONLY = "config_only", "Config only (random weights: shape checks)"

    model_name = models.CharField(max_length=200, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.FOLDER)
    path = models.CharField(max_length=1000, blank=True, help_text="folder, or config.json for config_only")
    revision = models.CharField(max_length=100, blank=True)
    repo_id = models.CharField(max_length=200, blank=True, help_text="hf_cache: when it differs from model_name")
    config = models.JSONField(null=True, blank=True, help_text="config_only: the model config")
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["model_name"]

    def as_entry(self) -> dict:
        """The allow-list entry validator.backbones.parse_entry reads."""
        entry = {"source": self.source}
        for key in ("path", "revision", "repo_id"):
            if getattr(self, key):
                entry[key] = getattr(self, key)
        if self.config is not None:
            entry["config"] = self.config
        return entry

    def __str__(self) -> str:
        return self.model_name


class Adapter(models.Model):
    """``task/subtask@org`` for one backbone and one method configuration."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="adapters")
    task = models.ForeignKey(Task, on_delete=models.PROTECT, related_name="adapters")
    subtask = models.ForeignKey(Subtask, on_delete=models.PROTECT, related_name="adapters")
    model_name = models.CharField(max_length=200, db_index=True)
    model_type = models.CharField(max_length=64)
    method = models.CharField(max_length=32, db_index=True)
    config = models.JSONField()
    config_hash = models.CharField(max_length=16, db_index=True)
    description = models.TextField(blank=True)
    license = models.CharField(max_length=64, blank=True)
    visibility = models.CharField(max_length=8, choices=Visibility.choices, default=Visibility.PUBLIC)
    # The adapter chosen when several match a subtask and backbone (CONTRACTS.md section 1).
    is_default = models.BooleanField(default=False)
    # Set by the owner; when empty the newest valid, non-yanked version is the default.
    default_version = models.ForeignKey(
        "AdapterVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    download_count = models.PositiveBigIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "subtask", "model_name", "config_hash"], name="unique_adapter_identity"
            ),
        ]
        indexes = [
            models.Index(fields=["subtask", "model_name"], name="adapter_subtask_backbone"),
            models.Index(fields=["-download_count"], name="adapter_downloads"),
        ]

    @property
    def identifier(self) -> str:
        return f"{self.task.slug}/{self.subtask.slug}@{self.organisation.slug}"

    def __str__(self) -> str:
        return f"{self.identifier} [{self.model_name}, {self.method}]"


class AdapterVersion(models.Model):
    """An immutable upload. Its files never change; status moves through CONTRACTS.md section 4."""

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64)
    status = models.CharField(
        max_length=12, choices=VersionStatus.choices, default=VersionStatus.PENDING, db_index=True
    )
    # sha256 over the sorted (name, sha256) list: identical re-uploads are recognised by it.
    digest = models.CharField(max_length=64)
    validation_report = models.JSONField(default=dict, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    claimed_score = models.FloatField(null=True, blank=True)
    verified_score = models.FloatField(null=True, blank=True)
    yanked = models.BooleanField(default=False)
    yank_reason = models.CharField(max_length=500, blank=True)
    description = models.TextField(blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    validated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["adapter", "version"], name="unique_version")]
        indexes = [models.Index(fields=["status", "status_changed_at"], name="version_status_age")]

    @property
    def is_resolvable_by_default(self) -> bool:
        return self.status == VersionStatus.VALID and not self.yanked

    @property
    def backbone_fingerprint(self) -> dict | None:
        """The backbone the validator checked this version on (from its report), or None."""
        backbone = (self.validation_report or {}).get("backbone")
        return backbone if isinstance(backbone, dict) else None

    def __str__(self) -> str:
        return f"{self.adapter.identifier}=={self.version}"


class VersionFile(models.Model):
    version = models.ForeignKey(AdapterVersion, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    storage_key = models.CharField(max_length=300)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["version", "name"], name="unique_file_per_version")]

    def __str__(self) -> str:
        return f"{self.version}:{self.name}"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class ApiToken(models.Model):
    """A bearer token. Only its sha256 is stored; the raw value is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    # Empty means "every organisation the user belongs to".
    organisations = models.ManyToManyField(Organisation, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user"], name="token_user", condition=Q(revoked_at__isnull=True))]

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def __str__(self) -> str:
        return f"{self.prefix}... ({self.user}, {self.scope})"
