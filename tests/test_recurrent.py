"""The batched tanh-RNN recurrence equals PyTorch's nn.RNN (values and gradients)."""
import pytest
import torch
from torch import nn

from emodarts_core.fast.recurrent import (bankable, layer_by_layer, run_recurrent, run_stacks,
                                          tanh_rnn_bank)
from emodarts_core.nas.mixed import SeqMixedOp
from emodarts_core.nas.ops import SEQ_OPS


def _stacks(H: int) -> list[nn.RNN]:
    rnns = [nn.RNN(H, H, num_layers=k, batch_first=True) for k in (1, 2, 4)]
    rnns += [nn.RNN(H, H, num_layers=k, batch_first=True, bidirectional=True) for k in (1, 2)]
    return [r.double() for r in rnns]


def test_run_stacks_matches_nn_rnn_values_and_gradients():
    torch.manual_seed(0)
    rnns = _stacks(5)
    x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    ours = run_stacks(rnns, x)
    ref = [r(x)[0] for r in rnns]
    assert [y.shape for y in ours] == [y.shape for y in ref]
    assert ours[-1].shape == (3, 7, 10)                           # bidirectional: 2H features
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    probes = [torch.randn_like(y) for y in ref]
    params = [p for r in rnns for p in r.parameters()] + [x]
    g_ours = torch.autograd.grad(sum((y * w).sum() for y, w in zip(ours, probes)), params)
    g_ref = torch.autograd.grad(sum((y * w).sum() for y, w in zip(ref, probes)), params)
    for a, b in zip(g_ours, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_tanh_rnn_bank_gradcheck():
    torch.manual_seed(1)
    P = torch.randn(2, 3, 4, 3, dtype=torch.float64, requires_grad=True)
    W = (0.5 * torch.randn(2, 3, 3, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(tanh_rnn_bank, (P, W))


def test_bank_layers_are_independent():
    """Changing one layer's weights changes only that layer's outputs."""
    torch.manual_seed(2)
    P, W = torch.randn(3, 2, 6, 4), torch.randn(3, 4, 4)
    before = tanh_rnn_bank(P, W)
    W2 = W.clone()
    W2[1] += 1.0
    after = tanh_rnn_bank(P, W2)
    assert torch.equal(before[0], after[0]) and torch.equal(before[2], after[2])
    assert not torch.allclose(before[1], after[1])


def test_bad_shapes_and_unsupported_modules_are_rejected():
    with pytest.raises(ValueError, match="expected P"):
        tanh_rnn_bank(torch.randn(2, 3, 4, 5), torch.randn(2, 4, 4))
    lstm = nn.LSTM(4, 4, batch_first=True)
    assert not bankable(lstm) and not bankable(nn.RNN(4, 4, nonlinearity="relu", batch_first=True))
    with pytest.raises(ValueError, match="cannot run"):
        run_stacks([lstm], torch.randn(2, 3, 4))


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(3)
    rnn = nn.RNN(4, 4, num_layers=2, batch_first=True, dropout=0.5)
    x = torch.randn(2, 5, 4)
    rnn.eval()
    torch.testing.assert_close(run_stacks([rnn], x)[0], rnn(x)[0])
    rnn.train()
    torch.manual_seed(4)
    a = run_stacks([rnn], x)[0]
    torch.manual_seed(5)
    b = run_stacks([rnn], x)[0]
    assert not torch.allclose(a, b)                               # masks were drawn


def test_seq_mixed_op_equals_weighted_sum_of_module_ops():
    """The mixed edge (recurrent candidates batched) = sum of w_o * op(x) with each op's own
    PyTorch module; LSTMs keep their module path."""
    torch.manual_seed(6)
    prims = ("lstm_2", "rnn_1", "rnn_3", "rnn_att_2", "lstm_att_1", "skip_connect", "none")
    mixed = SeqMixedOp(4, prims).double().eval()
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    w = torch.softmax(torch.randn(len(prims), dtype=torch.float64), 0)
    ref = 0
    for i, op in zip(mixed.indices, mixed.ops):
        rec = op.finish(op.rnn(x)[0]) if hasattr(op, "rnn") else op(x)
        ref = ref + w[i] * rec
    torch.testing.assert_close(mixed(x, w), ref, rtol=1e-12, atol=1e-12)
    lstm = SEQ_OPS["lstm_1"](4)
    assert torch.equal(run_recurrent([lstm.rnn], x.float())[0], lstm.rnn(x.float())[0])


@pytest.mark.parametrize("kind,bidirectional,layers", [
    (nn.LSTM, False, 1), (nn.LSTM, True, 3), (nn.RNN, False, 2), (nn.RNN, True, 2)])
def test_layer_by_layer_equals_the_stacked_module(kind, bidirectional, layers):
    """The CUDA training path of stacked ops (torch-drawn dropout) computes the module's function:
    without dropout it equals ``rnn(x)[0]``; with dropout its masks are torch's, so one layer
    at a time with ``F.dropout`` under the same seed gives the same output and gradients."""
    torch.manual_seed(0)
    rnn = kind(5, 4, num_layers=layers, batch_first=True, bidirectional=bidirectional).double()
    x = torch.randn(3, 7, 5, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(layer_by_layer(rnn, x), rnn(x)[0], atol=1e-12)

    rnn.dropout = 0.4
    torch.manual_seed(3)
    y = layer_by_layer(rnn, x)
    dirs = 2 if bidirectional else 1
    singles = []                          # layer k of the stack as a one-layer module
    for k in range(layers):
        one = kind(5 if k == 0 else 4 * dirs, 4, batch_first=True,
                   bidirectional=bidirectional).double()
        for suffix in ([""] + (["_reverse"] if bidirectional else [])):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                setattr(one, f"{name}_l0{suffix}", getattr(rnn, f"{name}_l{k}{suffix}"))
        singles.append(one)
    torch.manual_seed(3)
    h = x
    for k, one in enumerate(singles):
        h = one(h)[0]
        if k < layers - 1:
            h = torch.nn.functional.dropout(h, 0.4, True)
    assert h.shape == (3, 7, 4 * dirs)
    assert torch.allclose(y, h, atol=1e-12)
    if layers > 1:                        # the masks really were drawn
        assert not torch.allclose(y, rnn.eval()(x)[0], atol=1e-6)
    g1 = torch.autograd.grad(y.sum(), [x] + list(rnn.parameters()))
    g2 = torch.autograd.grad(h.sum(), [x] + list(rnn.parameters()), allow_unused=True)
    for a, b in zip(g1, g2):
        assert b is not None and torch.allclose(a, b, atol=1e-10)


def test_layer_by_layer_rejects_what_it_does_not_compute():
    with pytest.raises(TypeError, match="tanh"):
        layer_by_layer(nn.RNN(3, 3, nonlinearity="relu"), torch.randn(2, 4, 3))
    with pytest.raises(TypeError, match="plain"):
        layer_by_layer(nn.GRU(3, 3), torch.randn(2, 4, 3))
