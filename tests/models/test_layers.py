import math

import pytest
import torch
from torch import nn

from shiftkit.models import LayerKnobs, build_model, init_weights
from shiftkit.models.layers import group_count

EPS = 1e-5  # BatchNorm's eps: the normalized variance is var / (var + eps), not exactly 1


def _capture(model, types, pre=False):
    """Record the output (or, with pre=True, the input) of every module of the given types."""
    seen = []
    for m in model.modules():
        if isinstance(m, types):
            if pre:
                m.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
            else:
                m.register_forward_hook(lambda mod, args, out: seen.append(out))
    return seen


@pytest.mark.parametrize(
    "arch,shape,size,bn_types",
    [
        ("mlp", (20,), dict(depth=3, width=16), [nn.BatchNorm1d] * 3),
        ("lenet", (2, 12, 12), dict(width=1.0), [nn.BatchNorm2d] * 2 + [nn.BatchNorm1d] * 2),
    ],
)
def test_batch_norm_normalizes_per_unit_and_feeds_the_activation(arch, shape, size, bn_types):
    torch.manual_seed(0)
    model = build_model(
        arch, input_shape=shape, num_classes=5, norm="batch", activation="sigmoid", **size
    ).train()
    bn_type = nn.modules.batchnorm._BatchNorm
    assert [type(m) for m in model.modules() if isinstance(m, bn_type)] == bn_types
    for bn in model.modules():
        if isinstance(bn, bn_type):
            nn.init.ones_(bn.weight)
            nn.init.zeros_(bn.bias)
    bn_in = _capture(model, bn_type, pre=True)
    bn_out = _capture(model, bn_type)
    act_in = _capture(model, nn.Sigmoid, pre=True)
    x = 3.0 * torch.randn(32, *shape) + 2.0  # far from normalized on the way in
    model(x)
    assert len(bn_out) == len(act_in) > 0
    for u, y, a in zip(bn_in, bn_out, act_in):
        assert a is y  # BN(Wu) is exactly what the nonlinearity gets
        dims = [0, 2, 3] if y.dim() == 4 else [0]  # channels pool over batch x H x W
        mean, var = y.mean(dims), y.var(dims, unbiased=False)
        assert mean.abs().max() < 1e-5
        # Variance 1 up to eps: exactly v / (v + eps) for the input's biased variance v (the fc
        # layers after sigmoids here have v ~ 1e-3, so eps shows at the 1% level).
        v = u.var(dims, unbiased=False)
        torch.testing.assert_close(var, v / (v + EPS), rtol=1e-4, atol=0)
    # Eval mode uses running statistics instead: the output is no longer exactly normalized.
    model.eval()
    bn_out.clear()
    model(x)
    assert bn_out[0].mean([0, 2, 3] if bn_out[0].dim() == 4 else [0]).abs().max() > 1e-2


@pytest.mark.parametrize(
    "norm,spatial,expected",
    [
        ("layer", False, nn.LayerNorm),
        ("layer", True, nn.GroupNorm),
        ("group", False, nn.GroupNorm),
        ("group", True, nn.GroupNorm),
    ],
)
def test_layer_and_group_norm_act_on_features(norm, spatial, expected):
    layer = LayerKnobs(norm=norm).make_norm(12, spatial)
    assert type(layer) is expected
    x = 5 * torch.randn(6, 12, 3, 3) + 1 if spatial else 5 * torch.randn(6, 12) + 1
    y = layer(x)
    groups = 1 if norm == "layer" else group_count(12)
    per_group = y.reshape(6, groups, -1)  # each sample's units (x space), in groups
    v = x.reshape(6, groups, -1).var(-1, unbiased=False)
    assert per_group.mean(-1).abs().max() < 1e-5
    torch.testing.assert_close(per_group.var(-1, unbiased=False), v / (v + EPS), rtol=1e-4, atol=0)


def test_group_count_divides_and_leaves_two_per_group():
    for units in range(1, 130):
        g = group_count(units)
        assert units % g == 0 and g <= 32
        assert units == 1 or units // g >= 2
    assert [group_count(c) for c in (8, 16, 64, 96, 7)] == [4, 8, 32, 32, 1]


@pytest.mark.parametrize("arch", ["mlp", "resnet"])
@pytest.mark.parametrize("init", ["default", "normal", "kaiming"])
def test_init_scale_multiplies_weights_exactly(arch, init):
    def build(scale):
        torch.manual_seed(3)
        return build_model(
            arch,
            input_shape=(3, 8, 8),
            num_classes=10,
            norm="batch",
            init=init,
            init_scale=scale,
            width=0.25 if arch == "resnet" else 16,
        )

    base, scaled = build(1.0), build(7.5)
    n_weights = 0
    for (name, p), (_, q) in zip(base.named_parameters(), scaled.named_parameters()):
        is_map_weight = name.endswith("weight") and p.dim() > 1
        expected = p * 7.5 if is_map_weight else p  # norm gammas/betas and biases untouched
        torch.testing.assert_close(q, expected, rtol=1e-6, atol=0, msg=name)
        n_weights += is_map_weight
        if is_map_weight:
            assert math.isclose(q.std().item(), 7.5 * p.std().item(), rel_tol=1e-5)
    assert n_weights > 3


def test_normal_init_has_the_requested_std():
    torch.manual_seed(0)
    net = build_model(
        "paper_mlp", input_shape=(1, 28, 28), num_classes=10, init="normal", init_std=0.01
    )
    first = net.hidden[0].linear
    # 78,400 draws: the sample std is within 0.3% of 0.01 (1/sqrt(2n)), allow 2%.
    assert first.weight.std().item() == pytest.approx(0.01, rel=0.02)
    assert abs(first.weight.mean().item()) < 4 * 0.01 / math.sqrt(first.weight.numel())
    assert all((m.bias == 0).all() for m in net.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize(
    "scheme,std",
    [
        ("xavier", math.sqrt(2 / (784 + 100))),
        ("kaiming", math.sqrt(2 / 784)),
        ("default", 1 / math.sqrt(3 * 784)),  # torch's U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    ],
)
def test_init_schemes_have_their_std(scheme, std):
    torch.manual_seed(0)
    layer = init_weights(nn.Sequential(nn.Linear(784, 100)), scheme)[0]
    assert layer.weight.std().item() == pytest.approx(std, rel=0.02)
