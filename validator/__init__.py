"""Validation workers (Celery) and the offline validation command. Built in a later issue."""
