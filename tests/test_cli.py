import json
import os
import subprocess
import sys
from pathlib import Path

from reid_hub.cli import main

REPO = Path(__file__).resolve().parent.parent


def run_cli(*args, cwd=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "reid_hub.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_models_lists_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "effv2-b0" in out and "miewid-msv2" in out


def test_bad_inputs_exit_with_typed_codes_and_no_traceback(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    r = run_cli("embed", bad, "--model", "no-such-model", "--out", tmp_path / "e.parquet")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    r = run_cli("evaluate", "--model", "some-org/some-model", "--data", tmp_path)
    assert r.returncode == 5 and "hub" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--data", tmp_path / "missing", "--out", tmp_path / "run", "--model", "tiny-test")
    assert r.returncode == 3 and "metadata.csv" in r.stderr


def test_train_evaluate_embed_end_to_end(toy_data, tmp_path):
    run = tmp_path / "run"
    r = run_cli("train", "--data", *toy_data, "--out", run, "--model", "tiny-test", "--max-steps", "6",
                "--batch-size", "8", "--unseen-fraction", "0.4", "--quiet")
    assert r.returncode == 0, r.stderr
    model_dir = run / "model"
    r = run_cli("evaluate", "--model", model_dir, "--data", *toy_data, "--split", run / "split.csv",
                "--baselines", "sift", "--out", tmp_path / "res" / "eval.json")
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "res" / "eval.json").read_text())
    assert set(res["species"]) == {"toyfox", "toyowl"} and (tmp_path / "res" / "eval.png").is_file()
    assert "toyfox" in r.stdout and "sift" in r.stdout
    r = run_cli("embed", "--data", toy_data[0], "--model", model_dir, "--out", tmp_path / "e.parquet", "--quiet")
    assert r.returncode == 0, r.stderr
    import datasets
    ds = datasets.Dataset.from_parquet(str(tmp_path / "e.parquet"))
    assert len(ds) == 36 and len(ds[0]["embedding"]) == 32
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    r = run_cli("embed", bad, "--model", model_dir, "--out", tmp_path / "x.parquet", "--quiet")
    assert r.returncode == 3 and "broken.jpg" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("info", model_dir)
    assert r.returncode == 0 and json.loads(r.stdout)["embedding_dim"] == 32


def test_gallery_commands(toy_data, tmp_path):
    from reid_hub import create_model, save_pretrained

    model_dir = save_pretrained(create_model("tiny-test"), tmp_path / "m")
    g = tmp_path / "g"
    imgs = sorted((toy_data[0] / "images" / "id0").glob("*.png"))
    other = sorted((toy_data[0] / "images" / "id1").glob("*.png"))
    assert run_cli("gallery", "enroll", *imgs[:3], "--gallery", g, "--model", model_dir, "--name", "Zed").returncode == 0
    assert run_cli("gallery", "enroll", *other[:3], "--gallery", g, "--model", model_dir, "--name", "Yan").returncode == 0
    r = run_cli("gallery", "search", imgs[4], "--gallery", g, "--model", model_dir, "--k", "2")
    assert r.returncode == 0 and "Zed" in r.stdout
    r = run_cli("gallery", "list", "--gallery", g, "--model", model_dir)
    assert "Zed" in r.stdout and "3 images" in r.stdout
    r = run_cli("gallery", "export", "--gallery", g, "--model", model_dir, "--archive", tmp_path / "g.tar.gz")
    assert r.returncode == 0 and (tmp_path / "g.tar.gz").is_file()
    r = run_cli("gallery", "list", "--gallery", tmp_path / "missing", "--model", model_dir)
    assert r.returncode == 7 and r.stderr.startswith("error:")
    other_model = save_pretrained(create_model("tiny-test", embedding_dim=16), tmp_path / "m2")
    r = run_cli("gallery", "list", "--gallery", g, "--model", other_model)
    assert r.returncode == 4 and "model" in r.stderr
    # identify writes the evidence picture into a folder it makes, named after the query
    r = run_cli("gallery", "identify", imgs[4], "--gallery", g, "--model", model_dir, "--evidence", tmp_path / "ev" / "new")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout[:r.stdout.rindex("}") + 1])
    best = out["matches"][0]
    assert {"p_new", "decision_precision", "coverage"} <= set(out)  # the decision policy's fields, top level
    picture = tmp_path / "ev" / "new" / f"{imgs[4].stem}-evidence.png"
    assert best["matcher"] == "sift" and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"evidence: {picture}" in r.stdout
    # the decision policy's target, per species, validated before anything is stored
    r = run_cli("gallery", "configure", "--gallery", g, "--model", model_dir, "--precision", "0.99", "--species", "fox",
                "--auto-accept", "on")
    assert r.returncode == 0, r.stderr
    conf = json.loads(r.stdout)
    assert conf["decision_precision_by_species"] == {"fox": 0.99} and conf["decision_precision"] == 0.95
    assert conf["auto_accept"] is True
    r = run_cli("gallery", "configure", "--gallery", g, "--model", model_dir, "--precision", "0.3")
    assert r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr


def test_evaluate_with_methods_fused_alone_the_documented_form(toy_data, tmp_path):
    """`reid-hub evaluate --data DIR --unseen-fraction 1 --methods fused --out F.json` (issue 11's form): the
    fused method is scored, and the model's own scores beside it."""
    out = tmp_path / "F.json"
    r = run_cli("evaluate", "--data", toy_data[0], "--unseen-fraction", "1", "--methods", "fused", "--out", out)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["methods"] == ["model", "fused"]
    entry = res["species"]["toyfox"]
    assert 0 <= entry["fused"]["top1"] <= 1 and 0 <= entry["model"]["top1"] <= 1
    r = run_cli("evaluate", "--data", toy_data[0], "--methods", "fused,nonsense", "--out", out)
    assert r.returncode == 2 and "nonsense" in r.stderr


def test_every_bad_input_class_of_issue_25_gets_a_typed_exit_code_and_one_line(tmp_path):
    """Model folders (truncated safetensors, mismatched or unreadable config), detection files (wrong types,
    boxes outside the frame, NaN, neither format), crop tables (missing column, wrong type) and a gallery of
    another model: each ends with its error class's exit code and one line, never a traceback."""
    import json
    import shutil

    import numpy as np
    import torch
    from PIL import Image

    from reid_hub import create_model, save_pretrained

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    model = save_pretrained(create_model("tiny-test"), tmp_path / "model")
    trunc = shutil.copytree(model, tmp_path / "trunc")
    raw = (trunc / "model.safetensors").read_bytes()
    (trunc / "model.safetensors").write_bytes(raw[: len(raw) // 2])
    wrong = shutil.copytree(model, tmp_path / "wrong")
    cfg = json.loads((wrong / "config.json").read_text())
    cfg.get("config", cfg)["embedding_dim"] = 48
    (wrong / "config.json").write_text(json.dumps(cfg))
    unreadable = shutil.copytree(model, tmp_path / "unreadable")
    (unreadable / "config.json").write_text("{not json")
    torch.manual_seed(1)
    other = save_pretrained(create_model("tiny-test"), tmp_path / "other")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(np.full((120, 160, 3), 60 * i, np.uint8)).save(frames / f"{i:05d}.jpg")
    det = {"types": {"images": [{"file": "00000.jpg", "detections": [{"bbox": "abc", "conf": "high", "category": "1"}]}]},
           "outside": {"images": [{"file": "00000.jpg", "detections": [{"bbox": [2, 2, .5, .5], "conf": .9, "category": "1"}]}]},
           "neither": [1, 2, 3]}
    for name, body in det.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(body))
    (tmp_path / "nan.json").write_text('{"images": [{"file": "00000.jpg", "detections": '
                                       '[{"bbox": [NaN, 0.1, 0.2, 0.2], "conf": 0.9, "category": "1"}]}]}')
    (tmp_path / "missing.csv").write_text("frame,foo\n0,a\n")
    (tmp_path / "types.csv").write_text("frame,path\nabc,img.png\n")
    img, out = tmp_path / "img.png", tmp_path / "o.parquet"
    assert run_cli("gallery", "enroll", img, "--gallery", tmp_path / "g", "--model", model, "--name", "a").returncode == 0
    cases = [
        (("embed", img, "--model", trunc, "--out", out), 4, "not a readable safetensors"),
        (("embed", img, "--model", wrong, "--out", out), 4, "wrong shape"),
        (("embed", img, "--model", unreadable, "--out", out), 4, "not a readable config.json"),
        (("video", "cluster", frames, "--detections", tmp_path / "types.json", "--k", "1", "--model", model), 3, "bbox"),
        (("video", "cluster", frames, "--detections", tmp_path / "outside.json", "--k", "1", "--model", model), 3,
         "outside the 160x120 frame"),
        (("video", "cluster", frames, "--detections", tmp_path / "nan.json", "--k", "1", "--model", model), 3,
         "non-numeric"),
        (("video", "cluster", frames, "--detections", tmp_path / "neither.json", "--k", "1", "--model", model), 3,
         "neither MegaDetector"),
        (("video", "cluster", tmp_path / "missing.csv", "--k", "1", "--model", model), 2, "needs --detections"),
        (("video", "cluster", tmp_path / "types.csv", "--k", "1", "--model", model), 3, "non-negative integer"),
        (("gallery", "search", img, "--gallery", tmp_path / "g", "--model", other), 4, "was built with model"),
    ]
    for args, code, words in cases:
        r = run_cli(*args)
        assert r.returncode == code and words in r.stderr, (args, r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
