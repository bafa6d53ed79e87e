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
