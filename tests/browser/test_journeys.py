"""What a person does in the browser: search, filter, read, copy, compare, sign up, upload, try."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from registry.models import Adapter, AdapterVersion, ApiToken, hash_token
from registry.services import lifecycle
from registry.web import trying

from ..web.seed import XSS, report
from .conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)


def test_search_filter_open_adapter_copy_snippet_and_leaderboard(page, seeded, shoot):
    page.goto("/")
    shoot(page, "home")
    page.get_by_role("searchbox", name="Search adapters").fill("movie review sentiment")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/search/\?q=movie\+review\+sentiment"))
    expect(page.get_by_role("link", name="sentiment/rotten-tomatoes@demo").first).to_be_visible()
    page.locator('[data-facet="method"]', has_text="lora").click()
    expect(page).to_have_url(re.compile(r"method=lora"))
    expect(page.get_by_role("heading", name=re.compile(r"^1 adapter for"))).to_be_visible()
    page.goto("/search/?q=movie+review+sentiment")
    shoot(page, "search")
    page.get_by_role("link", name="sentiment/rotten-tomatoes@demo").first.click()
    expect(page.locator("#identifier")).to_have_text("sentiment/rotten-tomatoes@demo")
    copy = page.locator('[data-copy-target="snippet-python"]')
    copy.click()
    expect(copy).to_have_text("Copied!")
    clipboard = page.evaluate("navigator.clipboard.readText()")
    assert clipboard.startswith("import adapters_client") and "sentiment/rotten-tomatoes@demo" in clipboard
    shoot(page, "adapter")
    page.get_by_role("link", name="Leaderboard", exact=True).click()
    expect(page.get_by_role("heading", name="Score against trainable parameters")).to_be_visible()
    page.select_option("#bb", "")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table tbody tr")).to_have_count(5)
    expect(page.locator("svg.chart circle")).to_have_count(5)
    shoot(page, "leaderboard")
    page.goto("/explore/")
    shoot(page, "explore")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/")
    shoot(page, "home-mobile")
    assert page.js_errors == []


def test_sign_up_then_create_a_token(page, transactional_db, shoot):
    page.goto("/")
    page.get_by_role("link", name="Sign up").click()
    page.locator("#id_username").fill("newcomer")
    page.locator("#id_email").fill("newcomer@example.org")
    page.locator("#id_password1").fill("a-Long-enough-pass-42")
    page.locator("#id_password2").fill("a-Long-enough-pass-42")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Scope").select_option("read")
    page.get_by_role("button", name="Create token").click()
    raw = page.locator("#new-token").inner_text().strip()
    assert raw.startswith("ahub_")
    assert ApiToken.objects.get(key_hash=hash_token(raw)).user.username == "newcomer"
    shoot(page, "tokens")
    page.reload()
    expect(page.locator("#new-token")).to_have_count(0)  # shown once


def _tiny_adapter_folder(tmp_path) -> list[str]:
    """An adapter with a classification head saved by adapters_client on a tiny in-memory BERT."""
    from adapters_client import AutoAdapterModel
    from tests.client.engine_helpers import tiny_model

    backbone = tmp_path / "tiny-bert"
    tiny_model().base_model.save_pretrained(backbone)
    model = AutoAdapterModel.from_pretrained(str(backbone))
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    model.add_classification_head("sst-2", num_labels=2)
    model.save_adapter(str(tmp_path / "out"), "sst-2")
    return sorted(str(p) for p in (tmp_path / "out").iterdir())


def test_upload_through_the_form_then_pending_then_final_without_reload(page, seeded, shoot, tmp_path):
    paths = _tiny_adapter_folder(tmp_path)
    assert any(p.endswith("adapter.safetensors") for p in paths)
    sign_in(page, "olivia")
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("Organisation").select_option("demo")
    page.get_by_label("Task / subtask").select_option("sentiment/sst-2")
    page.get_by_label("Backbone").fill("tiny-bert")
    page.get_by_label("Version").fill("1")
    page.locator("#id_files").set_input_files(paths)
    shoot(page, "upload")
    page.get_by_role("button", name="Upload").click()
    status = page.locator("#version-status .badge")
    expect(status).to_have_text("pending")
    shoot(page, "version-pending")
    version = AdapterVersion.objects.get(adapter__model_name="tiny-bert")
    assert lifecycle.start_validation(version.pk, version.digest) is not None
    lifecycle.record_validation(version.pk, version.digest, "valid", report(1_200, "tiny-bert"), verified_score=0.81)
    expect(page.locator("#version-status .badge")).to_have_text("valid", timeout=20_000)
    expect(page.locator("#report")).to_contain_text("Backbone fingerprint")
    expect(page.locator("#version-facts")).to_contain_text("0.81")
    shoot(page, "version-valid")


def test_script_in_a_description_stays_inert(page, seeded):
    adapter = seeded["adapters"][0]
    Adapter.objects.filter(pk=adapter.pk).update(description=XSS)
    page.goto(f"/adapters/{adapter.pk}/")
    expect(page.locator(".prose")).to_contain_text("<script>window.__pwned = true;</script>")
    assert page.evaluate("window.__pwned === undefined")
    assert page.locator(".prose script, .prose img").count() == 0


def test_form_post_without_csrf_token_is_refused(page, seeded):
    sign_in(page, "olivia")
    adapter = seeded["adapters"][0]
    response = page.request.post(f"/adapters/{adapter.pk}/versions/2/yank/", form={"reason": "forged"})
    assert response.status == 403
    assert not AdapterVersion.objects.get(adapter=adapter, version="2").yanked


def test_try_it_shows_labels(page, seeded, monkeypatch, shoot):
    class Answer:
        def get(self, timeout, disable_sync_subtasks):
            return {"labels": [{"label": "positive", "score": 0.93}, {"label": "negative", "score": 0.07}]}

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: Answer())
    page.goto(f"/adapters/{seeded['adapters'][0].pk}/")
    page.get_by_label("Text").fill("A warm, funny and moving film.")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#try-labels li").first).to_contain_text("positive")
    shoot(page, "try")


def test_try_it_shows_generated_text(page, seeded, monkeypatch, shoot):
    adapter = seeded["adapters"][0]
    for version in AdapterVersion.objects.filter(adapter=adapter):
        version.validation_report = {**version.validation_report,
                                     "adapter": {**version.validation_report.get("adapter", {}),
                                                 "head_type": "causal_lm"}}
        version.save()

    class Answer:
        def get(self, timeout, disable_sync_subtasks):
            return {"generated_text": " and they lived happily ever after."}

    monkeypatch.setattr(trying.current_app, "send_task", lambda name, args, retry: Answer())
    page.goto(f"/adapters/{adapter.pk}/")
    page.get_by_label("Text").fill("Once upon a time")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#try-generated")).to_have_text(" and they lived happily ever after.")
    shoot(page, "try-generate")
