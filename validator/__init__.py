"""Validation of adapter versions: the checks (``pipeline.validate_folder``, no ORM), the backbone allow-list
and cache (``backbones``, ``loading``), the report, the verified score and the offline command
``python -m validator``. See docs/validator.md.
"""
