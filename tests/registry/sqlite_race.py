"""Run concurrent uploads against the embedded SQLite database (used by test_sqlite_concurrency).

Started in a subprocess with DJANGO_SETTINGS_MODULE=hubsite.settings.base and DATABASE_URL set
to a fresh SQLite file, so that the settings the embedded mode really uses are the ones tested.
Prints one JSON object: the HTTP statuses of each round.
"""

from __future__ import annotations

import json
import sys
import threading

import django


def _setup():
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from registry.choices import Role, TokenScope
    from registry.tokens import create_token

    from tests.registry.upload_helpers import make_org, make_subtask, make_user

    user = make_user("racer")
    make_org(members={user: Role.MAINTAINER})
    make_subtask()
    return create_token(user, scope=TokenScope.UPLOAD)[1]


def _race(token: str, versions: list[str], seed: int, model_name: str = "bert-base-uncased") -> list[int]:
    """Send one upload per entry of ``versions`` at the same moment; returns the statuses."""
    from django.db import connection
    from django.test import Client

    from tests.registry.upload_helpers import adapter_files, post_upload

    barrier = threading.Barrier(len(versions))
    statuses: list[int] = [0] * len(versions)

    def one(i: int) -> None:
        client = Client()
        files = adapter_files(seed=seed)
        barrier.wait()
        try:
            response = post_upload(client, files, token, version=versions[i], model_name=model_name)
            statuses[i] = response.status_code
            if response.status_code >= 300:
                print(response.content.decode()[:300], file=sys.stderr)
        finally:
            connection.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(versions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def main(rounds: int) -> None:
    django.setup()
    token = _setup()
    results = {"identical": [], "two_versions": []}
    for r in range(rounds):
        # Two identical uploads at once: one creates, the other finds it (201 + 200).
        results["identical"].append(sorted(_race(token, [f"same-{r}", f"same-{r}"], seed=r)))
        # Two versions of a new adapter (a new config each round) at once: both created.
        results["two_versions"].append(
            sorted(_race(token, [f"a-{r}", f"b-{r}"], seed=100 + r, model_name=f"bert-race-{r}"))
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]))
