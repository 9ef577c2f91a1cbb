"""Serializers of the read API, tokens, tasks and organisations."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from ..choices import TokenScope, VersionStatus
from ..models import Adapter, AdapterVersion, ApiToken, Organisation, Subtask, Task, VersionFile
from ..querysets import default_version


def download_url(request, file: VersionFile) -> str:
    path = f"/api/v1/files/{file.pk}/download"
    return request.build_absolute_uri(path) if request is not None else path


class FileSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = VersionFile
        fields = ["id", "name", "size", "sha256", "url"]

    def get_url(self, obj) -> str:
        return download_url(self.context.get("request"), obj)


def summarize(text: str) -> str:
    """The first settings.HUB_SUMMARY_CHARS characters of ``text``, cut at a word, with an ellipsis."""
    limit = settings.HUB_SUMMARY_CHARS
    text = text or ""
    flat = " ".join(text[: 4 * limit].split())  # whitespace collapsed; a bounded amount of work
    if len(flat) <= limit and len(text) <= 4 * limit:
        return flat
    cut = flat[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "\u2026"


class SummaryMixin(serializers.Serializer):
    summary = serializers.SerializerMethodField(
        help_text="the description's first characters; the full text is in the detail answer"
    )

    def get_summary(self, obj) -> str:
        return summarize(obj.description)


class VersionSerializer(SummaryMixin, serializers.ModelSerializer):
    """A version in a list (a summary of its description)."""

    claimed_above_verified = serializers.SerializerMethodField(
        help_text="the claimed score is more than HUB_CLAIMED_SCORE_TOLERANCE above the verified one")

    class Meta:
        model = AdapterVersion
        fields = [
            "version", "status", "error_code", "yanked", "yank_reason", "digest", "claimed_score",
            "verified_score", "claimed_above_verified", "summary", "created_at", "validated_at",
        ]

    def get_claimed_above_verified(self, obj) -> bool:
        return claimed_above_verified(obj)


class VersionDetailSerializer(VersionSerializer):
    """A version with its validation report: every check with its outcome, code and figures, the backbone
    fingerprint it was checked on (``backbone_fingerprint``), and the verified score's details."""

    files = FileSerializer(many=True, read_only=True)
    is_default = serializers.SerializerMethodField()
    backbone_fingerprint = serializers.SerializerMethodField()

    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "description", "is_default", "validation_report",
                  "backbone_fingerprint", "files"]

    def get_backbone_fingerprint(self, obj) -> dict | None:
        return obj.backbone_fingerprint

    def get_is_default(self, obj) -> bool:
        chosen = default_version(obj.adapter)
        return chosen is not None and chosen.pk == obj.pk


def claimed_above_verified(version) -> bool:
    claimed, verified = version.claimed_score, version.verified_score
    return claimed is not None and verified is not None and claimed > verified + settings.HUB_CLAIMED_SCORE_TOLERANCE


class AdapterSerializer(SummaryMixin, serializers.ModelSerializer):
    """An adapter in a list (a summary of its description); ``current_*`` describe its default version."""

    identifier = serializers.CharField(read_only=True)
    task = serializers.CharField(source="task.slug", read_only=True)
    subtask = serializers.CharField(source="subtask.slug", read_only=True)
    organisation = serializers.CharField(source="organisation.slug", read_only=True)
    current_version = serializers.CharField(read_only=True, allow_null=True)
    current_status = serializers.CharField(
        read_only=True, allow_null=True, help_text="pending, validating, valid, rejected or error"
    )
    current_score = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Adapter
        fields = [
            "id", "identifier", "task", "subtask", "organisation", "model_name", "model_type", "method",
            "config_hash", "summary", "license", "visibility", "is_default", "download_count",
            "current_version", "current_status", "current_score", "created_at", "updated_at",
        ]


class AdapterDetailSerializer(AdapterSerializer):
    default_version = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()

    class Meta(AdapterSerializer.Meta):
        fields = [*AdapterSerializer.Meta.fields, "description", "config", "default_version", "versions"]

    def get_default_version(self, obj) -> str | None:
        chosen = default_version(obj)
        return chosen.version if chosen else None

    def get_versions(self, obj) -> list[str]:
        return list(obj.versions.order_by("-created_at", "-id").values_list("version", flat=True)[:100])


class FacetValueSerializer(serializers.Serializer):
    value = serializers.CharField()
    count = serializers.IntegerField()


class FacetsSerializer(serializers.Serializer):
    task = FacetValueSerializer(many=True)
    method = FacetValueSerializer(many=True)
    model_name = FacetValueSerializer(many=True)


class AdapterPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = AdapterSerializer(many=True)
    facets = FacetsSerializer()


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="full-text query")
    task = serializers.CharField(required=False, allow_blank=True, max_length=64)
    subtask = serializers.CharField(required=False, allow_blank=True, max_length=64)
    org = serializers.CharField(required=False, allow_blank=True, max_length=64)
    model_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    method = serializers.CharField(required=False, allow_blank=True, max_length=32)
    status = serializers.ChoiceField(choices=VersionStatus.choices, required=False, allow_blank=True)
    sort = serializers.ChoiceField(
        choices=["relevance", "downloads", "newest", "score", "name"], required=False, allow_blank=True
    )
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100)


class ResolveQuerySerializer(serializers.Serializer):
    id = serializers.CharField(max_length=200, help_text="identifier: task/subtask[@org]")
    model_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    config = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="method name or alias, or a 16-hex config hash"
    )
    version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    direct = serializers.BooleanField(
        required=False, default=False,
        help_text="also answer each file's presigned object-store URL (direct_url) when the store signs URLs, "
                  "and count the download now; a client that fetches the files uses them instead of one "
                  "redirect per file",
    )


class ResolveFileSerializer(FileSerializer):
    direct_url = serializers.URLField(
        required=False, help_text="with direct=1 on an object store that signs URLs: a short-lived presigned URL "
                                  "of the object (fetch it without the hub's Authorization header)")

    class Meta(FileSerializer.Meta):
        fields = [*FileSerializer.Meta.fields, "direct_url"]


class ResolveSerializer(serializers.Serializer):
    identifier = serializers.CharField()
    adapter_id = serializers.IntegerField()
    model_name = serializers.CharField()
    model_type = serializers.CharField()
    method = serializers.CharField()
    config = serializers.JSONField()
    config_hash = serializers.CharField()
    version = serializers.CharField()
    status = serializers.CharField()
    yanked = serializers.BooleanField()
    digest = serializers.CharField()
    warning = serializers.CharField(allow_blank=True)
    backbone_fingerprint = serializers.JSONField(
        allow_null=True, help_text="the backbone the version was validated on (model name, revision, digests of "
                                   "its config and weights); the client warns when it applies it to another")
    files = ResolveFileSerializer(many=True)


class YankSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)


class DefaultVersionSerializer(serializers.Serializer):
    version = serializers.CharField(allow_null=True, max_length=64, help_text="null: back to the newest valid")


class SubtaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subtask
        fields = ["slug", "name", "description", "dataset_url", "metric_name", "metric_direction", "language"]


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = ["slug", "name", "description"]


class TaskDetailSerializer(TaskSerializer):
    subtasks = SubtaskSerializer(many=True, read_only=True)

    class Meta(TaskSerializer.Meta):
        fields = [*TaskSerializer.Meta.fields, "subtasks"]


class OrganisationSerializer(serializers.ModelSerializer):
    public_adapters = serializers.IntegerField(read_only=True)

    class Meta:
        model = Organisation
        fields = ["slug", "name", "description", "website", "created_at", "public_adapters"]


class TokenSerializer(serializers.ModelSerializer):
    organisations = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    expired = serializers.BooleanField(source="is_expired", read_only=True)
    revoked = serializers.BooleanField(source="is_revoked", read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id", "name", "prefix", "scope", "organisations", "created_at", "expires_at", "revoked_at",
            "last_used_at", "expired", "revoked",
        ]


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    scope = serializers.ChoiceField(choices=TokenScope.choices, default=TokenScope.READ)
    organisations = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list, max_length=50
    )
    expires_days = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=3650)


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="the raw token; shown only once")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
