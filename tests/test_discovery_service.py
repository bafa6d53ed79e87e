"""Pair questions of a discovery folder over real HTTP and in a real browser, answered from the keyboard."""
from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("gradio")
import httpx  # noqa: E402
from conftest import make_identity_images  # noqa: E402
from test_service import _launch, _open_ui, _serve, _shots  # noqa: E402

from reid_hub import create_model, save_pretrained
from reid_hub.discovery.run import DiscoverRequest, discover

AUTH = {"Authorization": "Bearer s3cret"}


def _served_discovery(tmp_path_factory, name: str):
    """A discovery of 8 generated birds x 6 photos, served with a token; yields (base URL, discovery folder)."""
    from reid_hub.app.service import ServiceConfig

    import torch

    root = tmp_path_factory.mktemp(name)
    torch.manual_seed(0)  # the tiny model's random weights: the same groups whatever ran before
    model_dir = save_pretrained(create_model("tiny-test"), root / "model")
    data = make_identity_images(root / "birds", "bird", 8, 6, seed=5)
    out = root / "found"
    discover(DiscoverRequest(str(data / "metadata.csv"), str(out), model=str(model_dir)))
    cfg = ServiceConfig(model=str(model_dir), gallery_dir=str(root / "gallery"), token="s3cret", heavy_per_minute=0,
                        discovery_dir=str(out))
    with _serve(cfg) as base:
        yield base, out


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    yield from _served_discovery(tmp_path_factory, "disc-svc")


@contextlib.contextmanager
def _tab(base: str, tab: str, load: str):
    """Debian chromium on the served UI, the `tab` open and its first question loaded (skips without chromium)."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = _launch(p, chromium)
        page = browser.new_page()
        _open_ui(page, base)
        page.get_by_role("tab", name=tab).click()
        page.click(load)
        yield browser, page


def _waiter(info: str):
    """wait_for(page, text): wait until the `info` element shows `text`; returns the element's text."""
    def wait_for(page, text):
        page.wait_for_function(f"t => document.querySelector('{info}').innerText.includes(t)", arg=text,
                               timeout=60_000)
        return page.inner_text(info)
    return wait_for


def _answers(out: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(out / "answers.sqlite") as db:
        return db.execute("SELECT answer, actor FROM answers ORDER BY id").fetchall()


def test_questions_and_answers_over_http(served):
    base, out = served
    c = httpx.Client(base_url=base, timeout=120)
    got = c.get("/discovery/questions", params={"limit": 3}).json()
    assert len(got["questions"]) == 3 and got["individuals"] >= 1
    q = got["questions"][0]
    ev = c.get("/discovery/evidence.png", params={"a": q["a_row"], "b": q["b_row"]})
    assert ev.status_code == 200 and ev.headers["content-type"] == "image/png" and ev.content[:4] == b"\x89PNG"
    body = {"a": q["a_row"], "b": q["b_row"], "answer": "different"}
    assert c.post("/discovery/answers", json=body).status_code == 401  # no anonymous writes
    before = len(_answers(out))
    r = c.post("/discovery/answers", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["answers"] >= 1 and _answers(out)[before:] == [("different", "token")]
    ind = pd.read_csv(out / "individuals.csv")  # the folder's outputs follow every answer
    assert ind["individual"].iloc[q["a_row"]] != ind["individual"].iloc[q["b_row"]]
    nxt = c.get("/discovery/questions", params={"limit": 50}).json()["questions"]
    assert (q["a_row"], q["b_row"]) not in {(x["a_row"], x["b_row"]) for x in nxt}
    assert c.post("/discovery/answers", json={**body, "answer": "maybe"}, headers=AUTH).status_code == 422
    assert c.post("/discovery/answers", json={**body, "a": 100000}, headers=AUTH).status_code == 400
    assert c.get("/discovery/questions", params={"limit": 0}).status_code == 422
    assert c.get("/discovery/evidence.png", params={"a": 0, "b": 99999}).status_code == 400


def test_answering_questions_with_the_keyboard_in_a_real_browser(served, tmp_path):
    base, out = served
    with _tab(base, "Questions", "#q-load") as (browser, page):
        wait_for = _waiter("#questions-info")
        wait_for(page, "Same individual?")
        start = len(_answers(out))
        page.keyboard.press("s")  # no token yet: refused, the same rule as the API
        assert "AuthError" in wait_for(page, "AuthError")
        assert len(_answers(out)) == start
        page.fill("#questions-token input", "s3cret")
        page.click("#questions-info")  # leave the text box: keys typed there are text, not answers
        page.keyboard.press("s")
        wait_for(page, "Answered **same**".replace("**", ""))
        page.keyboard.press("d")
        wait_for(page, "Answered different")
        page.keyboard.press("u")
        wait_for(page, "Answered undo")
        page.keyboard.press("k")
        wait_for(page, "Answered skip")
        page.wait_for_timeout(500)
        page.screenshot(path=str(_shots(tmp_path) / "questions.png"), full_page=True)
        browser.close()
    assert [a for a, _ in _answers(out)[start:]] == ["same", "different", "undo", "skip"]
    assert {actor for _, actor in _answers(out)[start:]} == {"token"}


def test_review_decisions_over_http_reach_the_served_discovery(tmp_path):
    """Discovered individuals sent to the service's gallery: confirming two proposals as one animal in the review
    queue joins their groups in the discovery at once, with the decision in the answer log."""
    from reid_hub import from_pretrained
    from reid_hub.app.service import ServiceConfig
    from reid_hub.discovery.local_evidence import VerifyConfig
    from reid_hub.discovery.session import DiscoveryConfig
    from reid_hub.gallery import open_gallery

    model_dir = save_pretrained(create_model("tiny-test"), tmp_path / "model")
    data = make_identity_images(tmp_path / "cats", "cat", 4, 4, seed=7)
    g = open_gallery(tmp_path / "gallery", from_pretrained(str(model_dir)))
    iid = g.add_individual("Known cat", species="cat")
    g.close()
    out = tmp_path / "found"
    # a high threshold and no verification: many small groups, so several proposals
    discover(DiscoverRequest(str(data / "metadata.csv"), str(out), model=str(model_dir),
                             gallery=str(tmp_path / "gallery"),
                             config=DiscoveryConfig(threshold=0.95, verify=VerifyConfig(matcher="none"))))
    members = pd.read_csv(out / "gallery_members.csv")
    cfg = ServiceConfig(model=str(model_dir), gallery_dir=str(tmp_path / "gallery"), token="s3cret",
                        heavy_per_minute=0, discovery_dir=str(out))
    with _serve(cfg) as base:
        c = httpx.Client(base_url=base, timeout=120)
        before = c.get("/discovery").json()
        items = c.get("/review", params={"limit": 200}).json()["items"]
        assert len(items) >= 2
        a, b = items[0]["id"], items[1]["id"]
        for pid in (a, b):
            r = c.post(f"/review/{pid}", json={"action": "confirm", "individual_id": iid}, headers=AUTH)
            assert r.status_code == 200, r.text
        fed = [row for row in _answers(out) if row[1] == "review:gallery"]
        assert fed and {ans for ans, _ in fed} == {"same"}
        ind = pd.read_csv(out / "individuals.csv").set_index("path")["individual"]
        rows = members[members["proposal"].isin([a, b])]["path"]
        assert ind[rows].nunique() == 1  # the two groups are one individual now
        assert c.get("/discovery").json()["individuals"] < before["individuals"]


def _actions(out: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(out / "answers.sqlite") as db:
        return db.execute("SELECT kind, actor FROM actions ORDER BY id").fetchall()


@pytest.fixture(scope="module")
def served_groups_http(tmp_path_factory):
    yield from _served_discovery(tmp_path_factory, "disc-groups-http")


def test_group_review_over_http(served_groups_http):
    base, out = served_groups_http
    c = httpx.Client(base_url=base, timeout=120)
    got = c.get("/discovery/groups", params={"limit": 5}).json()
    assert all(1 <= len(q["rows"]) <= 12 and q["size"] >= len(q["rows"]) for q in got["questions"])
    q = next(q for q in got["questions"] if q["neighbours"])
    pic = c.get("/discovery/grid.png", params={"rows": ",".join(map(str, q["rows"])),
                                                "beside": str(q["neighbours"][0]["rows"][0])})
    assert pic.status_code == 200 and pic.content[:4] == b"\x89PNG"
    rows = q["rows"][:3] if len(q["rows"]) >= 3 else q["rows"]
    other = q["neighbours"][0]["rows"][0]
    body = {"action": "merge", "rows": rows, "merge": [other]}
    assert c.post("/discovery/groups/answers", json=body).status_code == 401  # no anonymous writes
    before = len(_actions(out))
    r = c.post("/discovery/groups/answers", json=body, headers=AUTH)
    assert r.status_code == 200, r.text
    assert _actions(out)[before:] == [("merge", "token")]
    ind = pd.read_csv(out / "individuals.csv")  # merged: one individual now
    assert ind["individual"].iloc[rows[0]] == ind["individual"].iloc[other]
    assert c.post("/discovery/answers", json={"a": 0, "b": 0, "answer": "undo"}, headers=AUTH).status_code == 200
    assert [k for k, _ in _actions(out)[before:]] == ["merge", "undo"]  # the whole action taken back
    bad = [{"action": "take_out", "rows": rows},  # take_out without the rows taken out
           {"action": "confirm", "rows": rows, "out": rows[:1]},
           {"action": "confirm", "rows": []},
           {"action": "split", "rows": rows}]
    for b in bad:
        assert c.post("/discovery/groups/answers", json=b, headers=AUTH).status_code == 422, b
    assert c.post("/discovery/groups/answers", json={"action": "confirm", "rows": [0, 99999]},
                  headers=AUTH).status_code == 400
    assert c.post("/discovery/groups/answers", json={"action": "take_out", "rows": rows[:1], "out": rows[:1]},
                  headers=AUTH).status_code == 400  # nothing left as the animal
    assert c.get("/discovery/grid.png", params={"rows": "0,x"}).status_code == 400


@pytest.fixture(scope="module")
def served_groups(tmp_path_factory):
    """A discovery of its own, so that the browser sees the same first group questions every run."""
    yield from _served_discovery(tmp_path_factory, "disc-groups")


def test_reviewing_a_group_with_the_keyboard_in_a_real_browser(served_groups, tmp_path):
    base, out = served_groups
    with _tab(base, "Groups", "#g-load") as (browser, page):
        wait_for = _waiter("#groups-info")
        wait_for(page, "one animal?")
        start = len(_actions(out))
        page.keyboard.press("m")  # no token yet: refused, the same rule as the API
        assert "AuthError" in wait_for(page, "AuthError")
        assert len(_actions(out)) == start
        page.fill("#groups-token input", "s3cret")
        page.click("#groups-info")  # leave the text box: keys typed there are text, not answers
        page.keyboard.press("m")  # merge with the nearest group (A, chosen by default)
        wait_for(page, "Done: merge")
        page.keyboard.press("x")  # nothing selected: refused, nothing written
        wait_for(page, "select the images")
        page.keyboard.press("1")
        page.wait_for_function("() => document.querySelectorAll('#g-select input:checked').length === 1",
                               timeout=30_000)
        page.keyboard.press("x")
        wait_for(page, "Done: take out")
        page.keyboard.press("c")
        wait_for(page, "Done: confirm")
        page.keyboard.press("u")
        wait_for(page, "Done: undo")
        page.wait_for_timeout(500)
        page.screenshot(path=str(_shots(tmp_path) / "groups.png"), full_page=True)
        browser.close()
    assert [k for k, _ in _actions(out)[start:]] == ["merge", "take_out", "confirm", "undo"]
    with sqlite3.connect(out / "answers.sqlite") as db:
        merge_rows = [a for a, in db.execute("SELECT answer FROM answers WHERE action = (SELECT MIN(id) FROM actions "
                                             "WHERE kind = 'merge')")]
    # the first group shows 12 images and 2 neighbours: 11 "same" confirm the images, 1 merges neighbour A, and
    # neighbour B, not merged, is recorded apart
    assert sorted(merge_rows) == ["different"] + ["same"] * 12
    assert {a for _, a in _actions(out)[start:]} == {"token"}
