import math

import numpy as np
import pytest
import torch

from reid_hub.errors import ConfigError
from reid_hub.training.losses import SubCenterArcFace, dynamic_margins


def test_margins_follow_the_formula_and_decrease_with_class_size():
    counts = [1, 2, 5, 16, 100]
    m = dynamic_margins(counts, a=0.5, b=0.05).numpy()
    assert np.allclose(m, 0.5 * np.asarray(counts, float) ** -0.25 + 0.05, atol=1e-6)
    assert np.all(np.diff(m) < 0)


def test_margins_reject_bad_counts():
    with pytest.raises(ConfigError):
        dynamic_margins([])
    with pytest.raises(ConfigError):
        dynamic_margins([3, 0])


def test_true_class_logit_is_cos_theta_plus_margin():
    torch.manual_seed(0)
    head = SubCenterArcFace(8, 4, margins=torch.tensor([0.1, 0.2, 0.3, 0.4]), k=2, s=10.0)
    x = torch.randn(6, 8)
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    logits = head(x, y).detach()
    cos = head.cosine(x).detach()
    for i in range(6):
        theta = math.acos(float(cos[i, y[i]]))
        m = float(head.margins[y[i]])
        if theta + m < math.pi:
            assert float(logits[i, y[i]]) == pytest.approx(10.0 * math.cos(theta + m), abs=1e-4)
        others = [c for c in range(4) if c != y[i]]
        assert torch.allclose(logits[i, others], 10.0 * cos[i, others], atol=1e-5)


def test_cosine_takes_the_best_sub_centre():
    head = SubCenterArcFace(3, 2, k=3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1],  # class 0
                                        [-1, 0, 0], [0, -1, 0], [0, 0, -1]]))  # class 1
    cos = head.cosine(torch.tensor([[0.0, 0.0, 2.0], [0.0, -3.0, 0.0]]))
    assert cos[0, 0].item() == pytest.approx(1.0) and cos[0, 1].item() == pytest.approx(0.0, abs=1e-6)
    assert cos[1, 1].item() == pytest.approx(1.0) and cos[1, 0].item() == pytest.approx(0.0, abs=1e-6)


def test_margin_makes_the_loss_larger_and_training_lowers_it():
    torch.manual_seed(0)
    x = torch.randn(32, 16)
    y = torch.randint(0, 4, (32,))
    plain = SubCenterArcFace(16, 4, margins=0.0, k=2)
    margin = SubCenterArcFace(16, 4, margins=0.4, k=2)
    margin.load_state_dict({**plain.state_dict(), "margins": margin.margins})
    assert margin.loss(x, y) > plain.loss(x, y)
    opt = torch.optim.SGD(margin.parameters(), lr=0.5)
    first = margin.loss(x, y).item()
    for _ in range(50):
        opt.zero_grad()
        loss = margin.loss(x, y)
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.5


def test_wrong_margin_count_is_refused():
    with pytest.raises(ConfigError):
        SubCenterArcFace(8, 3, margins=torch.tensor([0.1, 0.2]))
