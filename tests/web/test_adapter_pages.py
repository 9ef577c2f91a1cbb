"""Adapter and version pages, owners' actions, private adapters, Markdown safety, try-it."""

from __future__ import annotations

from html import unescape

import pytest
from django.test import Client

from registry.choices import TRY_ADAPTER_TASK
from registry.models import Adapter, AdapterVersion
from registry.web import trying

from .seed import PASSWORD, XSS, add_version

pytestmark = pytest.mark.django_db


def ok(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_adapter_page_shows_usage_facts_versions_and_report(client, catalogue):
    adapter = catalogue["adapters"][1]  # demo LoRA on MiniLM
    html = ok(client.get(f"/adapters/{adapter.pk}/"))
    text = unescape(html)
    assert ('adapters_client.load(\n    "sentiment/rotten-tomatoes@demo",\n'
            '    model_name="sentence-transformers/all-MiniLM-L6-v2",\n)') in text
    assert "adapters-client download sentiment/rotten-tomatoes@demo \\\n    --model-name sentence-transformers" in text
    assert 'data-copy-target="identifier"' in html and 'data-copy-target="snippet-python"' in html
    assert "73.7k" in html and "288.0 KB" in html  # parameters from the report; adapter.safetensors + config
    assert html.count('<a href="/adapters/%d/versions/' % adapter.pk) == 2
    assert "badge-valid" in html and "0.772" in html and "reduction_factor" in html
    assert "Backbone fingerprint" in html and "c9745ed1d9f2" in html and "max abs change" in html
    assert "<p>LoRA (rank 8) on the attention" in html
    first = ok(client.get(f"/adapters/{catalogue['adapters'][0].pk}/"))
    assert "<strong>movie review sentiment</strong>" in first  # Markdown rendered


def test_adapter_page_query_count_is_bounded(client, catalogue, django_assert_max_num_queries):
    adapter = catalogue["adapters"][0]
    for i in range(3, 12):
        add_version(adapter, str(i), score=0.5)
    with django_assert_max_num_queries(6):
        ok(client.get(f"/adapters/{adapter.pk}/"))


def test_description_with_script_is_rendered_inert(client, catalogue):
    adapter = catalogue["adapters"][0]
    Adapter.objects.filter(pk=adapter.pk).update(description=XSS + "\n\n[click](javascript:alert(1))")
    html = ok(client.get(f"/adapters/{adapter.pk}/"))
    assert "<script>window" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned" in html and "&lt;img src=x" in html and 'href="javascript:' not in html


def test_private_adapter_is_404_for_outsiders_and_visible_to_members(client, catalogue):
    hidden = catalogue["private"]
    base = f"/adapters/{hidden.pk}"
    for url in (f"{base}/", f"{base}/versions/1/", f"{base}/versions/1/status.json"):
        assert client.get(url).status_code == 404
    client.login(username="oscar", password=PASSWORD)
    assert client.get(f"{base}/").status_code == 404
    assert client.post(f"{base}/versions/1/yank/").status_code == 404  # no hint that it exists
    assert client.post(f"{base}/try/", {"text": "hi"}).status_code == 404
    member = Client()
    member.login(username="sam", password=PASSWORD)
    assert "secret-bert" in ok(member.get(f"/adapters/{hidden.pk}/"))


def test_version_page_polls_until_final(client, catalogue):
    adapter = catalogue["adapters"][0]
    add_version(adapter, "3", status="pending", score=None)
    html = ok(client.get(f"/adapters/{adapter.pk}/versions/3/"))
    assert 'data-final="false"' in html and "badge-pending" in html
    status = client.get(f"/adapters/{adapter.pk}/versions/3/status.json").json()
    assert status == {"status": "pending", "yanked": False, "error_code": "", "final": False}
    AdapterVersion.objects.filter(adapter=adapter, version="3").update(status="rejected", error_code="shape_mismatch")
    assert client.get(f"/adapters/{adapter.pk}/versions/3/status.json").json()["final"] is True
    assert 'data-final="true"' in ok(client.get(f"/adapters/{adapter.pk}/versions/3/"))


def test_owner_yanks_and_sets_default_and_edits_description(client, catalogue):
    adapter = catalogue["adapters"][0]
    client.login(username="olivia", password=PASSWORD)
    assert client.post(f"/adapters/{adapter.pk}/versions/2/yank/", {"reason": "bad"}).status_code == 302
    assert AdapterVersion.objects.get(adapter=adapter, version="2").yanked
    html = ok(client.get(f"/adapters/{adapter.pk}/"))
    assert "badge-yanked" in html and "Unyank" in html
    assert client.post(f"/adapters/{adapter.pk}/default/", {"version": "1"}).status_code == 302
    assert Adapter.objects.get(pk=adapter.pk).default_version.version == "1"
    client.post(f"/adapters/{adapter.pk}/default/", {"version": "2"})  # yanked: refused with a message
    assert Adapter.objects.get(pk=adapter.pk).default_version.version == "1"
    response = client.post(f"/adapters/{adapter.pk}/edit/", {"description": "# New text"})
    assert response.status_code == 302
    assert "<h1>New text</h1>" in ok(client.get(f"/adapters/{adapter.pk}/"))


def test_non_owners_cannot_change_an_adapter(client, catalogue):
    adapter = catalogue["adapters"][0]
    assert client.post(f"/adapters/{adapter.pk}/versions/2/yank/").status_code == 302  # to sign in
    client.login(username="oscar", password=PASSWORD)
    assert client.post(f"/adapters/{adapter.pk}/versions/2/yank/").status_code == 403
    assert client.post(f"/adapters/{adapter.pk}/edit/", {"description": "x"}).status_code == 403
    assert "Yank" not in ok(client.get(f"/adapters/{adapter.pk}/"))
    assert not AdapterVersion.objects.get(adapter=adapter, version="2").yanked


def test_csrf_token_is_required_for_form_posts(catalogue):
    strict = Client(enforce_csrf_checks=True)
    strict.login(username="olivia", password=PASSWORD)
    adapter = catalogue["adapters"][0]
    response = strict.post(f"/adapters/{adapter.pk}/versions/2/yank/")
    assert response.status_code == 403 and b"CSRF" in response.content
    assert not AdapterVersion.objects.get(adapter=adapter, version="2").yanked


def test_try_it_sends_the_task_by_name_and_shows_labels(client, catalogue, monkeypatch):
    adapter = catalogue["adapters"][0]
    sent = {}

    class Pending:
        def get(self, timeout, disable_sync_subtasks):
            sent["timeout"] = timeout
            return {"labels": [{"label": "neg", "score": 0.1}, {"label": "pos", "score": 0.9}]}

    def send_task(name, args, retry):
        sent.update(name=name, args=args)
        return Pending()

    monkeypatch.setattr(trying.current_app, "send_task", send_task)
    assert 'action="/adapters/%d/try/"' % adapter.pk in ok(client.get(f"/adapters/{adapter.pk}/"))
    html = ok(client.post(f"/adapters/{adapter.pk}/try/", {"text": "A wonderful film."}))
    version = AdapterVersion.objects.get(adapter=adapter, version="2")
    assert sent["name"] == TRY_ADAPTER_TASK and sent["args"] == [version.pk, "A wonderful film."]
    assert html.index(">pos<") < html.index(">neg<") and "0.900" in html


def test_try_it_without_a_worker_says_so(client, catalogue, monkeypatch, settings):
    settings.HUB_TRY_TIMEOUT = 0.5

    class Silent:
        def get(self, timeout, disable_sync_subtasks):
            raise TimeoutError("no answer")

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: Silent())
    response = client.post(f"/adapters/{catalogue['adapters'][0].pk}/try/", {"text": "hello"})
    assert response.status_code == 503 and b"no validation worker answered" in response.content


def test_try_it_bounds_input_and_rate(client, catalogue, monkeypatch, settings):
    settings.HUB_TRY_RATE_PER_MINUTE = 2

    class Answer:
        def get(self, timeout, disable_sync_subtasks):
            return {"labels": [{"label": "pos", "score": 1.0}]}

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: Answer())
    url = f"/adapters/{catalogue['adapters'][0].pk}/try/"
    assert client.post(url, {"text": "x" * 501}).status_code == 400
    assert [client.post(url, {"text": "ok"}).status_code for _ in range(3)] == [200, 200, 429]


def test_try_it_refuses_adapters_without_a_valid_classification_head(client, catalogue):
    adapter = catalogue["adapters"][0]
    AdapterVersion.objects.filter(adapter=adapter).update(validation_report={})
    assert "Try it" not in ok(client.get(f"/adapters/{adapter.pk}/"))
    assert client.post(f"/adapters/{adapter.pk}/try/", {"text": "hi"}).status_code == 400


def _set_head_type(adapter, head_type: str) -> None:
    for version in AdapterVersion.objects.filter(adapter=adapter):
        report = dict(version.validation_report or {})
        report["adapter"] = {**(report.get("adapter") or {}), "head_type": head_type}
        AdapterVersion.objects.filter(pk=version.pk).update(validation_report=report)


@pytest.mark.parametrize("head_type", ["causal_lm", "seq2seq_lm"])
def test_try_it_shows_generated_text_of_lm_heads(client, catalogue, monkeypatch, head_type):
    adapter = catalogue["adapters"][0]
    _set_head_type(adapter, head_type)

    class Answer:
        def get(self, timeout, disable_sync_subtasks):
            return {"generated_text": " and then <script>alert(1)</script> the end"}

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: Answer())
    assert "Try it" in ok(client.get(f"/adapters/{adapter.pk}/"))
    html = ok(client.post(f"/adapters/{adapter.pk}/try/", {"text": "Once upon a time"}))
    shown = html[html.index('id="try-generated"'):]
    assert "and then &lt;script&gt;alert(1)&lt;/script&gt; the end</pre>" in shown and "<script>alert" not in html
    assert 'id="try-labels"' not in html


def test_try_it_shows_the_workers_refusal(client, catalogue, monkeypatch):
    class Refusal:
        def get(self, timeout, disable_sync_subtasks):
            return {"error": "the try-it box cannot run this adapter's head: no pipeline runs a masked_lm head"}

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: Refusal())
    response = client.post(f"/adapters/{catalogue['adapters'][0].pk}/try/", {"text": "hello"})
    assert response.status_code == 422 and b"no pipeline runs a masked_lm head" in response.content
    assert b"Traceback" not in response.content


def test_try_it_is_not_offered_for_heads_it_cannot_run(client, catalogue, monkeypatch):
    adapter = catalogue["adapters"][0]
    _set_head_type(adapter, "question_answering")
    monkeypatch.setattr(trying.current_app, "send_task", lambda *a, **k: pytest.fail("no task for this head"))
    assert "Try it" not in ok(client.get(f"/adapters/{adapter.pk}/"))
    response = client.post(f"/adapters/{adapter.pk}/try/", {"text": "hi"})
    assert response.status_code == 400 and b"cannot be tried here" in response.content


def test_readme_of_the_current_version_is_rendered_safely(client, catalogue, hub_dirs):
    import hashlib
    import tempfile

    from registry.models import VersionFile
    from registry.storage import put_file

    text = b"# Usage\n\nWorks on *movie reviews*.\n\n<script>alert(1)</script>"
    digest = hashlib.sha256(text).hexdigest()
    with tempfile.NamedTemporaryFile() as fh:
        fh.write(text)
        fh.flush()
        key, _ = put_file(fh.name, digest)
    adapter = catalogue["adapters"][0]
    version = AdapterVersion.objects.get(adapter=adapter, version="2")
    VersionFile.objects.create(version=version, name="README.md", size=len(text), sha256=digest, storage_key=key)
    html = ok(client.get(f"/adapters/{adapter.pk}/"))
    readme = html[html.index('id="readme"'):]
    assert "<h1>Usage</h1>" in readme and "<em>movie reviews</em>" in readme
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in readme


def test_try_it_without_a_result_backend_says_it_is_not_enabled(client, catalogue, monkeypatch):
    class NoBackend:  # what celery's DisabledBackend does on .get()
        def get(self, timeout, disable_sync_subtasks):
            raise NotImplementedError("No result backend is configured.")

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: NoBackend())
    response = client.post(f"/adapters/{catalogue['adapters'][0].pk}/try/", {"text": "hello"})
    assert response.status_code == 503 and b"not enabled on this hub" in response.content


@pytest.mark.parametrize("head_type, call", [("classification", 'classify = adapters_client.pipeline(model)'),
                                             ("tagging", 'tag = adapters_client.pipeline(model)'),
                                             ("causal_lm", 'generate = adapters_client.pipeline(model)'),
                                             ("question_answering", None)])
def test_the_snippet_runs_the_pipeline_of_the_head_type(client, catalogue, head_type, call):
    """The adapter and version pages show how to run the adapter's head on a text when a pipeline exists for it
    (adapters_client.pipelines), and only the load otherwise."""
    adapter = catalogue["adapters"][0]
    _set_head_type(adapter, head_type)
    version = AdapterVersion.objects.filter(adapter=adapter).first()
    for page in (f"/adapters/{adapter.pk}/", f"/adapters/{adapter.pk}/versions/{version.version}/"):
        text = unescape(ok(client.get(page)))
        assert f'model = adapters_client.load(\n    "{adapter.identifier}",' in text
        if call is None:
            assert "adapters_client.pipeline(" not in text
        else:
            assert f',\n)\n{call}\n' in text
