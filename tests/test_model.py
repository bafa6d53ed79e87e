import json

import numpy as np
import pytest
import torch
from PIL import Image

from reid_hub import ModelCard, create_model, from_pretrained, list_models, save_pretrained
from reid_hub.errors import ConfigError, ModelMismatchError, UnknownModelError
from reid_hub.models.configs import get_model_config
from reid_hub.models.model import load_miewid_weights


def test_registry_names_configs_arch_tag_and_keeps_the_short_names():
    names = list_models()
    assert all(n.count(".") == 1 and n.split(".")[0] == get_model_config(n).backbone for n in names)
    for short, full in (("effv2-b0", "tf_efficientnetv2_b0.scratch"), ("effv2-rw-t", "efficientnetv2_rw_t.scratch"),
                        ("miewid-msv2", "efficientnetv2_rw_m.miewid_msv2"), ("lite0", "tf_efficientnet_lite0.in1k"),
                        ("lite2", "tf_efficientnet_lite2.in1k"), ("tiny-test", "test_efficientnet.test")):
        assert full in names and short not in names
        a, b = get_model_config(short), get_model_config(full)
        assert (a.name, b.name) == (short, full) and a.backbone == b.backbone and a.preprocess == b.preprocess
    # a model built by its short name keeps the fingerprint it had before the arch.tag names
    assert create_model("tiny-test").config.name == "tiny-test"
    with pytest.raises(UnknownModelError):
        create_model("no-such-model")


def test_models_table_lists_released_models_and_configs_in_one_table():
    from reid_hub import DEFAULT_MODEL
    from reid_hub.models.loading import model_table, release_names

    rows = model_table()
    kinds = {r["name"]: r["kind"] for r in rows}
    assert kinds[f"{DEFAULT_MODEL} (default)"] == "released"
    assert all(kinds.get(n, kinds.get(f"{n} (default)")) == "released" for n in release_names())
    assert {n for n, k in kinds.items() if k == "config"} == set(list_models())
    assert all(r["weights"].endswith("MiB") for r in rows if r["kind"] == "released")


def test_overrides_replace_fields_without_touching_the_registry():
    cfg = get_model_config("tiny-test", embedding_dim=16, preprocess={"size": 40})
    assert cfg.embedding_dim == 16 and cfg.preprocess.size == 40
    assert get_model_config("tiny-test").preprocess.size == 64


def test_invalid_config_values_are_config_errors():
    with pytest.raises(ConfigError):
        create_model("tiny-test", pooling="max")
    with pytest.raises(ConfigError):
        create_model("tiny-test", preprocess={"resize_mode": "stretch"})
    with pytest.raises(ConfigError):
        create_model("effv2-b0", pretrained=True)  # no offline ImageNet weights for EfficientNetV2


def test_embed_returns_unit_float32_rows_for_every_input_kind(tmp_path):
    model = create_model("tiny-test")
    arr = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    e_path = model.embed(str(path))
    e_pil = model.embed([Image.fromarray(arr)])
    e_arr = model.embed(arr)
    assert e_path.shape == (1, model.embedding_dim) and e_path.dtype == np.float32
    assert np.allclose(np.linalg.norm(e_path, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(e_path, e_pil) and np.array_equal(e_pil, e_arr)
    batch = model.preprocess([arr, arr[::-1]])
    e_tensor = model.embed(batch)
    assert e_tensor.shape == (2, model.embedding_dim)
    assert np.allclose(e_tensor[0], e_path[0], atol=1e-6)
    assert model.embed([]).shape == (0, model.embedding_dim)


def test_embed_is_independent_of_batch_size_and_keeps_training_mode():
    model = create_model("tiny-test")
    model.train()
    imgs = [np.full((20, 20, 3), v, np.uint8) for v in (10, 100, 200)]
    a = model.embed(imgs, batch_size=1)
    b = model.embed(imgs, batch_size=3)
    assert np.allclose(a, b, atol=1e-5)
    assert model.training


def test_save_and_load_round_trip_embeds_bit_identically(tmp_path):
    model = create_model("tiny-test")
    with torch.no_grad():  # make the BN neck non-trivial so the test can fail
        model.bn.running_mean.uniform_(-1, 1)
        model.pooling.p.fill_(2.5)
    folder = save_pretrained(model, tmp_path / "m")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "README.md"}
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["backbone"] == "test_efficientnet" and cfg["preprocess"]["size"] == 64
    loaded = from_pretrained(folder)
    img = np.random.default_rng(1).integers(0, 255, (50, 70, 3), dtype=np.uint8)
    assert np.array_equal(model.embed(img), loaded.embed(img))
    assert model.fingerprint() == loaded.fingerprint()


def test_fp16_save_halves_the_file_and_loads_the_rounded_model(tmp_path):
    model = create_model("tiny-test")
    f32 = save_pretrained(model, tmp_path / "f32")
    f16 = save_pretrained(model, tmp_path / "f16", dtype="float16")
    size32 = (f32 / "model.safetensors").stat().st_size
    size16 = (f16 / "model.safetensors").stat().st_size
    assert size16 < 0.6 * size32
    loaded = from_pretrained(f16)
    img = np.full((40, 40, 3), 90, np.uint8)
    assert np.array_equal(model.embed(img), loaded.embed(img))  # model now holds the rounded weights


def test_card_is_rendered_with_metrics(tmp_path):
    model = create_model("tiny-test")
    card = ModelCard(metrics=[{"species": "toyfox", "top1": 0.5}], limitations="Only a test.")
    folder = save_pretrained(model, tmp_path / "m", card=card)
    text = (folder / "README.md").read_text()
    assert text.startswith("---\nlibrary_name: reid-hub")
    assert "| toyfox | 0.500 |" in text and "Only a test." in text and "${" not in text


def test_both_save_paths_write_the_one_card_and_load_back_alike(tmp_path):
    """`save_pretrained(model, dir)` and the mixin's `model.save_pretrained(dir)` render the same template (through
    the mixin's card hook), and `from_pretrained` reads either folder."""
    model = create_model("tiny-test")
    ours = save_pretrained(model, tmp_path / "ours")
    model.save_pretrained(tmp_path / "mixin")
    assert (ours / "README.md").read_text() == (tmp_path / "mixin" / "README.md").read_text()
    assert model.fingerprint() in (ours / "README.md").read_text()
    assert from_pretrained(tmp_path / "mixin").fingerprint() == from_pretrained(ours).fingerprint() == model.fingerprint()


def test_newer_format_and_foreign_weights_are_mismatch_errors(tmp_path):
    model = create_model("tiny-test")
    folder = save_pretrained(model, tmp_path / "m")
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["format_version"] = 99
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(ModelMismatchError, match="format"):
        from_pretrained(folder)
    other = save_pretrained(create_model("tiny-test", embedding_dim=16), tmp_path / "other")
    (folder / "model.safetensors").unlink()
    cfg["format_version"] = 1
    cfg_path.write_text(json.dumps(cfg))
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ModelMismatchError, match="do not fit"):
        from_pretrained(folder)


def test_lite0_loads_packaged_imagenet_weights():
    random_model = create_model("lite0")
    model = create_model("lite0", pretrained=True)
    key = "backbone.conv_stem.weight"
    assert not torch.equal(model.state_dict()[key], random_model.state_dict()[key])
    # the packaged stem is the trained one: its filters are far from the random init's scale
    assert model.state_dict()[key].abs().mean() > 0.05


def test_miewid_layout_loads_a_miewid_style_checkpoint():
    model = create_model("miewid-msv2")
    assert model.embedding_dim == 2152 and model.proj is None
    keys = set(model.state_dict())
    assert "pooling.p" in keys and "bn.weight" in keys and any(k.startswith("backbone.") for k in keys)
    ckpt = {f"model.{k}" if i % 2 else k: v.clone() for i, (k, v) in enumerate(model.state_dict().items())}
    ckpt["final.weight"] = torch.zeros(10, 2152)
    ckpt["temperature"] = torch.ones(1)
    with torch.no_grad():
        ckpt["bn.bias"].fill_(0.25)
    fresh = create_model("miewid-msv2")
    load_miewid_weights(fresh, ckpt)
    assert torch.all(fresh.bn.bias == 0.25)


def test_general_branch_appends_frozen_imagenet_features_and_round_trips(tmp_path):
    import torch.nn.functional as F

    from reid_hub import from_pretrained, save_pretrained

    torch.manual_seed(0)
    ref = create_model("tiny-test")
    model = create_model("tiny-test")
    model.load_state_dict(ref.state_dict())
    model.attach_general_branch(3, weight=1.5).eval()
    ref.eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        emb = model(x)
        e = F.normalize(ref(x), dim=1)
        g = F.normalize(ref.pooling.__class__(3.0)(ref.backbone.bn2(ref.backbone.conv_head(
            ref.backbone.blocks[3:](ref.trunk(x, 3))))).flatten(1), dim=1)
    expected = F.normalize(torch.cat([e, 1.5 * g], dim=1), dim=1)
    assert emb.shape == (3, model.embedding_dim) and model.embedding_dim == 32 + model.feature_dim
    assert torch.allclose(emb, expected, atol=1e-5)
    assert not any(p.requires_grad for p in model.general.parameters())
    # training the re-ID branch leaves the general branch as it was
    with torch.no_grad():
        for p in model.backbone.blocks[3:].parameters():
            p.add_(0.1)
    assert torch.equal(model.general.stages[0][0].conv_pw.weight, ref.backbone.blocks[3][0].conv_pw.weight)
    loaded = from_pretrained(save_pretrained(model, tmp_path / "g"))
    assert loaded.config.general_blocks == 3 and np.allclose(loaded.embed(x), model.embed(x), atol=1e-6)


def test_released_models_keep_the_fingerprint_their_card_states():
    """Config fields added later must not change an older model's fingerprint (galleries are bound to it)."""
    import re

    from reid_hub.models.loading import release_names
    from reid_hub.resources import model_cards_dir

    for name in release_names():
        card = (model_cards_dir() / name / "README.md").read_text()
        stated = re.search(r"weights fingerprint \| `([0-9a-f]{16})`", card).group(1)
        assert from_pretrained(name).fingerprint() == stated, name
