"""Camtrap DP in, individualID out, abundance with the identification's uncertainty: the package reader's checks,
a simulated package through discover and population (validated with frictionless before and after), the
estimators against hand-computed values, and identify-package against a gallery."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from test_cli import run_cli

from reid_hub import create_model, save_pretrained
from reid_hub.data.camtrap_package import package_collection, read_package
from reid_hub.data.camtrap_simulation import make_package
from reid_hub.data.synthetic import coat, photo
from reid_hub.errors import ConfigError, DataError
from reid_hub.population.estimators import chao_mh, chapman, naive, schnabel
from reid_hub.population.report import PopulationRequest, parse_occasion, population

frictionless = pytest.importorskip("frictionless")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A simulated study of 10 coat-pattern animals x 5 photos, and the tiny model."""
    import torch

    root = tmp_path_factory.mktemp("study")
    imgs = [(photo(coat(900 + k), j), f"z{k}", "zebra") for k in range(10) for j in range(5)]
    pkg = make_package(root / "pkg", imgs, deployments=3, days=8, seed=2)
    torch.manual_seed(0)
    model = save_pretrained(create_model("tiny-test"), root / "model")
    return root, pkg, model


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_simulated_package_reads_as_crops_with_its_structure(study):
    _, pkg, _ = study
    assert frictionless.validate(str(pkg)).valid
    df, report = package_collection(read_package(pkg))
    truth = pd.read_csv(pkg.parent / "truth.csv")
    assert report["animal_observations"] == len(df) == len(truth) and report["without_box"] == 0
    assert all(b is not None and b[2] > 0 for b in df["bbox"])  # relative boxes became pixels
    assert (df["path"] == df["observationID"]).all()  # the key: one photo can hold two animals
    shared = df[df["_frame"] != ""]
    assert len(shared) >= 2 and shared.groupby("_frame").size().min() == 2
    tracked = df[df["_track"] != ""].merge(truth, on="observationID")
    assert tracked.groupby("_track")["individual"].nunique().max() == 1  # an event is one animal


@pytest.mark.parametrize("edit,where", [
    (lambda d: d.__setitem__("resources", [r for r in d["resources"] if r["name"] != "media"]), "'media' table"),
    ("observations.csv:0:mediaID:m99999", "observations row 1: mediaID"),
    ("observations.csv:0:bboxX:0.9", "observations row 1: the box"),
    ("observations.csv:0:bboxY:-0.1", "observations row 1: bboxY"),
    ("media.csv:0:filePath:media/nowhere.jpg", "not found"),
    ("media.csv:0:filePath:../../etc/passwd", "leaves the package"),
    ("media.csv:1:deploymentID:cam77", "media row 2: deploymentID"),
])
def test_bad_packages_are_typed_errors_naming_table_row_and_field(study, tmp_path, edit, where):
    _, pkg, _ = study
    bad = tmp_path / "bad"
    shutil.copytree(pkg.parent, bad)
    if callable(edit):
        d = json.loads((bad / "datapackage.json").read_text())
        edit(d)
        (bad / "datapackage.json").write_text(json.dumps(d))
    else:
        name, row, col, value = edit.split(":", 3)
        t = pd.read_csv(bad / name, dtype=str, keep_default_na=False)
        t.loc[int(row), col] = value
        t.to_csv(bad / name, index=False)
    before = _digest(bad)
    with pytest.raises(DataError, match=where.replace("(", r"\(")):
        package_collection(read_package(bad / "datapackage.json"))
    out = tmp_path / "out"
    r = run_cli("discover", bad / "datapackage.json", "--out", out, "--model", study[2], "--verify", "none")
    assert r.returncode == DataError.exit_code and "Traceback" not in r.stderr and where.split(":")[0] in r.stderr
    assert _digest(bad) == before and not (out / "package").exists()  # nothing written, the package untouched


def test_discover_a_package_writes_it_back_with_individual_ids_then_population(study, tmp_path):
    _, pkg, model = study
    before = _digest(pkg.parent)
    out = tmp_path / "found"
    r = run_cli("discover", pkg, "--out", out, "--model", model, "--verify", "none")
    assert r.returncode == 0, r.stderr
    assert _digest(pkg.parent) == before  # the input package is never written
    written = out / "package" / "datapackage.json"
    assert frictionless.validate(str(written)).valid
    obs = pd.read_csv(out / "package" / "observations.csv", dtype=str, keep_default_na=False)
    ind = pd.read_csv(out / "individuals.csv", dtype=str)
    assert (obs["individualID"] != "").all() and set(obs["individualID"]) == set(ind["individual"])
    assert set(obs["classificationMethod"]) == {"machine"} and obs["classifiedBy"].str.startswith("reid-hub").all()
    assert pd.to_numeric(obs["classificationProbability"]).between(0, 1).all()
    media = pd.read_csv(out / "package" / "media.csv", dtype=str)
    assert all((out / "package" / p).resolve().is_file() for p in media["filePath"])  # still the original files

    pop = tmp_path / "pop"
    r = run_cli("population", out, "--occasion", "1d", "--by", "deployment", "--out", pop, "--draws", "50")
    assert r.returncode == 0, r.stderr
    body = json.loads((pop / "population.json").read_text())
    assert body["individuals_seen"] == ind["individual"].nunique() and body["occasions"] >= 7
    assert {e["method"] for e in body["estimates"]} == {"naive", "chapman", "schnabel", "chao_mh"}
    assert all(set(e) >= {"method", "N", "lower", "upper"} for e in body["estimates"])
    unc = body["with_identification_uncertainty"]
    assert set(unc) >= {"N", "lower", "upper", "draws"} and unc["draws"] == 50 and unc["lower"] <= unc["upper"]
    assert set(body["by_deployment"]) == {"cam0", "cam1", "cam2"}
    hist = pd.read_csv(pop / "capture_history.csv")
    assert len(hist) == body["individuals_seen"] and hist.filter(like="occasion_").isin([0, 1]).all().all()
    caps, traps = pd.read_csv(pop / "secr_captures.csv"), pd.read_csv(pop / "secr_traps.csv")
    assert list(caps.columns) == ["Session", "ID", "Occasion", "Detector"] and set(caps["Detector"]) <= set(traps["Detector"])
    assert caps["Occasion"].min() >= 1
    rec = pd.read_csv(pop / "camtrapr_records.csv")
    assert {"Station", "Species", "Individual", "DateTimeOriginal"} <= set(rec.columns) and len(rec) == len(obs)
    for png in ("discovery_curve.png", "capture_history.png"):
        assert (pop / png).read_bytes()[:4] == b"\x89PNG"
    # the package written back is itself a source: identities as the discovery left them
    again = population(PopulationRequest(str(written), str(tmp_path / "pop2"), "1d", draws=20))
    assert again["individuals_seen"] == body["individuals_seen"]
    assert run_cli("population", out, "--occasion", "3x", "--out", pop).returncode == ConfigError.exit_code


def test_identification_uncertainty_widens_the_interval(study, tmp_path):
    """A package whose identities are the truth: certain (probability 1) gives the interval of the certain
    estimate's own draws; the same identities at probability 0.6 give more animals and a wider interval."""
    _, pkg, _ = study
    truth = pd.read_csv(pkg.parent / "truth.csv")
    runs = {}
    for p in (1.0, 0.6):
        folder = tmp_path / f"p{p}"
        shutil.copytree(pkg.parent, folder)
        obs = pd.read_csv(folder / "observations.csv", dtype=str, keep_default_na=False)
        obs["individualID"] = obs["observationID"].map(dict(zip(truth["observationID"], truth["individual"])))
        obs["classificationMethod"], obs["classificationProbability"] = "machine", str(p)
        obs.to_csv(folder / "observations.csv", index=False)
        d = json.loads((folder / "datapackage.json").read_text())
        for res in d["resources"]:
            if res["name"] == "observations":
                res["schema"]["fields"] += [{"name": "classificationMethod", "type": "string"},
                                            {"name": "classificationProbability", "type": "number"}]
        (folder / "datapackage.json").write_text(json.dumps(d))
        runs[p] = population(PopulationRequest(str(folder), str(folder / "pop"), "1d", draws=100), progress=False)
    sure, unsure = runs[1.0]["with_identification_uncertainty"], runs[0.6]["with_identification_uncertainty"]
    assert runs[1.0]["individuals_seen"] == 10
    assert unsure["N"] > sure["N"] and unsure["upper"] - unsure["lower"] > sure["upper"] - sure["lower"]


def test_estimators_match_hand_computed_values():
    # Chapman: n1 = 50, n2 = 40, m2 = 10 -> (51 * 41 / 11) - 1
    h = np.zeros((80, 2), bool)
    h[:50, 0] = True
    h[40:80, 1] = True
    assert chapman(h).N == pytest.approx(51 * 41 / 11 - 1)
    assert naive(h).N == 80
    # Chao Mh: 30 animals, f1 = 10 seen once, f2 = 5 twice -> 30 + 10^2 / (2 * 5) = 40
    h = np.zeros((30, 5), bool)
    h[:10, 0] = True
    h[10:15, :2] = True
    h[15:, :3] = True
    e = chao_mh(h)
    assert e.N == pytest.approx(40) and e.lower < 40 < e.upper and e.lower >= 30
    # Schnabel: C = (10, 10, 10), M = (0, 10, 15), R = (0, 5, 5) -> (10*0 + 10*10 + 10*15) / (10 + 1)
    h = np.zeros((25, 3), bool)
    h[:10, 0] = True
    h[5:15, 1] = True
    h[list(range(0, 5)) + list(range(15, 20)), 2] = True
    assert schnabel(h).N == pytest.approx(250 / 11)
    assert chapman(np.ones((3, 1), bool)).N is None  # one occasion: no estimate, said so


def test_occasions_parse_or_refuse():
    assert parse_occasion("7d") == pd.Timedelta(7, "D") and parse_occasion("12h") == pd.Timedelta(12, "h")
    for bad in ("0d", "1y", "d", "-1d"):
        with pytest.raises(ConfigError):
            parse_occasion(bad)


def test_identify_package_against_a_gallery(study, tmp_path):
    _, pkg, model = study
    g = tmp_path / "g"
    for k in range(4):
        files = []
        for j in range(3):
            f = tmp_path / f"enroll{k}_{j}.png"
            photo(coat(900 + k), 20 + j).save(f)
            files.append(f)
        assert run_cli("gallery", "enroll", *files, "--gallery", g, "--name", f"z{k}", "--species", "zebra",
                       "--model", model).returncode == 0
    r = run_cli("gallery", "identify-package", pkg, "--gallery", g, "--model", model, "--out", tmp_path / "idd")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    obs = pd.read_csv(tmp_path / "idd" / "package" / "observations.csv", dtype=str, keep_default_na=False)
    assert sum(report["decisions"].values()) == len(obs)
    assert (obs["classificationMethod"] == "machine").all()
    assert (obs["individualID"] != "").sum() == report["identified"]
    assert frictionless.validate(str(tmp_path / "idd" / "package" / "datapackage.json")).valid


def test_population_over_http_and_in_the_browser_tab(study, tmp_path):
    """POST /population on a served discovery made from a package (token-checked; a job with progress), its
    plots, bad requests as 4xx, and the Population tab in Debian chromium."""
    import httpx
    from test_discovery_service import _tab, _waiter
    from test_service import _serve, _shots

    from reid_hub.app.service import ServiceConfig

    _, pkg, model = study
    out = tmp_path / "found"
    assert run_cli("discover", pkg, "--out", out, "--model", model, "--verify", "none").returncode == 0
    cfg = ServiceConfig(model=str(model), gallery_dir=str(tmp_path / "g"), token="s3cret", heavy_per_minute=0,
                        discovery_dir=str(out))
    auth = {"Authorization": "Bearer s3cret"}
    with _serve(cfg) as base:
        c = httpx.Client(base_url=base, timeout=120)
        assert c.post("/population", json={"occasion": "1d"}).status_code == 401  # no anonymous runs
        r = c.post("/population", json={"occasion": "2d", "draws": 30}, headers=auth, params={"wait": 60})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["occasion"] == "2d" and body["with_identification_uncertainty"]["draws"] == 30
        assert (out / "population" / "population.json").is_file()
        png = c.get("/population/capture_history.png")
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
        assert c.get("/population/secrets.png").status_code == 422
        for bad in ({"occasion": "1y"}, {"draws": 0}, {"by": "camera"}, {"method": "guess"}):
            assert c.post("/population", json=bad, headers=auth).status_code == 422, bad
        with _tab(base, "Population", "#pop-run") as (browser, page):  # pressed without a token first: refused
            wait_for = _waiter("#population-info")
            assert "AuthError" in wait_for(page, "AuthError")
            page.set_viewport_size({"width": 1280, "height": 1100})
            page.fill("#population-token input", "s3cret")
            page.fill("#pop-occasion textarea, #pop-occasion input", "1d")
            page.click("#pop-run")
            wait_for(page, "individuals seen")
            text = page.inner_text("#pop-table")
            assert "chao_mh" in text and "with identification uncertainty" in text
            page.wait_for_timeout(800)
            page.screenshot(path=str(_shots(tmp_path) / "population.png"), full_page=True)
            browser.close()


def test_heterogeneity_test_chooses_the_model_the_captures_show():
    """Animals all alike: M0 is kept (Schnabel) in most simulated studies; capture probabilities that differ (sd 1.5
    on the logit scale): Chao's Mh."""
    from scipy.special import expit, logit

    from reid_hub.population.estimators import choose_method, heterogeneity_p

    rng = np.random.default_rng(0)
    alike = [choose_method(rng.random((120, 10)) < 0.3)[0] for _ in range(40)]
    differ = [choose_method(rng.random((120, 10)) < expit(logit(0.3) + 1.5 * rng.standard_normal((120, 1))))[0]
              for _ in range(40)]
    assert alike.count("schnabel") >= 34 and differ.count("chao_mh") >= 36
    assert heterogeneity_p(np.ones((5, 2), bool)) == 1.0  # too little to test: M0 not rejected
