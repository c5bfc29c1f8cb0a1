import itertools

import pytest
import torch
from torch import nn

from shiftkit.models import ACTIVATIONS, ARCHITECTURES, NORMS, build_model
from shiftkit.models.norms import GhostBatchNorm

# Tiny sizes so the full grid runs in about a second.
TINY = {
    "paper_mlp": {},
    "mlp": dict(depth=2, width=8),
    "lenet": dict(width=0.5),
    "vgg": dict(depth=11, width=1 / 16),
    "resnet": dict(depth=20, width=0.25),
    "inception": dict(width=0.25),
}


def _grad_check(model, x, num_classes):
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    return out


@pytest.mark.parametrize(
    "arch,norm,activation", list(itertools.product(ARCHITECTURES, NORMS, ACTIVATIONS))
)
def test_every_arch_norm_activation_runs_forward_backward(arch, norm, activation):
    torch.manual_seed(0)
    model = build_model(
        arch, input_shape=(1, 8, 8), num_classes=10, norm=norm, activation=activation, **TINY[arch]
    )
    _grad_check(model, torch.randn(4, 1, 8, 8), 10)
    acts = [m for m in model.modules() if isinstance(m, tuple(ACTIVATIONS.values()))]
    assert acts and all(type(m) is ACTIVATIONS[activation] for m in acts)


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 5, 9)])
def test_input_shapes(arch, shape):
    torch.manual_seed(0)
    model = build_model(arch, input_shape=shape, num_classes=7, norm="batch", **TINY[arch])
    _grad_check(model, torch.randn(4, *shape), 7)
    # Flat inputs (e.g. sklearn digits as 64 columns) are accepted too.
    assert model(torch.randn(4, torch.Size(shape).numel())).shape == (4, 7)


def test_default_activation_is_sigmoid_for_paper_mlp_relu_else():
    paper = build_model("paper_mlp", input_shape=(1, 28, 28), num_classes=10)
    mlp = build_model("mlp", input_shape=(1, 28, 28), num_classes=10)
    assert [type(m) for m in paper.modules() if isinstance(m, nn.Sigmoid)] == [nn.Sigmoid] * 3
    assert sum(isinstance(m, nn.ReLU) for m in mlp.modules()) == 3
    assert not any(isinstance(m, nn.ReLU) and m.inplace for m in mlp.modules())


def test_paper_mlp_is_three_hidden_layers_of_100():
    plain = build_model("paper_mlp", input_shape=(1, 28, 28), num_classes=10)
    linears = [m for m in plain.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (784, 100),
        (100, 100),
        (100, 100),
        (100, 10),
    ]
    assert sum(p.numel() for p in plain.parameters()) == 784 * 100 + 2 * 100 * 100 + 300 + 1010
    # With BN the hidden biases go and gamma/beta come: +600 - 300.
    bn = build_model("paper_mlp", input_shape=(1, 28, 28), num_classes=10, norm="batch")
    assert sum(p.numel() for p in bn.parameters()) == 784 * 100 + 2 * 100 * 100 + 600 + 1010


def test_known_parameter_counts():
    # ResNet-20 of He et al. (2016) has 0.27M parameters; VGG-16 with BN and one linear layer on
    # CIFAR-10 has 14,728,266 with conv biases, minus the 4,224 biases BN makes redundant.
    resnet20 = build_model(
        "resnet", input_shape=(3, 32, 32), num_classes=10, norm="batch", depth=20
    )
    vgg16 = build_model("vgg", input_shape=(3, 32, 32), num_classes=10, norm="batch", depth=16)
    assert sum(p.numel() for p in resnet20.parameters()) == 272_474
    assert sum(p.numel() for p in vgg16.parameters()) == 14_728_266 - 4_224


@pytest.mark.parametrize("depth,blocks", [(20, 9), (32, 15), (56, 27)])
def test_resnet_depth_is_6n_plus_2(depth, blocks):
    model = build_model("resnet", input_shape=(3, 32, 32), num_classes=10, depth=depth, width=0.25)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) == 2 * blocks + 1 == depth - 1  # + the linear layer = depth


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_depth_counts_weight_layers(depth):
    model = build_model("vgg", input_shape=(3, 32, 32), num_classes=10, depth=depth, width=1 / 16)
    weights = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weights) == depth - 2  # one linear classifier instead of VGG's three


def test_inception_block_has_four_branches_with_double_3x3():
    model = build_model("inception", input_shape=(3, 32, 32), num_classes=10, width=0.25)
    block = model.features[1]
    kernels = [
        [m.kernel_size for m in branch.modules() if isinstance(m, nn.Conv2d)]
        for branch in (block.branch1, block.branch3, block.branch33, block.branch_pool)
    ]
    assert kernels == [[(1, 1)], [(1, 1), (3, 3)], [(1, 1), (3, 3), (3, 3)], [(1, 1)]]
    out = block(torch.randn(2, block.branch1.conv.in_channels, 6, 6))
    assert out.shape[1] == block.out_channels


def test_norm_drops_bias_of_preceding_map():
    for norm, has_bias in [
        ("none", True),
        ("noisy_none", True),
        ("batch", False),
        ("layer", False),
        ("group", False),
        ("noisy_batch", False),
    ]:
        model = build_model("lenet", input_shape=(1, 8, 8), num_classes=10, norm=norm)
        maps = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert [m.bias is not None for m in maps[:-1]] == [has_bias] * (len(maps) - 1), norm
        assert maps[-1].bias is not None  # the output layer always has one


def test_dropout_knob():
    model = build_model("mlp", input_shape=(20,), num_classes=3, depth=3, width=8, dropout=0.3)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3] * 3
    vgg = build_model("vgg", input_shape=(3, 8, 8), num_classes=3, width=1 / 16, dropout=0.5)
    assert [m.p for m in vgg.modules() if isinstance(m, nn.Dropout)] == [0.5]


def test_ghost_batch_size_builds_ghost_bn():
    model = build_model(
        "resnet",
        input_shape=(1, 8, 8),
        num_classes=10,
        norm="batch",
        ghost_batch_size=4,
        width=0.25,
    )
    ghosts = [m for m in model.modules() if isinstance(m, GhostBatchNorm)]
    assert len(ghosts) == 21  # stem + 2 per block x 9 + 2 projection shortcuts
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(norm="weird"),
        dict(activation="gelu"),
        dict(init="orthogonal"),
        dict(norm="syncbatch", ghost_batch_size=4),
        dict(norm="layer", ghost_batch_size=4),
        dict(depth=21),
        dict(arch="alexnet"),
    ],
)
def test_misconfiguration_raises_value_error(kwargs):
    arch = kwargs.pop("arch", "resnet")
    with pytest.raises(ValueError):
        build_model(arch, input_shape=(3, 32, 32), num_classes=10, **kwargs)
