import numpy as np
import pytest
import torch
from PIL import Image

from reid_hub.errors import ImageError
from reid_hub.imaging import PreprocessConfig, crop_box, load_image, preprocess, resize_for_model


def test_corrupt_and_missing_files_are_image_errors(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageError):
        load_image(bad)
    with pytest.raises(ImageError):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError):
        load_image(b"garbage bytes")


def test_truncated_jpeg_is_an_image_error(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ImageError):
        load_image(p)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    import reid_hub.imaging as imaging

    p = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(p)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(ImageError, match="pixels"):
        load_image(p)


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P", "I;16"])
def test_every_mode_becomes_rgb(mode):
    img = Image.new(mode, (20, 10))
    out = load_image(img)
    assert out.mode == "RGB" and out.size == (20, 10)


def test_arrays_and_tensors_are_accepted_and_bad_shapes_refused():
    hwc = np.zeros((10, 12, 3), np.uint8)
    assert load_image(hwc).size == (12, 10)
    assert load_image(torch.zeros(3, 10, 12, dtype=torch.uint8)).size == (12, 10)
    with pytest.raises(ImageError):
        load_image(np.zeros((4, 10, 12, 5), np.uint8))
    with pytest.raises(ImageError):
        load_image(12345)


@pytest.mark.parametrize("mode", ["letterbox", "resize", "center_crop"])
def test_resize_modes_give_square_inputs(mode):
    cfg = PreprocessConfig(size=32, resize_mode=mode)
    out = resize_for_model(Image.new("RGB", (100, 40), (255, 0, 0)), cfg)
    assert out.size == (32, 32)
    if mode == "letterbox":  # padded rows keep the fill colour, the middle is the image
        arr = np.asarray(out)
        assert arr[0, 16].tolist() == [0, 0, 0] and arr[16, 16].tolist() == [255, 0, 0]


def test_preprocess_normalizes_with_mean_and_std():
    cfg = PreprocessConfig(size=16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), resize_mode="resize")
    x = preprocess(Image.new("RGB", (16, 16), (255, 255, 255)), cfg)
    assert x.shape == (3, 16, 16) and torch.allclose(x, torch.ones_like(x))


def test_crop_box_clips_and_refuses_boxes_outside():
    img = Image.new("RGB", (50, 40))
    assert crop_box(img, (40, 30, 20, 20)).size == (10, 10)
    assert crop_box(img, (10, 10, 10, 10), pad=0.5).size == (20, 20)
    with pytest.raises(ImageError):
        crop_box(img, (60, 60, 10, 10))
    with pytest.raises(ImageError):
        crop_box(img, (1, 1, 0, 5))
