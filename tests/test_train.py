import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import reid_hub.training.loop as rtrain
from reid_hub import from_pretrained
from reid_hub.data import tables as rdata
from reid_hub.errors import CheckpointError, ConfigError
from reid_hub.evaluation.metrics import retrieval_metrics
from reid_hub.models.table_embedding import embed_table


def _cfg(toy_data, out, **kw):
    base = dict(data=[str(p) for p in toy_data], out_dir=str(out), model="tiny-test", max_steps=8, batch_size=8,
                checkpoint_every=4, warmup_steps=2, lr=3e-3, unseen_fraction=0.34, seed=0)
    base.update(kw)
    return rtrain.TrainConfig(**base)


def test_training_writes_a_loadable_run_folder(toy_data, tmp_path):
    folder = rtrain.train(_cfg(toy_data, tmp_path / "run"), progress=False)
    run = tmp_path / "run"
    for name in ("config.json", "split.csv", "classes.json", "metrics.jsonl", "checkpoint.pt"):
        assert (run / name).is_file()
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == list(range(1, 9))
    classes = json.loads((run / "classes.json").read_text())
    split = rdata.apply_split(rdata.load_sources(toy_data), run / "split.csv")
    assert not set(classes) & set(split[split.split == "unseen"]["label"])  # unseen identities never trained
    model = from_pretrained(folder)
    assert "toyfox" in (folder / "README.md").read_text()
    assert model.embed(np.zeros((20, 20, 3), np.uint8)).shape == (1, 32)


def test_training_learns_identities(toy_data, tmp_path):
    folder = rtrain.train(_cfg(toy_data, tmp_path / "run", max_steps=60, unseen_fraction=0.0, lr=5e-3),
                          progress=False)
    losses = [json.loads(l)["loss"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    df = rdata.load_sources(toy_data)
    trained = embed_table(from_pretrained(folder), df)
    from reid_hub.models.model import create_model
    torch.manual_seed(0)  # the initialisation the run started from (train seeds with cfg.seed)
    untrained = embed_table(create_model("tiny-test"), df)
    assert retrieval_metrics(trained @ trained.T, df["label"]).mAP > retrieval_metrics(untrained @ untrained.T, df["label"]).mAP


def test_resume_after_a_crash_is_exact(toy_data, tmp_path, monkeypatch):
    ref = rtrain.train(_cfg(toy_data, tmp_path / "ref"), progress=False)

    real_save = rtrain._save_checkpoint

    def crash_after_first_checkpoint(path, *args):
        real_save(path, *args)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(rtrain, "_save_checkpoint", crash_after_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        rtrain.train(_cfg(toy_data, tmp_path / "crashed"), progress=False)
    assert torch.load(tmp_path / "crashed" / "checkpoint.pt", weights_only=False)["step"] == 4
    monkeypatch.setattr(rtrain, "_save_checkpoint", real_save)
    resumed = rtrain.train(_cfg(toy_data, tmp_path / "crashed"), progress=False)
    a, b = load_file(str(ref / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_real_kill_leaves_a_resumable_run(toy_data, tmp_path):
    out = tmp_path / "killed"
    cfg = _cfg(toy_data, out, max_steps=150, checkpoint_every=5)
    code = ("import sys, json; from reid_hub.training.loop import TrainConfig, train; "
            f"train(TrainConfig(**json.loads({json.dumps(json.dumps(cfg.__dict__))})), progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    deadline = time.time() + 120
    metrics = out / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= 7:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model").exists()
    step = torch.load(out / "checkpoint.pt", weights_only=False)["step"]
    assert 5 <= step < 150
    folder = rtrain.train(cfg, progress=False)
    steps = [json.loads(l)["step"] for l in metrics.read_text().splitlines()]
    assert steps[-1] == 150 and steps.count(step + 1) >= 1
    assert (folder / "model.safetensors").is_file()


def test_changed_config_in_an_existing_run_is_refused(toy_data, tmp_path):
    rtrain.train(_cfg(toy_data, tmp_path / "run"), progress=False)
    with pytest.raises(CheckpointError):
        rtrain.train(_cfg(toy_data, tmp_path / "run", lr=0.1), progress=False)


def test_bad_train_settings_are_config_errors(toy_data, tmp_path):
    with pytest.raises(ConfigError):
        rtrain.train(_cfg(toy_data, tmp_path / "r", batch_size=0), progress=False)
    with pytest.raises(ConfigError):
        rtrain.train(_cfg(toy_data, tmp_path / "r2", data=[]), progress=False)


def test_finetune_on_a_new_species_without_the_original_data(toy_data, tmp_path):
    base = rtrain.train(_cfg(toy_data[:1], tmp_path / "base", unseen_fraction=0.0), progress=False)
    cfg = rtrain.finetune_config(str(base), [str(toy_data[1])], str(tmp_path / "ft"), max_steps=6, batch_size=8,
                                 unseen_fraction=0.0, checkpoint_every=3)
    assert cfg.backbone_lr_mult < 0.3 and cfg.init_from == str(base)
    folder = rtrain.train(cfg, progress=False)
    classes = json.loads((tmp_path / "ft" / "classes.json").read_text())
    assert all(c.startswith("toyowl/") for c in classes)  # a new classifier for the new identities only
    before, after = load_file(str(base / "model.safetensors")), load_file(str(folder / "model.safetensors"))
    assert not torch.equal(before["backbone.conv_stem.weight"], after["backbone.conv_stem.weight"])


def test_distillation_initialises_a_student(toy_data, tmp_path, monkeypatch):
    import dataclasses

    from reid_hub.models import configs

    configs.register_model(dataclasses.replace(configs.get_model_config("tiny-test"), name="test_efficientnet.teacher"))
    real_create = rtrain.create_model

    def create(name, pretrained=False, **kw):  # the tiny teacher has no packaged weights: use random ones
        return real_create(name, pretrained=False if name == "test_efficientnet.teacher" else pretrained, **kw)

    monkeypatch.setattr(rtrain, "create_model", create)
    out = rtrain.distill("tiny-test", "test_efficientnet.teacher", [str(p) for p in toy_data], tmp_path / "student",
                         epochs=2,
                         batch_size=8)
    log = [json.loads(l)["loss"] for l in (tmp_path / "student.jsonl").read_text().splitlines()]
    assert len(log) >= 4 and min(log[-2:]) < log[0]
    assert from_pretrained(out).config.name == "tiny-test"


def test_frozen_trunk_training_uses_the_cache_and_keeps_the_trunk(toy_data, tmp_path, monkeypatch):
    monkeypatch.setenv("REID_HUB_CACHE", str(tmp_path / "cache"))
    from reid_hub.models.model import create_model
    cfg = _cfg(toy_data, tmp_path / "run", frozen_blocks=3, views=2, max_steps=30, unseen_fraction=0.0, lr=5e-3)
    folder = rtrain.train(cfg, progress=False)
    files = list((tmp_path / "cache" / "trunk").rglob("*.npy"))
    assert len(files) == len(rdata.load_sources(toy_data))  # one file per training image
    arrs = [np.load(f) for f in files]
    assert all(a.shape[0] == 3 and a.dtype == np.float16 for a in arrs)  # clean view + 2 augmented views
    # each transform of the recipe is applied at random, so about 4% of views are the clean image itself;
    # most must differ from it and from each other (a recipe that never augments gives 100% equal)
    same_as_clean = np.mean([np.array_equal(a[0], a[v]) for a in arrs for v in (1, 2)])
    assert same_as_clean < 0.25, same_as_clean
    assert np.mean([np.array_equal(a[1], a[2]) for a in arrs]) < 0.25
    torch.manual_seed(0)  # the seed train() builds its model under
    init = create_model("tiny-test")
    trained = from_pretrained(folder)
    init_state, new_state = init.backbone.state_dict(), trained.backbone.state_dict()
    assert all(torch.equal(init_state[k], new_state[k]) for k in new_state if k.startswith(("conv_stem", "blocks.0.")))
    assert not all(torch.equal(init_state[k], new_state[k]) for k in new_state if k.startswith("blocks.4."))
    losses = [json.loads(l)["loss"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    # the cached clean view is what embed() computes: embeddings through the cache match
    from reid_hub.training.trunk_cache import TrunkCache, load_clean_views
    df = rdata.load_sources(toy_data)
    paths = TrunkCache(trained, 3, views=2, seed=0).build(df, progress=False)
    with torch.no_grad():
        via_cache = trained.eval().head(trained.pooled_from_trunk(load_clean_views(paths[:4]), 3)).numpy()
    assert np.allclose(via_cache, embed_table(trained, df.iloc[:4]), atol=2e-2)


def test_leave_species_out_distillation_and_wise(toy_data, tmp_path):
    from reid_hub.models.model import create_model
    cfg = _cfg(toy_data, tmp_path / "run", exclude_species=["toyowl"], distill_weight=1.0, wise_alpha=0.5,
               max_steps=6)
    folder = rtrain.train(cfg, progress=False)
    classes = json.loads((tmp_path / "run" / "classes.json").read_text())
    assert classes and all(c.startswith("toyfox/") for c in classes)
    # WiSE-FT at 0.5 puts the saved backbone halfway: re-mixing toward the initial model at 0 gives it back
    torch.manual_seed(0)
    init = create_model("tiny-test")
    saved = from_pretrained(folder)
    back = rtrain.interpolate_backbone(from_pretrained(folder), init, 0.0)
    assert all(torch.allclose(back.backbone.state_dict()[k], v)
               for k, v in init.backbone.state_dict().items() if v.is_floating_point())
    assert not all(torch.equal(saved.backbone.state_dict()[k], v) for k, v in init.backbone.state_dict().items()
                   if v.is_floating_point())
    with pytest.raises(ConfigError, match="exclude_species"):
        rtrain.train(_cfg(toy_data, tmp_path / "bad", exclude_species=["dodo"]), progress=False)
    with pytest.raises(ConfigError):
        _cfg(toy_data, tmp_path / "bad2", wise_alpha=1.5).validate()
