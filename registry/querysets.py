"""Querysets shared by the read API: visibility and each adapter's current version."""

from __future__ import annotations

from django.db.models import BigIntegerField, Case, F, OuterRef, Q, QuerySet, Subquery, When
from django.db.models.functions import Coalesce

from .choices import VersionStatus
from .models import Adapter, AdapterVersion
from .permissions import visible_adapters_q

NEWEST_FIRST = ("-created_at", "-id")


def visible_adapters(user, auth=None) -> QuerySet:
    """Adapters ``user`` (narrowed by the token ``auth``) may see, without duplicate rows.

    The membership join of visible_adapters_q can repeat a row once per member, so signed-in
    callers get it through a primary-key subquery.
    """
    base = Adapter.objects.select_related("task", "subtask", "organisation")
    if getattr(user, "is_authenticated", False):
        return base.filter(pk__in=Adapter.objects.filter(visible_adapters_q(user, auth)).values("pk"))
    return base.filter(visible_adapters_q(user, auth))


def resolvable_versions() -> QuerySet:
    """Versions that take part in default resolution: valid and not yanked."""
    return AdapterVersion.objects.filter(status=VersionStatus.VALID, yanked=False)


def default_version(adapter: Adapter) -> AdapterVersion | None:
    """The owner's choice when it is still resolvable, else the newest valid, non-yanked version."""
    chosen = adapter.default_version
    if chosen is not None and chosen.is_resolvable_by_default:
        return chosen
    return resolvable_versions().filter(adapter=adapter).order_by(*NEWEST_FIRST).first()


def with_current_version(qs: QuerySet) -> QuerySet:
    """Annotate ``current_version_id``, ``current_version``, ``current_status`` and ``current_score``.

    The current version is the default version (see default_version) or, when the adapter has
    none yet, its newest version of any status (so a pending upload shows as pending).
    """
    newest_valid = resolvable_versions().filter(adapter=OuterRef("pk")).order_by(*NEWEST_FIRST).values("pk")[:1]
    newest_any = AdapterVersion.objects.filter(adapter=OuterRef("pk")).order_by(*NEWEST_FIRST).values("pk")[:1]
    chosen = Case(
        When(
            Q(default_version__status=VersionStatus.VALID, default_version__yanked=False),
            then=F("default_version_id"),
        ),
        default=None,
        output_field=BigIntegerField(),
    )
    qs = qs.annotate(current_version_id=Coalesce(
        chosen, Subquery(newest_valid), Subquery(newest_any), output_field=BigIntegerField()
    ))
    current = AdapterVersion.objects.filter(pk=OuterRef("current_version_id"))
    return qs.annotate(
        current_version=Subquery(current.values("version")[:1]),
        current_status=Subquery(current.values("status")[:1]),
        current_score=Subquery(current.values("verified_score")[:1]),
    )


def adapter_with_current(pk: int) -> Adapter:
    """One adapter with its relations and the annotations of with_current_version."""
    qs = Adapter.objects.filter(pk=pk).select_related("task", "subtask", "organisation", "default_version")
    return with_current_version(qs).get()
