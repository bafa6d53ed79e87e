"""Inference backends: ONNX Runtime gives the torch forward's embeddings, caches its graph per model
fingerprint, falls back (logged) when a graph fails its probe, and is chosen by call, CLI and environment."""
import copy
import logging
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from reid_hub.data.synthetic import coat, photo
from reid_hub.errors import ConfigError
from reid_hub.models import backends, onnx_engine
from reid_hub.models.model import create_model

pytest.importorskip("onnxruntime")

#: float32 ONNX Runtime vs torch: embeddings agree to this absolute difference (unit vectors)
FP32_ATOL = 1e-5


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REID_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(backends.ENV_BACKEND, raising=False)
    return tmp_path / "cache" / "onnx"


@pytest.fixture()
def model():
    torch.manual_seed(0)
    m = create_model("tiny-test")
    with torch.no_grad():  # non-trivial BN statistics, so the neck matters
        m.bn.running_mean.uniform_(-0.1, 0.1)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


def photos(n: int) -> list:
    return [photo(coat(i // 2), i) for i in range(n)]


def test_onnx_embeddings_equal_torch_for_tensors_and_images(cache, model):
    x = torch.randn(5, 3, 64, 64)
    ref = model.embed(x, backend="torch")
    got = model.embed(x, backend="onnx", batch_size=2)
    assert model.backend_name("onnx") == "onnx"
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=FP32_ATOL)
    imgs = photos(7)
    np.testing.assert_allclose(model.embed(imgs, backend="onnx", batch_size=3),
                               model.embed(imgs, backend="torch", batch_size=3), atol=FP32_ATOL)
    assert model.embed([], backend="onnx").shape == (0, model.embedding_dim)


def test_the_graph_is_cached_per_fingerprint_and_rebuilt_when_weights_change(cache, model):
    model.embed(torch.randn(3, 3, 64, 64), backend="onnx")  # 3 images run in the graph for batches of 4
    first = cache / f"{model.fingerprint()}-b4.onnx"
    assert [p.name for p in cache.glob("*.onnx")] == [first.name]
    stamp = first.stat().st_mtime_ns
    twin = copy.deepcopy(model)  # same weights: the cached graph is reused, not exported again
    x = torch.randn(4, 3, 64, 64)
    np.testing.assert_allclose(twin.embed(x, backend="onnx"), model.embed(x, backend="torch"), atol=FP32_ATOL)
    assert first.stat().st_mtime_ns == stamp and len(list(cache.glob("*.onnx"))) == 1
    big = torch.randn(37, 3, 64, 64)  # split into 32 + 5: the graphs for 32 and 8
    np.testing.assert_allclose(model.embed(big, backend="onnx", batch_size=37), model.embed(big, backend="torch"),
                               atol=FP32_ATOL)
    assert sorted(p.name for p in cache.glob("*.onnx")) == sorted(
        f"{model.fingerprint()}-b{b}.onnx" for b in (4, 8, 32))
    with torch.no_grad():  # an in-place change of the weights (an optimizer step) makes a new graph
        model.proj.weight.mul_(-1.0)
    np.testing.assert_allclose(model.embed(x, backend="onnx"), model.embed(x, backend="torch"), atol=FP32_ATOL)
    assert (cache / f"{model.fingerprint()}-b4.onnx").is_file() and len(list(cache.glob("*.onnx"))) == 4
    assert pickle.loads(pickle.dumps(model)).embed(x, backend="onnx").shape == (4, model.embedding_dim)


def test_a_graph_that_disagrees_with_torch_falls_back_to_torch_logged(cache, model, monkeypatch, caplog):
    x = torch.randn(3, 3, 64, 64)
    monkeypatch.setattr(onnx_engine, "FP32_MIN_COSINE", 1.5)  # no graph can pass: the probe must refuse it
    with caplog.at_level(logging.WARNING, logger="reid_hub.models.onnx_engine"):
        got = model.embed(x, backend="onnx")
    assert model.backend_name("onnx") == "torch"
    assert np.array_equal(got, model.embed(x, backend="torch"))
    assert any("disagrees with the torch forward" in r.getMessage() for r in caplog.records)


def test_a_corrupt_cached_graph_falls_back_to_torch_logged(cache, model, caplog):
    cache.mkdir(parents=True)
    (cache / f"{model.fingerprint()}-b2.onnx").write_bytes(b"not an onnx graph")
    x = torch.randn(2, 3, 64, 64)
    with caplog.at_level(logging.WARNING, logger="reid_hub.models.onnx_engine"):
        got = model.embed(x, backend="onnx")
    assert np.array_equal(got, model.embed(x, backend="torch"))
    assert any("unavailable" in r.getMessage() for r in caplog.records)


def test_int8_is_used_only_when_its_probe_passes(cache, model, monkeypatch):
    x = torch.randn(4, 3, 64, 64)
    ref = model.embed(x, backend="torch")
    monkeypatch.setattr(onnx_engine, "INT8_MIN_COSINE", -1.0)
    assert model.backend_name("onnx-int8") == "onnx-int8"
    got = model.embed(x, backend="onnx-int8")
    assert (cache / f"{model.fingerprint()}-b4-int8.onnx").is_file()
    assert got.shape == ref.shape and not np.allclose(got, ref, atol=FP32_ATOL)  # really quantized
    assert float(np.min(np.sum(got * ref, axis=1))) > 0.5  # ... and still the same embedding, roughly
    fresh = copy.deepcopy(model)
    monkeypatch.setattr(onnx_engine, "INT8_MIN_COSINE", 1.5)  # a failing int8 graph: float32 ONNX instead
    assert fresh.backend_name("onnx-int8") == "onnx"
    np.testing.assert_allclose(fresh.embed(x, backend="onnx-int8"), ref, atol=FP32_ATOL)


def test_backend_and_threads_come_from_call_cli_default_and_environment(cache, monkeypatch):
    assert backends.resolve_backend(None, "cpu") == "onnx"  # auto on CPU with onnxruntime installed
    assert backends.resolve_backend("auto", "cuda") == "torch"
    assert backends.resolve_backend("onnx", "cuda") == "torch"
    monkeypatch.setenv(backends.ENV_BACKEND, "torch")
    assert backends.resolve_backend(None, "cpu") == "torch"
    assert backends.resolve_backend("onnx-int8", "cpu") == "onnx-int8"
    old = backends.set_runtime("onnx", 3)
    try:
        assert backends.resolve_backend(None, "cpu") == "onnx" and backends.thread_count() == 3
        assert backends.thread_count(1) == 1
    finally:
        backends.set_runtime(old.backend, old.threads)
    monkeypatch.setenv(backends.ENV_BACKEND, "tensorrt")
    with pytest.raises(ConfigError, match="backend must be one of"):
        backends.resolve_backend(None, "cpu")
    monkeypatch.delenv(backends.ENV_BACKEND)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert backends.thread_count() == 2
    monkeypatch.setenv(backends.ENV_THREADS, "many")
    with pytest.raises(ConfigError, match="integer"):
        backends.thread_count()


def test_cli_backends_write_equal_embeddings_and_refuse_unknown_ones(cache, model, tmp_path):
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    imgs = []
    for i, im in enumerate(photos(4)):
        imgs.append(tmp_path / f"{i}.png")
        im.save(imgs[-1])
    tables = {}
    for b in ("torch", "onnx"):
        r = subprocess.run([sys.executable, "-m", "reid_hub.cli", "embed", *map(str, imgs), "--model", str(folder),
                            "--backend", b, "--threads", "1", "--out", str(tmp_path / f"{b}.parquet")],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        tables[b] = np.stack(pd.read_parquet(tmp_path / f"{b}.parquet")["embedding"].map(np.asarray))
    np.testing.assert_allclose(tables["onnx"], tables["torch"], atol=FP32_ATOL)
    r = subprocess.run([sys.executable, "-m", "reid_hub.cli", "embed", str(imgs[0]), "--backend", "tensorrt",
                        "--out", str(tmp_path / "x.parquet")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "invalid choice: 'tensorrt'" in r.stderr and "Traceback" not in r.stderr


def test_a_worker_given_a_backend_keeps_the_threads_the_cli_set(cache, model, tmp_path):
    from reid_hub.scale.embedding import _worker_model

    folder = model.save_pretrained(tmp_path / "m") or tmp_path / "m"
    old, torch_threads = backends.set_runtime(None, 3), torch.get_num_threads()
    try:
        _worker_model(str(folder), device="cpu", backend="onnx")  # what the in-process engine does in the driver
        assert backends.current_runtime() == backends.Runtime("onnx", 3)
    finally:
        backends.set_runtime(old.backend, old.threads)
        torch.set_num_threads(torch_threads)
