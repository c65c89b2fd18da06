"""The architect against exact autograd on a tiny float64 model with two mixed-op edges."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from emodarts_core.config import SearchConfig
from emodarts_core.search.architect import Architect


class TinyMixed(nn.Module):
    """Linear -> (BN) -> two chained mixed-op edges over {tanh, identity, silu} -> dropout -> linear."""

    def __init__(self, dropout: float = 0.0, bn: bool = False) -> None:
        super().__init__()
        self.lin1 = nn.Linear(5, 6)
        self.bn = nn.BatchNorm1d(6, affine=False) if bn else nn.Identity()
        self.lin2 = nn.Linear(6, 3)
        self.drop = nn.Dropout(dropout)
        self.alpha = nn.Parameter(0.3 * torch.randn(2, 3))

    @staticmethod
    def _edge(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return w[0] * torch.tanh(h) + w[1] * h + w[2] * F.silu(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.lin1(x))
        w = torch.softmax(self.alpha, dim=-1)
        h = self._edge(self._edge(h, w[0]), w[1])
        return self.lin2(self.drop(h))

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self(x), y)

    def weights(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n != "alpha"]

    def alphas(self) -> list[nn.Parameter]:
        return [self.alpha]


def _setup(dropout: float = 0.0, bn: bool = False, order: str = "second", seed: int = 0):
    torch.manual_seed(seed)
    net = TinyMixed(dropout, bn).double()
    xt, xv = torch.randn(16, 5, dtype=torch.float64), torch.randn(16, 5, dtype=torch.float64)
    yt, yv = torch.randint(0, 3, (16,)), torch.randint(0, 3, (16,))
    w_opt = torch.optim.SGD(net.weights(), lr=0.5, momentum=0.9, weight_decay=3e-4)
    # one real weight step so that the momentum buffers exist and are non-zero
    w_opt.zero_grad()
    net.loss(xt, yt).backward()
    w_opt.step()
    net.alpha.grad = None
    arch = Architect(net, SearchConfig(order=order))
    return net, arch, w_opt, (xt, yt, xv, yv)


def _exact_unrolled_grad(net: TinyMixed, w_opt, data, xi: float,
                         seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """d/dalpha L_val(w - xi * (mu*buf + grad_w L_trn + wd*w), alpha) by double backward.

    Also returns the gradient at w' with w' held fixed (the "first order at w'" part), so the
    test can check the second-order term is large compared with the approximation error.
    """
    xt, yt, xv, yv = data
    names = [n for n, _ in net.named_parameters() if n != "alpha"]
    w = {n: p.detach().clone().requires_grad_() for n, p in net.named_parameters() if n != "alpha"}
    alpha = net.alpha.detach().clone().requires_grad_()
    group = w_opt.param_groups[0]
    mu, wd = group["momentum"], group["weight_decay"]
    bufs = {n: w_opt.state[p]["momentum_buffer"] for n, p in zip(names, net.weights())}

    def loss(params, a, x, y):
        return F.cross_entropy(functional_call(net, {**params, "alpha": a}, (x,)), y)

    torch.manual_seed(seed)
    g = torch.autograd.grad(loss(w, alpha, xt, yt), list(w.values()), create_graph=True)
    w_unrolled = {n: w[n] - xi * (mu * bufs[n] + gn + wd * w[n]) for n, gn in zip(names, g)}
    l_val = loss(w_unrolled, alpha, xv, yv)
    (exact,) = torch.autograd.grad(l_val, alpha, retain_graph=True)
    fixed = {n: t.detach() for n, t in w_unrolled.items()}
    torch.manual_seed(seed)
    loss(w, alpha, xt, yt)  # advance the generator exactly as above
    (at_w_prime,) = torch.autograd.grad(loss(fixed, alpha, xv, yv), alpha)
    return exact, at_w_prime


@pytest.mark.parametrize("dropout,bn", [(0.0, False), (0.3, True)])
def test_second_order_matches_exact_autograd(dropout: float, bn: bool) -> None:
    net, arch, w_opt, data = _setup(dropout, bn)
    xi = 0.5
    torch.manual_seed(123)
    (grad,), _ = arch.alpha_gradients(*data, w_lr=xi, w_optimizer=w_opt)
    exact, at_w_prime = _exact_unrolled_grad(net, w_opt, data, xi, seed=123)
    second_order_term = (exact - at_w_prime).norm()
    error = (grad - exact).norm()
    assert second_order_term > 1e-3 * exact.norm()  # the test is sensitive to the HVP term
    assert error < 1e-3 * second_order_term          # ... and the HVP reproduces it closely
    # central difference with eps * ||dw|| = 0.01: truncation error ~1e-4 of the HVP term
    torch.testing.assert_close(grad, exact, rtol=1e-4, atol=1e-9)


def test_first_order_is_plain_validation_gradient() -> None:
    net, arch, w_opt, data = _setup(order="first")
    xt, yt, xv, yv = data
    (grad,), loss = arch.alpha_gradients(*data, w_lr=0.5, w_optimizer=w_opt)
    (expected,) = torch.autograd.grad(net.loss(xv, yv), net.alpha)
    torch.testing.assert_close(grad, expected, rtol=0, atol=0)
    with torch.no_grad():
        assert loss == pytest.approx(net.loss(xv, yv).item())


@pytest.mark.parametrize("order", ["first", "second"])
def test_step_moves_only_alphas_with_adam(order: str) -> None:
    net, arch, w_opt, data = _setup(dropout=0.3, bn=True, order=order)
    weights_before = [p.detach().clone() for p in net.weights()]
    buffers_before = [b.detach().clone() for b in net.buffers()]
    grads_before = [None if p.grad is None else p.grad.clone() for p in net.weights()]
    momentum_before = [w_opt.state[p]["momentum_buffer"].clone() for p in net.weights()]
    alpha_before = net.alpha.detach().clone()

    torch.manual_seed(7)
    (grad,), _ = arch.alpha_gradients(*data, w_lr=0.5, w_optimizer=w_opt)
    torch.manual_seed(7)
    loss = arch.step(*data, w_lr=0.5, w_optimizer=w_opt)
    assert isinstance(loss, float) and loss > 0

    for before, p in zip(weights_before, net.weights()):
        assert torch.equal(before, p.detach())          # bitwise restore
    for before, b in zip(buffers_before, net.buffers()):
        assert torch.equal(before, b)
    for before, p in zip(grads_before, net.weights()):
        assert (before is None and p.grad is None) or torch.equal(before, p.grad)
    for before, p in zip(momentum_before, net.weights()):
        assert torch.equal(before, w_opt.state[p]["momentum_buffer"])

    # first Adam step from zero state: alpha moves by lr * (g + wd*a) / (|g + wd*a| + eps) per entry
    search = arch.search
    g = grad + search.alpha_weight_decay * alpha_before
    expected = alpha_before - search.alpha_lr * g / (g.abs() + 1e-8)
    torch.testing.assert_close(net.alpha.detach(), expected, rtol=1e-6, atol=1e-10)
    assert arch.optimizer.defaults["betas"] == search.alpha_betas
    assert {id(p) for p in arch.optimizer.param_groups[0]["params"]} == {id(net.alpha)}


def test_repeatable_and_generator_advances_like_two_forwards() -> None:
    net, arch, w_opt, data = _setup(dropout=0.3)
    torch.manual_seed(11)
    g1, _ = arch.alpha_gradients(*data, w_lr=0.5, w_optimizer=w_opt)
    after_arch = torch.rand(4)
    torch.manual_seed(11)
    g2, _ = arch.alpha_gradients(*data, w_lr=0.5, w_optimizer=w_opt)
    assert torch.equal(g1[0], g2[0])
    torch.manual_seed(11)
    xt, yt, xv, yv = data
    with torch.no_grad():
        net.loss(xt, yt), net.loss(xv, yv)
    assert torch.equal(after_arch, torch.rand(4))


def test_state_dict_roundtrip_through_torch_save() -> None:
    net, arch, w_opt, data = _setup()
    arch.step(*data, w_lr=0.1, w_optimizer=w_opt)
    buf = io.BytesIO()
    torch.save(arch.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    net2, arch2, _, _ = _setup()
    arch2.load_state_dict(state)
    s1, s2 = arch.optimizer.state_dict()["state"], arch2.optimizer.state_dict()["state"]
    assert torch.equal(s1[0]["exp_avg"], s2[0]["exp_avg"]) and int(s2[0]["step"]) == 1
    with pytest.raises(ValueError, match="order"):
        Architect(net2, SearchConfig(order="first")).load_state_dict(state)


def test_bad_inputs_are_named() -> None:
    net, _, w_opt, data = _setup()
    with pytest.raises(ValueError, match="order"):
        Architect(net, SearchConfig(order="third"))
    with pytest.raises(TypeError, match="no method weights"):
        Architect(nn.Linear(2, 2), SearchConfig())
    arch = Architect(net, SearchConfig())
    with pytest.raises(ValueError, match="w_optimizer"):
        other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
        arch.step(*data, w_lr=0.1, w_optimizer=other)
