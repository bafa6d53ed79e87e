"""Public checkpoint formats through from_pretrained, with locally built checkpoints of the same layout."""
import json

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from reid_hub import from_pretrained, save_pretrained
from reid_hub.errors import ModelMismatchError, OfflineError
from reid_hub.models.foreign import checkpoint_kind


def _timm_folder(tmp_path, arch="test_vit", size=160):
    """A folder laid out like a timm hub model (MegaDescriptor): config.json + model.safetensors with a classifier."""
    torch.manual_seed(0)
    net = timm.create_model(arch, num_classes=7).eval()
    folder = tmp_path / "timm-model"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architecture": arch, "num_classes": 7, "num_features": net.num_features, "global_pool": "token",
        "pretrained_cfg": {"input_size": [3, size, size], "interpolation": "bicubic", "crop_pct": 1.0,
                           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "classifier": "head"}}))
    return folder, net


def test_timm_hub_layout_loads_and_embeds_like_timm(tmp_path):
    folder, net = _timm_folder(tmp_path)
    model = from_pretrained(folder)
    assert model.config.pooling == "backbone" and not model.config.neck and model.config.preprocess.size == 160
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        ref = F.normalize(net.forward_head(net.forward_features(x), pre_logits=True), dim=1)
    assert torch.allclose(torch.from_numpy(model.embed(x)), ref, atol=1e-5)
    # and it round-trips as an ordinary reid-hub model
    again = from_pretrained(save_pretrained(model, tmp_path / "saved"))
    assert np.allclose(again.embed(x), model.embed(x), atol=1e-6)


def test_hf_hub_prefix_routes_to_the_timm_loader(tmp_path, monkeypatch):
    folder, _ = _timm_folder(tmp_path)
    asked = []

    def fake_download(repo_id, filename, local_files_only=False, **kw):  # a hub cache that holds the files
        asked.append((repo_id, filename))
        path = folder / filename
        if not path.is_file():
            from huggingface_hub.utils import EntryNotFoundError
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(path)

    import huggingface_hub
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    model = from_pretrained("hf-hub:BVRA/MegaDescriptor-T-224")
    assert model.config.backbone == "test_vit"
    assert ("BVRA/MegaDescriptor-T-224", "config.json") in asked


def test_hub_ids_offline_give_a_clear_error():
    with pytest.raises(OfflineError, match="offline|hub"):
        from_pretrained("hf-hub:BVRA/MegaDescriptor-T-224", local_files_only=True)
    with pytest.raises(OfflineError, match="offline|hub"):
        from_pretrained("conservationxlabs/miewid-msv3", local_files_only=True)


def _miewid_folder(tmp_path, use_fc=False):
    """A folder laid out like MiewID's hub checkpoints: its own config.json, keys backbone/pooling/bn/final."""
    torch.manual_seed(1)
    backbone = timm.create_model("test_efficientnet", num_classes=0, global_pool="")
    state = {f"backbone.{k}": v for k, v in backbone.state_dict().items()}
    dim = backbone.num_features
    state.update({"pooling.p": torch.tensor([3.3]), "bn.weight": torch.rand(dim) + 0.5, "bn.bias": torch.randn(dim),
                  "bn.running_mean": torch.randn(dim) * 0.1, "bn.running_var": torch.rand(dim) + 0.5,
                  "bn.num_batches_tracked": torch.tensor(5), "final.kernel": torch.randn(dim, 12)})
    folder = tmp_path / "miewid"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["MiewIdNet"], "model_type": "miewid", "model_name": "test_efficientnet", "use_fc": use_fc,
        "fc_dim": 512, "k": 3, "loss_module": "arcface_subcenter_dynamic", "n_classes": 12, "s": 30.0}))
    return folder, state


def test_miewid_config_is_mapped_not_refused(tmp_path):
    folder, state = _miewid_folder(tmp_path)
    model = from_pretrained(folder)
    assert model.config.backbone == "test_efficientnet" and model.config.preprocess.size == 440
    assert torch.allclose(model.pooling.p, torch.tensor([3.3]))
    assert torch.equal(model.bn.running_var, state["bn.running_var"])
    assert "final.kernel" not in model.state_dict()
    emb = model.embed(np.zeros((50, 40, 3), np.uint8))
    assert emb.shape == (1, model.embedding_dim) and abs(np.linalg.norm(emb) - 1) < 1e-4


def test_unsupported_foreign_configs_are_typed_errors(tmp_path):
    folder, _ = _miewid_folder(tmp_path, use_fc=True)
    with pytest.raises(ModelMismatchError, match="use_fc"):
        from_pretrained(folder)
    with pytest.raises(ModelMismatchError):
        checkpoint_kind({"hello": 1})
