"""Landscape along the gradient (Santurkar et al. Fig. 4) against closed forms."""

import numpy as np
import pytest
import torch
from torch import nn

from shiftkit.stats import DEFAULT_MULTIPLIERS, landscape_along_gradient
from shiftkit.stats.landscape import step_multipliers

LR = 0.05


class Polynomial(nn.Module):
    """Parameters z = (W, b) spread over two tensors; loss 0.5 z^T A z (+ sum z^4 / 4)."""

    def __init__(self, a, quartic=False):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(2, 3, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
        self.a, self.quartic = a, quartic

    def forward(self):
        z = torch.cat([self.w.flatten(), self.b])
        return 0.5 * z @ self.a @ z + (z**4).sum() / 4 * self.quartic


def symmetric(n=10, seed=4):
    m = np.random.default_rng(seed).normal(size=(n, n))
    return (m + m.T) / 2


def test_quadratic_closed_form():
    a = symmetric()
    model = Polynomial(torch.from_numpy(a))
    z = np.concatenate([model.w.detach().numpy().ravel(), model.b.detach().numpy()])
    land = landscape_along_gradient(model, lambda m: m(), LR)
    g = a @ z
    etas = LR * np.array(DEFAULT_MULTIPLIERS)
    losses = [0.5 * (z - e * g) @ a @ (z - e * g) for e in etas]
    # The gradient changes by exactly eta * A g along the gradient of a quadratic.
    np.testing.assert_allclose(land.etas.numpy(), etas, rtol=1e-15)
    np.testing.assert_allclose(land.loss.numpy(), losses, rtol=1e-10)
    np.testing.assert_allclose(land.grad_pred.numpy(), etas * np.linalg.norm(a @ g), rtol=1e-10)
    beta = np.linalg.norm(a @ g) / np.linalg.norm(g)
    np.testing.assert_allclose(land.beta.numpy(), beta, rtol=1e-10)
    s = land.summary()
    assert s["loss_range"] == pytest.approx(max(losses) - min(losses), rel=1e-10)
    assert s["loss_min"] == pytest.approx(min(losses), rel=1e-10)
    assert s["beta_smooth"] == pytest.approx(beta, rel=1e-10)
    assert s["grad_pred_max"] == pytest.approx(etas[-1] * np.linalg.norm(a @ g), rel=1e-10)
    assert s["grad_pred_min"] == pytest.approx(etas[0] * np.linalg.norm(a @ g), rel=1e-10)
    assert s["loss_at_x"] == pytest.approx(0.5 * z @ a @ z, rel=1e-12)
    assert s["grad_norm"] == pytest.approx(np.linalg.norm(g), rel=1e-12)


def test_quartic_beta_is_the_max_over_step_sizes():
    a = symmetric()
    model = Polynomial(torch.from_numpy(a), quartic=True)
    z = np.concatenate([model.w.detach().numpy().ravel(), model.b.detach().numpy()])
    multipliers = (0.5, 1.0, 4.0)
    land = landscape_along_gradient(model, lambda m: m(), LR, multipliers=multipliers)

    def grad(v):
        return a @ v + v**3

    g = grad(z)
    betas = [
        np.linalg.norm(g - grad(z - LR * m * g)) / (LR * m * np.linalg.norm(g)) for m in multipliers
    ]
    np.testing.assert_allclose(land.beta.numpy(), betas, rtol=1e-10)
    assert land.beta_smooth.item() == pytest.approx(max(betas), rel=1e-10)
    assert max(betas) / min(betas) > 1.01  # the max is over values that differ


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3)
    )


def test_no_side_effects_and_identical_dropout_masks():
    model = mlp()
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))

    def loss_fn(m):
        return nn.functional.cross_entropy(m(x), y)

    for p in model.parameters():
        p.grad = torch.full_like(p, -1.0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    land = landscape_along_gradient(model, loss_fn, 0.1)
    assert torch.equal(torch.get_rng_state(), rng)
    for (name, a), b in zip(state.items(), model.state_dict().values()):
        assert torch.equal(a, b), name  # parameters bit-identical, BN buffers restored
    assert all(torch.equal(p.grad, torch.full_like(p, -1.0)) for p in model.parameters())
    assert land.loss.shape == (8,) and land.beta_smooth.item() > 0
    # A vanishing step changes the gradient by a vanishing amount: every pass drew the
    # same dropout mask (with new masks the change would be of the order of the gradient).
    tiny = landscape_along_gradient(model, loss_fn, 0.1, multipliers=(1e-6,))
    assert tiny.grad_pred.item() < 1e-4 * tiny.grad_norm.item()
    assert tiny.loss_at_x.item() == land.loss_at_x.item()


def test_only_the_given_parameters_move():
    model = mlp()
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    head = list(model[4].parameters())
    land = landscape_along_gradient(
        model, lambda m: nn.functional.cross_entropy(m(x), y), 0.1, params=head
    )
    expected = sum(p.numel() for p in head)
    assert land.grad_norm.item() > 0 and expected == 27
    full = landscape_along_gradient(model, lambda m: nn.functional.cross_entropy(m(x), y), 0.1)
    assert land.grad_norm.item() < full.grad_norm.item()


def test_step_multipliers():
    assert len(DEFAULT_MULTIPLIERS) == 8
    assert DEFAULT_MULTIPLIERS[0] == 0.5 and DEFAULT_MULTIPLIERS[-1] == pytest.approx(
        4.0, rel=1e-15
    )
    ratios = np.diff(np.log(DEFAULT_MULTIPLIERS))
    np.testing.assert_allclose(ratios, np.log(8) / 7, rtol=1e-12)  # log-spaced
    assert step_multipliers(5, 1.0, 3.0, spacing="linear") == (1.0, 1.5, 2.0, 2.5, 3.0)
    assert step_multipliers(1) == (0.5,)
    with pytest.raises(ValueError, match="spacing"):
        step_multipliers(4, spacing="cubic")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lr=0.0), "lr must be a positive number"),
        (dict(lr=float("nan")), "lr must be a positive number"),
        (dict(multipliers=()), "multipliers must be positive"),
        (dict(multipliers=(1.0, -2.0)), "multipliers must be positive"),
        (dict(params=[]), "no trainable parameters"),
    ],
)
def test_bad_arguments(kwargs, match):
    model = Polynomial(torch.eye(10, dtype=torch.float64))
    kwargs = {"lr": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        landscape_along_gradient(model, lambda m: m(), **kwargs)
