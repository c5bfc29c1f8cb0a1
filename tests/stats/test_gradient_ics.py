"""Gradient-based ICS (Santurkar et al. Def. 2.1) against closed forms and a brute-force oracle."""

import copy
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from torch import nn

from shiftkit.stats import gradient_ics, landscape_along_gradient, parameter_snapshot

N, LR = 12, 0.3



def linear_net(widths, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b, bias=False) for a, b in zip(widths, widths[1:])]
    return nn.Sequential(*layers).double()


def sgd_step(model, loss_fn, lr=LR, momentum=0.0):
    """theta_t (snapshot) and one SGD step taken in place."""
    before = parameter_snapshot(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    opt.zero_grad()
    loss_fn(model).backward()
    opt.step()
    return before


def closed_form_grads(ws, x, y):
    """Weight gradients of L = ||X W1^T ... Wk^T - Y||^2 / (2n) (numpy, float64)."""
    hs = [x]
    for w in ws:
        hs.append(hs[-1] @ w.T)
    delta = (hs[-1] - y) / len(x)
    grads = [None] * len(ws)
    for i in reversed(range(len(ws))):
        grads[i] = delta.T @ hs[i]
        delta = delta @ ws[i]
    return grads


def test_three_layer_linear_net_matches_closed_form():
    widths = [3, 5, 4, 2]
    model = linear_net(widths)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, 3, generator=g, dtype=torch.float64)
    y = torch.randn(N, 2, generator=g, dtype=torch.float64)

    def loss_fn(m):
        return ((m(x) - y) ** 2).sum() / (2 * N)

    w_t = [p.detach().numpy().copy() for p in model.parameters()]
    before = sgd_step(model, loss_fn)
    xn, yn = x.numpy(), y.numpy()
    grads = closed_form_grads(w_t, xn, yn)
    w_next = [w - LR * gr for w, gr in zip(w_t, grads)]
    # G' of layer i: layers below at theta_{t+1}, layer i and above at theta_t.
    primed = [closed_form_grads(w_next[:i] + w_t[i:], xn, yn)[i] for i in range(3)]
    np.testing.assert_allclose(primed[1], closed_form_grads([w_next[0], *w_t[1:]], xn, yn)[1])

    result = gradient_ics(model, loss_fn, before)
    assert result.layers == ("0", "1", "2") and result.passes == 3
    for i in range(3):
        a, b = grads[i].ravel(), primed[i].ravel()
        l2 = np.linalg.norm(a - b)
        assert result.l2[i].item() == pytest.approx(l2, rel=1e-10, abs=1e-14)
        assert result.grad_norm[i].item() == pytest.approx(np.linalg.norm(a), rel=1e-10)
        assert result.cos[i].item() == pytest.approx(
            a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-10
        )
        assert result.rel[i].item() == pytest.approx(l2 / np.linalg.norm(a), rel=1e-10, abs=1e-14)
    assert result.l2[0].item() == 0.0 and result.cos[0].item() == pytest.approx(1.0, abs=1e-15)
    assert result.l2[1].item() > 1e-3 and result.l2[2].item() > 1e-3  # the test can fail
    # The model is left at theta_{t+1}.
    for p, w in zip(model.parameters(), w_next):
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-12, atol=1e-15)


class BNDropoutMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.3),
            nn.Linear(6, 3),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


#: Modules below each measured Linear, in forward order (BN affine parameters included).
BELOW = {"net.0": [], "net.4": ["net.0", "net.1"], "net.8": ["net.0", "net.1", "net.4", "net.5"]}


def mlp_case(seed=0):
    torch.manual_seed(seed)
    model = BNDropoutMLP()
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))

    def loss_fn(m):
        return nn.functional.cross_entropy(m(x), y)

    model(x)  # move BN running stats off their initial values
    before = sgd_step(model, loss_fn, lr=0.5, momentum=0.9)
    return model, loss_fn, before


def brute_force(model, loss_fn, before, layer, seed):
    """G and G' of one layer from deep copies loaded with mixed state dicts."""
    after = {k: v.detach().clone() for k, v in model.state_dict().items()}
    grads = []
    for below in ([], BELOW[layer]):
        state = dict(after)  # buffers as now
        for name in before:
            if not any(name.startswith(b + ".") for b in below):
                state[name] = before[name]
        clone = copy.deepcopy(model)
        clone.load_state_dict(state)
        torch.manual_seed(seed)
        loss_fn(clone).backward()
        module = clone.get_submodule(layer)
        grads.append(torch.cat([module.weight.grad.flatten(), module.bias.grad.flatten()]).double())
    return grads


def test_mlp_with_batchnorm_and_dropout_matches_brute_force():
    model, loss_fn, before = mlp_case()
    result = gradient_ics(model, loss_fn, before, seed=7)
    assert result.layers == ("net.0", "net.4", "net.8")
    assert result.order == ("net.0", "net.1", "net.4", "net.5", "net.8")
    for i, layer in enumerate(result.layers):
        g, g_after = brute_force(model, loss_fn, before, layer, seed=7)
        assert result.grad_norm[i].item() == pytest.approx(g.norm().item(), rel=1e-6)
        assert result.l2[i].item() == pytest.approx((g - g_after).norm().item(), rel=1e-6, abs=1e-9)
        cos = torch.nn.functional.cosine_similarity(g, g_after, dim=0).item()
        assert result.cos[i].item() == pytest.approx(cos, rel=1e-6)
    assert result.l2[0].item() == 0.0 and min(result.l2[1:].tolist()) > 1e-4


def test_first_layer_is_exact_and_unchanged_parameters_give_zero_shift_despite_dropout():
    model, loss_fn, before = mlp_case()
    # Measured alone, the first layer needs one pass: nothing lies below it.
    first = gradient_ics(model, loss_fn, before, layers=["net.0"])
    assert (
        first.passes == 1
        and first.l2.item() == 0.0
        and first.cos.item() == pytest.approx(1.0, abs=1e-12)
    )
    # theta_{t+1} = theta_t: every G' pass replays the G pass bit for bit (same dropout masks).
    still = gradient_ics(model, loss_fn, before, params_after=before)
    assert still.l2.tolist() == [0.0, 0.0, 0.0] and min(still.grad_norm.tolist()) > 0
    # ... but a different seed per pass would not: the seed matters.
    other = gradient_ics(model, loss_fn, before, params_after=before, seed=1)
    assert not torch.equal(other.grad_norm, still.grad_norm)


def test_no_side_effects_and_a_subset_of_layers():
    model, loss_fn, before = mlp_case()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.25)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    forwards = []
    model.register_forward_pre_hook(lambda m, a: forwards.append(1))

    full = gradient_ics(model, loss_fn, before)
    assert full.passes == len(forwards) == 3  # 1 + L, less the first layer's pass
    sub = gradient_ics(model, loss_fn, before, layers=["net.8"])
    assert sub.passes == 2 and sub.l2.item() == full.l2[2].item()

    assert torch.equal(torch.get_rng_state(), rng)
    for (name, a), b in zip(state.items(), model.state_dict().values()):
        assert torch.equal(a, b), name  # parameters at theta_{t+1}, BN buffers as they were
    assert all(torch.equal(p.grad, torch.full_like(p, 0.25)) for p in model.parameters())
    assert model.training


def test_explicit_order_changes_what_counts_as_below():
    model, loss_fn, before = mlp_case()
    default = gradient_ics(model, loss_fn, before, layers=["net.4"])
    # With BN left out of the order, net.1's affine update is not part of layer net.4's G'.
    weights_only = gradient_ics(
        model, loss_fn, before, layers=["net.4"], order=["net.0", "net.4", "net.8"]
    )
    g, _ = brute_force(model, loss_fn, before, "net.4", seed=0)
    assert weights_only.grad_norm.item() == pytest.approx(g.norm().item(), rel=1e-6)
    assert weights_only.l2.item() != default.l2.item()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layers=["net.2"]), "owns no trainable parameter"),
        (dict(layers=[]), "no layer to measure"),
        (dict(order=["net.2"]), "own no parameters"),
        (dict(order=["net.0"]), "lacks \\['net.4', 'net.8'\\]"),
        (dict(world_size=0), "world_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    model, loss_fn, before = mlp_case()
    with pytest.raises(ValueError, match=match):
        gradient_ics(model, loss_fn, before, **kwargs)


def test_missing_parameters_and_non_scalar_loss():
    model, loss_fn, before = mlp_case()
    with pytest.raises(ValueError, match="params_before lacks parameters \\['net.0.weight'\\]"):
        gradient_ics(model, loss_fn, {k: v for k, v in before.items() if k != "net.0.weight"})
    with pytest.raises(ValueError, match="scalar"):
        gradient_ics(model, lambda m: m(torch.randn(4, 5)), before)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="never called"):
        gradient_ics(model, lambda m: m.net[4](torch.randn(4, 8)).sum(), before)
    assert all(torch.equal(a, b) for a, b in zip(state.values(), model.state_dict().values()))


# ---------------------------------------------------------------------------- two ranks
# The real collective (gloo, two processes) is exercised end to end, monitors included, by
# tests/monitor/test_gradient_ics_callback.py; here two threads share an in-memory
# all_reduce, which tests the arithmetic of the DDP choice exactly and in milliseconds.


class ThreadAllReduce:
    """An in-place SUM all_reduce between ``world`` threads (same summation order on each)."""

    def __init__(self, world):
        self.barrier, self.slots = threading.Barrier(world, timeout=30), [None] * world

    def rank(self, r):
        def all_reduce(tensor, op):
            assert op == "sum"
            self.slots[r] = tensor.clone()
            self.barrier.wait()
            total = sum(self.slots[1:], self.slots[0])
            self.barrier.wait()
            tensor.copy_(total)

        return all_reduce


def test_two_ranks_equal_one_process_on_the_global_batch():
    """The DDP choice: G and G' (and the landscape's gradients) averaged across ranks."""
    model = linear_net([3, 5, 4, 2])
    g = torch.Generator().manual_seed(2)
    x = torch.randn(N, 3, generator=g, dtype=torch.float64)
    y = torch.randn(N, 2, generator=g, dtype=torch.float64)

    def loss_on(rows):
        return lambda m: ((m(x[rows]) - y[rows]) ** 2).mean()

    before = sgd_step(model, loss_on(slice(None)))
    one = gradient_ics(model, loss_on(slice(None)), before)
    land = landscape_along_gradient(model, loss_on(slice(None)), 0.1)
    reduce = ThreadAllReduce(2)

    def rank(r):
        local = copy.deepcopy(model)
        loss_fn, kw = loss_on(slice(r * N // 2, (r + 1) * N // 2)), {"world_size": 2}
        ics = gradient_ics(local, loss_fn, before, all_reduce=reduce.rank(r), **kw)
        return ics, landscape_along_gradient(local, loss_fn, 0.1, all_reduce=reduce.rank(r), **kw)

    with ThreadPoolExecutor(2) as pool:
        ranks = list(pool.map(rank, (0, 1)))
    (ics0, land0), (ics1, land1) = ranks
    assert torch.equal(ics0.l2, ics1.l2) and torch.equal(land0.beta, land1.beta)  # ranks agree
    for a, b in ((ics0.l2, one.l2), (ics0.cos, one.cos), (ics0.grad_norm, one.grad_norm)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    for a, b in (
        (land0.loss, land.loss),
        (land0.grad_pred, land.grad_pred),
        (land0.beta, land.beta),
    ):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-14)
    # Averaging the norms instead would not give the global batch's numbers.
    halves = [
        gradient_ics(copy.deepcopy(model), loss_on(slice(r * 6, r * 6 + 6)), before) for r in (0, 1)
    ]
    assert abs((halves[0].l2 + halves[1].l2)[1].item() / 2 - one.l2[1].item()) > 1e-6
