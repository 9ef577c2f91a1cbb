"""Django admin for the registry. Versions are read-mostly: their files never change."""

from django.contrib import admin

from .models import (
    Adapter, AdapterVersion, ApiToken, Backbone, Membership, Organisation, Subtask, Task, VersionFile,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    inlines = [MembershipInline]


class SubtaskInline(admin.TabularInline):
    model = Subtask
    extra = 0


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["slug", "name"]
    search_fields = ["slug", "name"]
    inlines = [SubtaskInline]


@admin.register(Subtask)
class SubtaskAdmin(admin.ModelAdmin):
    list_display = ["__str__", "name", "metric_name", "metric_direction", "language", "sample_size"]
    list_filter = ["task"]
    search_fields = ["slug", "name", "task__slug"]
    fieldsets = [
        (None, {"fields": ["task", "slug", "name", "description", "dataset_url", "language"]}),
        ("Evaluation (verified scores)", {
            "fields": ["metric_name", "metric_direction", "evaluation_source", "evaluation_sample"],
            "description": 'Held-out pairs, a JSON list of {"text": ..., "label": ...} with labels as the '
                           "heads name them; or load a file with <code>manage.py evalsample</code>.",
        }),
    ]

    @admin.display(description="evaluation sample")
    def sample_size(self, obj) -> int:
        return len(obj.evaluation_sample or [])


@admin.register(Backbone)
class BackboneAdmin(admin.ModelAdmin):
    list_display = ["model_name", "source", "path", "revision", "enabled"]
    list_filter = ["source", "enabled"]
    search_fields = ["model_name", "path", "repo_id"]


class VersionInline(admin.TabularInline):
    model = AdapterVersion
    extra = 0
    fields = ["version", "status", "yanked", "created_at"]
    readonly_fields = fields
    show_change_link = True
    can_delete = False


@admin.register(Adapter)
class AdapterAdmin(admin.ModelAdmin):
    list_display = ["__str__", "visibility", "is_default", "download_count", "created_at"]
    list_filter = ["visibility", "is_default", "method", "task"]
    search_fields = ["organisation__slug", "task__slug", "subtask__slug", "model_name", "config_hash"]
    raw_id_fields = ["organisation", "task", "subtask", "default_version", "created_by"]
    readonly_fields = ["config_hash", "download_count", "created_at", "updated_at"]
    inlines = [VersionInline]


class FileInline(admin.TabularInline):
    model = VersionFile
    extra = 0
    readonly_fields = ["name", "size", "sha256", "storage_key"]
    can_delete = False


@admin.register(AdapterVersion)
class AdapterVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "status", "error_code", "yanked", "attempts", "created_at"]
    list_filter = ["status", "yanked"]
    search_fields = ["adapter__subtask__slug", "adapter__organisation__slug", "version", "digest"]
    raw_id_fields = ["adapter", "uploaded_by"]
    readonly_fields = ["digest", "validation_report", "attempts", "created_at", "updated_at", "validated_at"]
    inlines = [FileInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["prefix", "user", "name", "scope", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["scope"]
    search_fields = ["prefix", "user__username", "name"]
    readonly_fields = ["prefix", "key_hash", "created_at", "last_used_at"]
    raw_id_fields = ["user"]
