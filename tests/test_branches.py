"""Branches run side by side (emodarts_core.fast.branches) and the search cells that use them."""
from __future__ import annotations

import copy
import threading

import pytest
import torch
from torch import nn

from emodarts_core.config import SearchSpaceConfig
from emodarts_core.fast import branches
from emodarts_core.fast.branches import Branch, run_branches, set_branch_threads
from emodarts_core.nas.supernet import SuperNet


@pytest.fixture
def threads():
    """Set the branch threads for one test; back to 1 afterwards."""
    yield set_branch_threads
    set_branch_threads(1)


def _two_branch_problem(dtype=torch.float64):
    torch.manual_seed(0)
    lin_a, lin_b = nn.Linear(6, 4).to(dtype), nn.Linear(6, 4).to(dtype)
    x = torch.randn(5, 6, dtype=dtype, requires_grad=True)
    w = torch.rand(2, dtype=dtype, requires_grad=True)
    fns = [Branch(lambda x, w: w[0] * torch.tanh(lin_a(x)), tuple(lin_a.parameters())),
           Branch(lambda x, w: w[1] * lin_b(x).pow(2), tuple(lin_b.parameters()))]
    params = [*lin_a.parameters(), *lin_b.parameters()]
    return fns, x, w, params


@pytest.mark.parametrize("n_threads", [1, 2])
def test_run_branches_gives_the_sum_and_its_gradients(threads, n_threads):
    threads(n_threads)
    fns, x, w, params = _two_branch_problem()
    target = torch.randn(5, 4, dtype=torch.float64)
    out = run_branches(fns, [x, w])
    expected = fns[0].fn(x, w) + fns[1].fn(x, w)
    assert torch.equal(out, expected)
    got = torch.autograd.grad((out * target).sum(), [x, w, *params])
    want = torch.autograd.grad((expected * target).sum(), [x, w, *params])
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    out = run_branches(fns, [x, w])                   # the branches' graphs live once
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="second backward"):
        out.sum().backward()


def test_frozen_parameters_and_inputs_get_no_gradient(threads):
    threads(2)
    fns, x, w, params = _two_branch_problem()
    for p in params:
        p.requires_grad_(False)
    x_free = x.detach()
    out = run_branches(fns, [x_free, w])
    (dw,) = torch.autograd.grad(out.sum(), [w])
    expected = torch.stack([fns[0].fn(x_free, torch.tensor([1.0, 0.0], dtype=w.dtype)).sum(),
                            fns[1].fn(x_free, torch.tensor([0.0, 1.0], dtype=w.dtype)).sum()])
    assert torch.allclose(dw, expected)
    assert all(p.grad is None for p in params)


def test_an_error_in_a_branch_reaches_the_caller(threads):
    threads(2)
    fns, x, w, _ = _two_branch_problem()

    def broken(x, w):
        raise RuntimeError("branch failed")

    with pytest.raises(RuntimeError, match="branch failed"):
        run_branches([fns[0], Branch(broken)], [x, w])
    with pytest.raises(ValueError, match="no branches"):
        run_branches([], [x])


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_branch_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="set_branch_threads"):
        set_branch_threads(bad)
    assert branches.branch_threads() == 1


def test_random_draws_stay_on_the_calling_thread_in_order_the_rest_costliest_first(threads):
    """Threaded: branches that draw random numbers run on the calling thread, in their order,
    before it takes any other; the others are taken costliest first; results in branch order."""
    threads(2)
    caller = threading.get_ident()
    started: list[tuple[int, bool]] = []
    x = torch.ones(3, requires_grad=True)

    def branch(k: int, cost: float, draws: bool) -> Branch:
        def fn(x):
            started.append((k, threading.get_ident() == caller))
            return x * (k + 1)
        return Branch(fn, cost=cost, draws_random=draws)

    bs = [branch(0, 1.0, False), branch(1, 5.0, True), branch(2, 9.0, False),
          branch(3, 2.0, True), branch(4, 9.0, False)]
    for _ in range(20):                                             # threads race: try often
        started.clear()
        out = run_branches(bs, [x])
        assert torch.equal(out, x.detach() * 15)                    # 1 + 2 + 3 + 4 + 5
        assert sorted(k for k, _ in started) == [0, 1, 2, 3, 4]      # each once
        on_caller = [k for k, here in started if here]
        assert on_caller[:2] == [1, 3]
        assert all(here for k, here in started if k in (1, 3))
    assert branches._schedule(bs) == ([1, 3], [2, 4, 0])


@pytest.mark.parametrize("n_threads", [1, 2])
def test_meanwhile_runs_on_the_calling_thread_in_the_callers_graph(threads, n_threads):
    """The caller's own work runs on its thread before any branch draws, and what it computes
    stays differentiable in the caller's graph (the pooled candidates of a node use this)."""
    threads(n_threads)
    fns, x, w, params = _two_branch_problem()
    caller = threading.get_ident()
    events: list[str] = []
    box: list[torch.Tensor] = []
    modes: list[bool] = []

    def meanwhile() -> None:
        events.append("meanwhile" if threading.get_ident() == caller else "elsewhere")
        modes.append(torch.is_grad_enabled())               # the caller's grad mode
        box.append((3 * x).pow(2).sum())

    drawing = Branch(lambda x, w: (events.append("draw"), w[0] * x[:, :4])[1], draws_random=True)
    out = run_branches([fns[0], drawing, fns[1]], [x, w], meanwhile=meanwhile)
    assert events == ["meanwhile", "draw"]
    loss = out.sum() + box[0]
    got = torch.autograd.grad(loss, [x, w, *params])
    expected = (fns[0].fn(x, w) + w[0] * x[:, :4] + fns[1].fn(x, w)).sum() + (3 * x).pow(2).sum()
    want = torch.autograd.grad(expected, [x, w, *params])
    for a, b in zip(got, want):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    with torch.no_grad():                                            # without gradients too
        box.clear()
        run_branches(fns, [x, w], meanwhile=meanwhile)
        assert len(box) == 1 and box[0].grad_fn is None
    assert modes == [True, False]


SPACE = SearchSpaceConfig(cnn_layers=3, cnn_nodes=3, init_channels=4, seq_cells=1, seq_nodes=2,
                          seq_ops="all", seq_hidden=6, dropout=0.3)
SHAPE = (12, 10)


def _step(net: SuperNet, x, y, alphas_only: bool = False):
    torch.manual_seed(3)                                           # the dropout masks
    loss = net.loss(x, y)
    params = list(net.alphas()) if alphas_only else list(net.parameters())
    return loss, torch.autograd.grad(loss, params)


def test_supernet_numbers_do_not_depend_on_the_branch_threads(threads):
    """Two training steps' loss, gradients and BatchNorm statistics of the supernet, dropout on,
    are the same to the bit with one thread or two."""
    torch.manual_seed(0)
    one = SuperNet(SPACE, 4, SHAPE).train()
    two = copy.deepcopy(one)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 1, *SHAPE, generator=g), torch.randint(0, 4, (6,), generator=g)
    for step in range(2):
        threads(1)
        l1, g1 = _step(one, x + step, y)
        threads(2)
        l2, g2 = _step(two, x + step, y)
        assert torch.equal(l1, l2)
        assert all(torch.equal(a, b) for a, b in zip(g1, g2))
        assert any(a.abs().sum() > 0 for a in g1[:20])
    for b1, b2 in zip(one.buffers(), two.buffers()):
        assert torch.equal(b1, b2)


def test_supernet_branches_match_edges_computing_alone(threads):
    """The branched sum of a node equals the edge-by-edge sum (float64, dropout off)."""
    threads(2)
    torch.manual_seed(0)
    space = SearchSpaceConfig(**{**SPACE.__dict__, "dropout": 0.0})
    net = SuperNet(space, 4, SHAPE).double().train()
    for m in net.modules():
        if isinstance(m, nn.RNNBase):
            m.dropout = 0.0
    plain = copy.deepcopy(net)
    for cell in list(plain.cells) + list(plain.seq_cells):
        cell.branch_nodes = False                                   # edge by edge
    x = torch.randn(6, 1, *SHAPE, dtype=torch.float64)
    y = torch.randint(0, 4, (6,))
    (l1, g1), (l2, g2) = _step(net, x, y), _step(plain, x, y)
    assert torch.allclose(l1, l2, rtol=1e-12, atol=0)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    # alpha gradients alone, with the weights frozen as the architect freezes them
    for p in net.weights():
        p.requires_grad_(False)
    _, ga = _step(net, x, y, alphas_only=True)
    full = {id(p): g for p, g in zip(net.parameters(), g1)}
    for a, alpha in zip(ga, net.alphas()):
        assert torch.allclose(a, full[id(alpha)], rtol=1e-12, atol=1e-15)
        assert a.abs().sum() > 0


def test_cores_to_branches_moves_cpu_threads_to_branches_and_back():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with branches.cores_to_branches("cpu"):
            assert (branches.branch_threads(), torch.get_num_threads()) == (2, 1)
        assert (branches.branch_threads(), torch.get_num_threads()) == (1, 2)
        with pytest.raises(KeyError):                    # restored on an error too
            with branches.cores_to_branches("cpu"):
                raise KeyError("x")
        assert (branches.branch_threads(), torch.get_num_threads()) == (1, 2)
        with branches.cores_to_branches("cuda"):         # other devices: unchanged
            assert (branches.branch_threads(), torch.get_num_threads()) == (1, 2)
        torch.set_num_threads(1)
        with branches.cores_to_branches("cpu"):          # one thread: nothing to move
            assert (branches.branch_threads(), torch.get_num_threads()) == (1, 1)
    finally:
        torch.set_num_threads(before)
        set_branch_threads(1)


def test_branch_costs_rank_candidates_by_their_layers():
    from emodarts_core.fast.branched_nodes import conv_cost, recurrent_cost
    from emodarts_core.nas.ops import cnn_op, seq_op
    costs = {n: conv_cost(cnn_op(n, 4, s, False)) for n, s in
             [("sep_conv_3x3", 1), ("sep_conv_5x5", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 1),
              ("skip_connect", 2)]}
    assert costs == {"sep_conv_3x3": 4, "sep_conv_5x5": 4, "dil_conv_3x3": 2, "dil_conv_5x5": 2,
                     "skip_connect": 2}
    rec = {n: recurrent_cost(seq_op(n, 8)) for n in ("lstm_1", "lstm_4", "rnn_1", "rnn_4")}
    assert rec["lstm_4"] == 4 * rec["lstm_1"] and rec["rnn_4"] == 4 * rec["rnn_1"]
    assert rec["lstm_1"] == 4 * rec["rnn_1"]
