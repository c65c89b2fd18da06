"""Operations, mixed ops and cells: shapes, registry coverage, relaxation maths, batch independence."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from emodarts_core.config import CNN_PRIMITIVES, SEQ_OP_SETS
from emodarts_core.fast.weighted_sum import weighted_sum
from emodarts_core.nas.cells import (FixedCell, FixedSeqCell, SearchCell, SeqSearchCell,
                                     average_groups)
from emodarts_core.nas.cnn_ops import FactorizedReduce, Identity, drop_path
from emodarts_core.nas.genotype import CellGenotype, n_edges
from emodarts_core.nas.mixed import MixedOp, SeqMixedOp
from emodarts_core.nas.ops import CNN_OPS, SEQ_OPS
from emodarts_core.nas.seq_ops import AttentiveRecurrent

ALL_SEQ = SEQ_OP_SETS["all"]


def test_registries_cover_every_configured_op():
    assert set(CNN_PRIMITIVES) == set(CNN_OPS)
    for ops in SEQ_OP_SETS.values():
        assert set(ops) <= set(SEQ_OPS)


@pytest.mark.parametrize("name", CNN_PRIMITIVES)
@pytest.mark.parametrize("size", [(8, 8), (5, 7)])
def test_cnn_op_shapes_round_up_at_stride_2(name, size):
    torch.manual_seed(0)
    x = torch.randn(2, 4, *size)
    for stride in (1, 2):
        op = CNN_OPS[name](4, stride, False)
        out = op(x)
        expected = (2, 4, -(-size[0] // stride), -(-size[1] // stride))
        assert tuple(out.shape) == expected, (name, stride)
    assert isinstance(CNN_OPS["skip_connect"](4, 1, True), Identity)
    assert isinstance(CNN_OPS["skip_connect"](4, 2, True), FactorizedReduce)


def test_affine_flag_controls_batchnorm_parameters():
    plain = CNN_OPS["sep_conv_3x3"](4, 1, False)
    affine = CNN_OPS["sep_conv_3x3"](4, 1, True)
    # depthwise 3x3 (36) + pointwise 4x4 (16), twice; affine BN adds 2 * 4 per BN, two BNs
    assert sum(p.numel() for p in plain.parameters()) == 2 * (36 + 16)
    assert sum(p.numel() for p in affine.parameters()) == 2 * (36 + 16) + 2 * 8


def test_factorized_reduce_matches_darts_on_even_sizes():
    torch.manual_seed(0)
    op = FactorizedReduce(3, 6, affine=False).eval()
    x = torch.randn(2, 3, 6, 8)
    r = F.relu(x)
    ref = torch.cat([op.conv1(r), op.conv2(r[:, :, 1:, 1:])], dim=1)
    assert torch.allclose(op(x), op.bn(ref), atol=1e-6)


@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("size", [(6, 8), (7, 5)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_even_pixels_equals_the_padded_slice_and_keeps_the_layout(offset, size, layout):
    from emodarts_core.fast.layout import even_pixels
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size).contiguous(memory_format=layout).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    out = even_pixels(x, offset)
    ref = F.pad(ref_x, (0, 1, 0, 1))[:, :, offset::2, offset::2][:, :, :(size[0] + 1) // 2,
                                                                   :(size[1] + 1) // 2]
    assert torch.equal(out, ref)
    assert out.is_contiguous(memory_format=layout)
    g = torch.randn_like(ref)
    out.backward(g.contiguous(memory_format=layout))
    ref.backward(g)
    assert torch.equal(x.grad, ref_x.grad)
    assert x.grad.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("name", ALL_SEQ)
def test_seq_ops_map_sequences_to_sequences_per_utterance(name):
    torch.manual_seed(0)
    op = SEQ_OPS[name](6).eval()
    x = torch.randn(3, 5, 6)
    out = op(x)
    assert out.shape == (3, 5, 6)
    # the first utterance's output does not depend on the others, nor on the batch size
    other = torch.cat([x[:1], torch.randn(4, 5, 6)])
    assert torch.allclose(op(other)[0], out[0], atol=1e-6)
    assert torch.allclose(op(x[:1])[0], out[0], atol=1e-6)


def test_recurrent_ops_have_the_requested_layers():
    assert SEQ_OPS["lstm_3"](4).rnn.num_layers == 3
    assert SEQ_OPS["rnn_2"](4).rnn.nonlinearity == "tanh"
    assert not SEQ_OPS["rnn_2"](4).rnn.bidirectional
    att = SEQ_OPS["lstm_att_2"](4)
    assert att.rnn.bidirectional and att.rnn.num_layers == 2 and att.rnn.dropout == 0.3


def test_attention_pools_over_time_at_any_length():
    torch.manual_seed(0)
    op = AttentiveRecurrent("rnn", 4, 1).eval()
    for b, t in [(1, 1), (7, 3), (2, 50)]:
        o, a = op.attend(torch.randn(b, t, 4))
        assert a.shape == (b, t) and o.shape == (b, t, 8)
        assert torch.allclose(a.sum(dim=1), torch.ones(b), atol=1e-6)
    # y_t = W_o [o_t ; c] + b: after removing the per-frame part W_o[:, :2H] o_t, what is left
    # (the context term and the bias) is the same for every frame of an utterance
    x = torch.randn(2, 6, 4)
    o, a = op.attend(x)
    rest = op(x) - o @ op.out.weight[:, :8].T
    assert torch.allclose(rest, rest[:, :1].expand_as(rest), atol=1e-5)
    context = torch.einsum("bt,btf->bf", a, o)
    assert torch.allclose(rest[:, 0], context @ op.out.weight[:, 8:].T + op.out.bias, atol=1e-5)


def test_mixed_op_is_the_weighted_sum_and_skips_none():
    torch.manual_seed(0)
    prims = ("avg_pool_3x3", "skip_connect", "sep_conv_3x3", "none")
    mixed = MixedOp(3, 1, prims).eval()
    assert len(mixed.ops) == 3                                   # `none` is not built
    x = torch.randn(2, 3, 5, 5)
    w = torch.softmax(torch.randn(4), 0)
    expected = sum(w[i] * mixed.ops[i](x) for i in range(3))
    assert torch.allclose(mixed(x, w), expected, atol=1e-6)
    # all weight on `none` gives exactly zero
    assert torch.count_nonzero(mixed(x, torch.tensor([0.0, 0.0, 0.0, 1.0]))) == 0
    with pytest.raises(ValueError, match="weights"):
        mixed(x, torch.ones(3))
    with pytest.raises(ValueError, match="unknown CNN op"):
        MixedOp(3, 1, ("conv_9x9", "none"))


def test_seq_mixed_op_one_hot_selects_an_op():
    torch.manual_seed(0)
    mixed = SeqMixedOp(4, ALL_SEQ).eval()
    x = torch.randn(2, 6, 4)
    i = ALL_SEQ.index("lstm_2")
    w = F.one_hot(torch.tensor(i), len(ALL_SEQ)).float()
    assert torch.allclose(mixed(x, w), mixed.ops[mixed.indices.index(i)](x), atol=1e-6)


def test_drop_path_is_per_sample_and_device_agnostic():
    torch.manual_seed(0)
    x = torch.ones(2000, 3, 2, 2)
    assert drop_path(x, 0.3, training=False) is x
    out = drop_path(x, 0.3, training=True)
    per_sample = out.flatten(1)
    assert torch.all(per_sample.min(1).values == per_sample.max(1).values)   # whole samples
    kept = (per_sample[:, 0] > 0).float().mean().item()
    assert 0.65 < kept < 0.75
    assert torch.allclose(per_sample[per_sample[:, 0] > 0], torch.full_like(per_sample[:1], 1 / 0.7))
    assert out.device == x.device


def test_average_groups_equals_adaptive_avg_pool():
    x = torch.randn(2, 5, 4 * 6)
    assert torch.allclose(average_groups(x, 4), F.adaptive_avg_pool1d(x, 6), atol=1e-6)


def test_search_cells_shapes_and_weights_check():
    torch.manual_seed(0)
    prims = CNN_PRIMITIVES
    cell = SearchCell(3, 6, 6, 4, reduction_p=False, reduction=True, primitives=prims)
    s = torch.randn(2, 6, 9, 7)
    w = torch.softmax(torch.randn(n_edges(3), len(prims)), -1)
    assert cell(s, s, w).shape == (2, 12, 5, 4)
    with pytest.raises(ValueError, match="SearchCell"):
        cell(s, s, w[:-1])
    after = SearchCell(2, 6, 12, 8, reduction_p=True, reduction=False, primitives=prims)
    assert after(s, torch.randn(2, 12, 5, 4), torch.softmax(torch.randn(5, 8), -1)).shape == (2, 16, 5, 4)
    seq = SeqSearchCell(3, 4, ALL_SEQ, dropout=0.3).eval()
    q = torch.randn(2, 5, 4)
    assert seq(q, q, torch.softmax(torch.randn(n_edges(3), len(ALL_SEQ)), -1)).shape == (2, 5, 4)


def test_fixed_cells_follow_the_genotype():
    torch.manual_seed(0)
    g = CellGenotype(nodes=((("skip_connect", 0), ("skip_connect", 1)),
                            (("skip_connect", 2), ("none", 0))), concat=(2, 3))
    cell = FixedCell(g, 4, 4, 4, reduction_p=False, reduction=False).eval()
    s0, s1 = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    a, b = cell.pre0(s0), cell.pre1(s1)
    assert torch.allclose(cell(s0, s1), torch.cat([a + b, a + b], 1), atol=1e-6)
    sg = CellGenotype(nodes=((("skip_connect", 0), ("skip_connect", 1)),), concat=(2,))
    seq = FixedSeqCell(sg, 3).eval()
    q0, q1 = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert torch.allclose(seq(q0, q1), q0 + q1, atol=1e-6)
    with pytest.raises(ValueError, match="concat"):
        FixedSeqCell(CellGenotype(nodes=sg.nodes, concat=(0,)), 3)


@pytest.mark.parametrize("C, shape", [(2, (3, 5, 7)), (4, (3, 5, 7)), (4, (2, 1, 7)), (8, (3, 5, 7)),
                                      (12, (3, 5, 7)), (4, (16, 40, 125))])
@pytest.mark.parametrize("affine, momentum", [(True, 0.1), (False, 0.1), (True, None)])
def test_batchnorm_equals_torch_and_keeps_channels_last(C, shape, affine, momentum):
    """Whichever kernel it uses (its own wide-row one for C % 8 != 0), the values, gradients
    (input, weight, bias), running statistics and step count are nn.BatchNorm2d's over two
    training steps and in evaluation, and output and gradient stay channels-last."""
    from emodarts_core.fast.batchnorm import BatchNorm2d
    torch.manual_seed(0)
    N, H, W = shape
    ours = BatchNorm2d(C, affine=affine, momentum=momentum).double()
    ref = nn.BatchNorm2d(C, affine=affine, momentum=momentum).double()
    if affine:
        with torch.no_grad():
            for m in (ours, ref):
                m.weight.copy_(torch.linspace(0.5, 2.0, C))
                m.bias.copy_(torch.linspace(-1.0, 1.0, C))
    for step in range(2):
        x = (torch.randn(N, C, H, W, dtype=torch.float64) * (step + 1) + step).contiguous(
            memory_format=torch.channels_last).requires_grad_()
        ref_x = x.detach().contiguous().requires_grad_()
        out, want = ours(x), ref(ref_x)
        torch.testing.assert_close(out, want)
        assert out.is_contiguous(memory_format=torch.channels_last)
        g = torch.randn_like(want)
        out.backward(g if step else g.contiguous(memory_format=torch.channels_last))
        want.backward(g)
        torch.testing.assert_close(x.grad, ref_x.grad)
        assert x.grad.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(ours.running_mean, ref.running_mean)
        torch.testing.assert_close(ours.running_var, ref.running_var)
        assert int(ours.num_batches_tracked) == int(ref.num_batches_tracked) == step + 1
    if affine:
        torch.testing.assert_close(ours.weight.grad, ref.weight.grad)
        torch.testing.assert_close(ours.bias.grad, ref.bias.grad)
    ours.eval()
    ref.eval()
    x = torch.randn(N, C, H, W, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours(x), ref(x.contiguous()))


def test_wide_row_batchnorm_rows_and_errors():
    """The wide view's row width divides the pixel count; bad input is refused clearly."""
    from emodarts_core.fast.batchnorm import batch_norm_channels_last, row_width
    assert row_width(80000, 4) == 16 and row_width(45, 4) == 45 and row_width(7, 4) == 7
    assert row_width(2 * 97, 4) == 2 and row_width(3, 128) == 1
    for pixels, C in [(80000, 4), (45, 4), (7, 4), (194, 4), (1000, 12), (3, 128)]:
        assert pixels % row_width(pixels, C) == 0
    with pytest.raises(ValueError, match="channels_last"):
        batch_norm_channels_last(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="more than 1 value"):
        batch_norm_channels_last(torch.randn(1, 4, 1, 1).contiguous(memory_format=torch.channels_last))


@pytest.mark.parametrize("layouts", [("cl", "cl", "cl"), ("cl", "plain", "cl"), ("plain", "plain", "plain")])
def test_weighted_sum_equals_the_autograd_expression(layouts):
    """The fused CPU weighted sum of a mixed edge: same value, same gradients for the weights and
    every term, whether the layouts of the terms and the gradient match or not)."""
    torch.manual_seed(3)
    fmt = {"cl": torch.channels_last, "plain": torch.contiguous_format}
    hs = [torch.randn(3, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=fmt[k]).requires_grad_()
          for k in layouts]
    alpha = torch.randn(3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(3, 4, 5, 6, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.softmax(alpha, 0)
    ours = weighted_sum(w, hs)
    ref = sum(w[i] * h for i, h in enumerate(hs))
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    got = torch.autograd.grad((ours * g).sum(), [alpha, *hs], retain_graph=True)
    want = torch.autograd.grad((ref * g).sum(), [alpha, *hs])
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="2 weights for 3"):
        weighted_sum(w[:2], hs)
    with torch.no_grad():                                # the lazy path: same value, same checks
        torch.testing.assert_close(weighted_sum(w, iter(hs)), ref, rtol=1e-12, atol=1e-12)
        with pytest.raises(ValueError, match="3 weights for 2"):
            weighted_sum(w, iter(hs[:2]))
        with pytest.raises(ValueError, match="2 weights for more"):
            weighted_sum(w[:2], iter(hs))
    # first derivatives only: once_differentiable cuts the graph, so a second derivative with
    # respect to what feeds the sum from outside is refused (autograd: input not reachable)
    v = torch.randn(3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    y = weighted_sum(torch.softmax(alpha, 0), hs)
    (gw,) = torch.autograd.grad((y * v).sum(), alpha, create_graph=True)
    with pytest.raises(RuntimeError, match="not have been used in the graph"):
        torch.autograd.grad(gw.sum(), v)


def test_weighted_sum_gradient_does_not_depend_on_memory_alignment():
    """The same numbers at other addresses give the same bits (a resumed run allocates its
    tensors elsewhere; BLAS's dot, used here before, summed in an alignment-dependent order)."""
    torch.manual_seed(0)
    shape, k = (4, 4, 40, 125), 3
    n = 4 * 4 * 40 * 125
    values = [torch.randn(n) for _ in range(k + 1)]
    w = torch.rand(k)
    grads = set()
    for offset in range(8):
        views = []
        for v in values:
            buf = torch.empty(n + 16)
            buf[offset:offset + n] = v
            views.append(buf[offset:offset + n].view(shape))
        *hs, g = views
        weights = w.clone().requires_grad_(True)
        (dw,) = torch.autograd.grad(weighted_sum(weights, hs), [weights], g)
        grads.add(tuple(dw.tolist()))
    assert len(grads) == 1
