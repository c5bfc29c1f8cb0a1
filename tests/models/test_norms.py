import math

import pytest
import torch
from scipy import stats
from torch import nn

from shiftkit.models import BatchNoise, GhostBatchNorm, NoisyBatchNorm, build_model


def test_noise_parameters_follow_the_stated_distributions():
    torch.manual_seed(0)
    noise = BatchNoise()
    steps, per_step = 4000, 64
    draws = [noise.sample((per_step,)) for _ in range(steps)]
    s = torch.stack([d[0] for d in draws]).double()
    m = torch.stack([d[1] for d in draws]).double()
    mu = torch.stack([d[2] for d in draws]).double()
    sigma = torch.stack([d[3] for d in draws]).double()

    # mu_t ~ U(-0.5, 0.5): range, mean 0 and variance 1/12 within 4 standard errors, KS.
    assert mu.min() >= -0.5 and mu.max() <= 0.5
    assert abs(mu.mean().item()) < 4 * math.sqrt(1 / 12 / steps)
    se_var = math.sqrt((1 / 80 - 1 / 144) / steps)  # (mu4 - sigma^4) / n for U(-1/2, 1/2)
    assert abs(mu.var().item() - 1 / 12) < 4 * se_var
    assert stats.kstest(mu.numpy(), stats.uniform(-0.5, 1.0).cdf).pvalue > 1e-3

    # sigma_t ~ U(1, 1.25).
    assert sigma.min() >= 1.0 and sigma.max() <= 1.25
    assert stats.kstest(sigma.numpy(), stats.uniform(1.0, 0.25).cdf).pvalue > 1e-3

    # m ~ U(mu_t - 0.1, mu_t + 0.1), per sample/activation.
    dm = (m - mu[:, None]).flatten()
    assert dm.abs().max() <= 0.1 + 1e-6
    assert stats.kstest(dm.numpy(), stats.uniform(-0.1, 0.2).cdf).pvalue > 1e-3

    # s ~ N(sigma_t, 0.1): standard deviation 0.1 within 4 standard errors (0.1 / sqrt(2n)).
    ds = (s - sigma[:, None]).flatten()
    assert abs(ds.std().item() - 0.1) < 4 * 0.1 / math.sqrt(2 * ds.numel())
    assert abs(ds.mean().item()) < 4 * 0.1 / math.sqrt(ds.numel())
    assert stats.kstest(ds.numpy(), stats.norm(0, 0.1).cdf).pvalue > 1e-3
    # ... and a KS test on this sample size would notice a wrong spread.
    assert stats.kstest(ds.numpy(), stats.norm(0, 0.12).cdf).pvalue < 1e-6


def test_noise_forward_is_s_a_plus_m_resampled_each_step_and_identity_in_eval():
    noise = BatchNoise()
    a = torch.randn(8, 5, 3, 3)
    torch.manual_seed(1)
    s, m, mu, sigma = noise.sample(a.shape)
    torch.manual_seed(1)
    out = noise(a)
    torch.testing.assert_close(out, s * a + m)
    assert noise.last_mu.item() == mu.item() and noise.last_sigma.item() == sigma.item()
    noise(a)
    assert noise.last_mu.item() != mu.item()  # new mu_t next step
    a.requires_grad_()
    torch.manual_seed(1)
    noise(a).sum().backward()
    torch.testing.assert_close(a.grad, s)  # the noise itself is a constant
    noise.eval()
    assert torch.equal(noise(a), a)


def test_noisy_batch_norm_noise_follows_bn_and_precedes_activation():
    torch.manual_seed(0)
    model = build_model(
        "mlp",
        input_shape=(10,),
        num_classes=3,
        depth=2,
        width=200,
        norm="noisy_batch",
        activation="tanh",
    ).train()
    layers = [m for m in model.modules() if isinstance(m, NoisyBatchNorm)]
    assert len(layers) == 2 and all(isinstance(m.bn, nn.BatchNorm1d) for m in layers)
    act_in = []
    for m in model.modules():
        if isinstance(m, nn.Tanh):
            m.register_forward_pre_hook(lambda mod, args: act_in.append(args[0]))
    model(5 * torch.randn(256, 10) + 3)
    mus = [m.noise.last_mu.item() for m in layers]
    assert mus[0] != mus[1]  # one draw per layer
    for a, layer in zip(act_in, layers):
        # BN output has mean 0, var 1 per unit, so s*a+m has mean mu_t and
        # variance E[s^2] + Var(m) = sigma_t^2 + 0.1^2 + 0.2^2/12.
        sigma = layer.noise.last_sigma.item()
        assert abs(a.mean().item() - layer.noise.last_mu.item()) < 0.02
        assert a.var().item() == pytest.approx(sigma**2 + 0.01 + 0.04 / 12, rel=0.03)
    # In eval mode the network is the plain BN network.
    model.eval()
    x = torch.randn(7, 10)
    expected = x
    for block in model.hidden:
        expected = block.act(block.norm.bn(block.linear(expected)))
    torch.testing.assert_close(model(x), model.head(expected))


def test_noisy_none_is_the_noise_without_normalization():
    model = build_model(
        "mlp", input_shape=(10,), num_classes=3, depth=2, width=8, norm="noisy_none"
    )
    assert [type(m) for m in model.hidden[0]] == [nn.Linear, BatchNoise, nn.ReLU]
    assert model.hidden[0].linear.bias is not None
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _halves_reference(x, groups, weight, bias):
    """Plain BN run separately on each group of the batch (what per-device BN does)."""
    outs, bns = [], []
    for g in groups:
        bn = (nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d)(x.size(1)).double()
        with torch.no_grad():
            bn.weight.copy_(weight)
            bn.bias.copy_(bias)
        outs.append(bn(g))
        bns.append(bn)
    return torch.cat(outs), bns


@pytest.mark.parametrize(
    "shape,ghost,sizes",
    [
        ((8, 6), 4, [4, 4]),
        ((8, 3, 4, 4), 4, [4, 4]),
        ((10, 3, 2, 2), 4, [4, 4, 2]),
    ],
)
def test_ghost_bn_equals_plain_bn_on_each_group(shape, ghost, sizes):
    torch.manual_seed(0)
    x = (3 * torch.randn(*shape) + 1).double().requires_grad_()
    ghost_bn = GhostBatchNorm(shape[1], ghost_batch_size=ghost).double()
    with torch.no_grad():
        ghost_bn.weight.uniform_(0.5, 2)
        ghost_bn.bias.normal_()
    upstream = torch.randn(*shape, dtype=torch.double)
    out = ghost_bn(x)
    (out * upstream).sum().backward()

    x_ref = x.detach().clone().requires_grad_()
    ref, bns = _halves_reference(
        x_ref, x_ref.split(sizes), ghost_bn.weight.detach(), ghost_bn.bias.detach()
    )
    (ref * upstream).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ghost_bn.weight.grad, sum(bn.weight.grad for bn in bns))
    torch.testing.assert_close(ghost_bn.bias.grad, sum(bn.bias.grad for bn in bns))
    # Running statistics: the average of what each group's BN tracked.
    torch.testing.assert_close(ghost_bn.running_mean, sum(bn.running_mean for bn in bns) / len(bns))
    torch.testing.assert_close(ghost_bn.running_var, sum(bn.running_var for bn in bns) / len(bns))
    # And it is not plain BN over the whole batch.
    plain, _ = _halves_reference(
        x_ref.detach(), [x_ref.detach()], ghost_bn.weight.detach(), ghost_bn.bias.detach()
    )
    assert (plain - out).abs().max() > 1e-3


def test_ghost_bn_eval_uses_running_stats_like_batchnorm():
    torch.manual_seed(0)
    ghost, plain = GhostBatchNorm(4, ghost_batch_size=2), nn.BatchNorm1d(4)
    for bn in (ghost, plain):
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    plain.load_state_dict(ghost.state_dict())
    x = torch.randn(6, 4)
    torch.testing.assert_close(ghost.eval()(x), plain.eval()(x))
