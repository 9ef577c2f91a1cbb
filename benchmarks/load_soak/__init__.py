"""Load test and upload soak against a live hub (gunicorn, Postgres, Redis) on 127.0.0.1."""
