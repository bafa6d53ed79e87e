import numpy as np
import pytest
import torch
from PIL import Image

from reid_hub.data.imaging import PreprocessConfig, crop_box, load_image, preprocess, resize_for_model
from reid_hub.errors import ImageError


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
    import reid_hub.data.imaging as imaging

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


def test_center_crop_keeps_the_centre_and_never_scales_a_thin_image_whole():
    """A 50,000 x 1 upload scaled whole to the short side would be a 12.8-megapixel-wide intermediate; the crop is
    taken from the original instead, and it is the centre that survives."""
    cfg = PreprocessConfig(size=32, resize_mode="center_crop", crop_pct=0.875)
    arr = np.zeros((1, 50000, 3), np.uint8)
    arr[:, 24990:25010] = (0, 255, 0)  # the middle 20 pixels are green
    out = np.asarray(resize_for_model(Image.fromarray(arr), cfg))
    assert out.shape == (32, 32, 3) and out[:, :, 1].min() > 200 and out[:, :, 0].max() < 50
    wide = Image.new("RGB", (200, 100), (0, 0, 255))
    wide.paste((255, 0, 0), (0, 0, 40, 100))  # a red band at the left edge is cropped away
    out = np.asarray(resize_for_model(wide, cfg))
    assert out[:, :, 0].max() < 30 and out[:, :, 2].min() > 220


def test_evidence_picture_of_a_thin_image_stays_small():
    from reid_hub.scoring.matchers import create_matcher, draw_matches

    m = create_matcher("sift")
    thin, normal = Image.new("RGB", (50000, 1), (90, 90, 90)), Image.new("RGB", (64, 48), (200, 10, 10))
    pic = draw_matches(thin, normal, m.extract(thin), m.extract(normal), m.match(m.extract(thin), m.extract(normal)),
                       height=320)
    assert pic.height == 320 and pic.width <= 4 * 320 + 8 + round(64 * 320 / 48)
