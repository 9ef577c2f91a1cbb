"""Enumerations shared by the models, the API and the validator."""

from django.db import models

# The Celery task that validates a version, sent by name so the registry never imports validator.
VALIDATE_VERSION_TASK = "validator.validate_version"
# Runs a valid adapter on a short text for the web page's "try it" box: args (version_id, text);
# returns {"labels": [{"label": str, "score": float}, ...]} (classification) or
# {"tokens": [{"token": str, "label": str, "score": float}, ...]} (tagging).
TRY_ADAPTER_TASK = "validator.try_adapter"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    MAINTAINER = "maintainer", "Maintainer"
    MEMBER = "member", "Member"


# Roles allowed to upload, yank, set defaults and delete.
WRITE_ROLES = (Role.OWNER, Role.MAINTAINER)


class Visibility(models.TextChoices):
    PUBLIC = "public", "Public"
    PRIVATE = "private", "Private"


class VersionStatus(models.TextChoices):
    """CONTRACTS.md section 4: pending -> validating -> valid | rejected | error."""

    PENDING = "pending", "Pending"
    VALIDATING = "validating", "Validating"
    VALID = "valid", "Valid"
    REJECTED = "rejected", "Rejected"
    ERROR = "error", "Error"


FINAL_STATUSES = (VersionStatus.VALID, VersionStatus.REJECTED, VersionStatus.ERROR)


class MetricDirection(models.TextChoices):
    HIGHER = "higher", "Higher is better"
    LOWER = "lower", "Lower is better"


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    UPLOAD = "upload", "Upload"
