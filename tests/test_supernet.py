"""The supernet: alpha shapes, parameter sets, genotype derivation, shapes and batch independence."""
from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from emodarts_core.config import PROFILES, SEQ_OP_SETS, SearchSpaceConfig, override
from emodarts_core.nas.genotype import Genotype, n_edges
from emodarts_core.nas.inspect import count_parameters, trace_shapes
from emodarts_core.nas.ops import CNN_OPS, SEQ_OPS
from emodarts_core.nas.supernet import SuperNet, reduction_indices

TINY = SearchSpaceConfig(cnn_layers=3, cnn_nodes=2, init_channels=2, seq_cells=2, seq_nodes=2,
                         seq_ops="all", seq_hidden=6)
SHAPE = (12, 10)


@pytest.fixture(scope="module")
def net() -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(TINY, 4, SHAPE)


def test_alpha_shapes_and_init(net):
    n_cnn, n_seq = len(TINY.cnn_ops), len(SEQ_OP_SETS["all"])
    a_normal, a_reduce, a_seq = net.alphas()
    assert a_normal.shape == a_reduce.shape == (n_edges(TINY.cnn_nodes), n_cnn)
    assert a_seq.shape == (n_edges(TINY.seq_nodes), n_seq)
    for a in net.alphas():
        assert 0 < a.abs().max().item() < 1e-2                  # 1e-3 * N(0, 1)
    w = net.alpha_weights()
    assert set(w) == {"normal", "reduce", "seq"}
    for key, alpha in zip(("normal", "reduce", "seq"), net.alphas()):
        assert torch.allclose(w[key], torch.softmax(alpha, -1))
        assert torch.allclose(w[key].sum(-1), torch.ones(alpha.shape[0]))
    assert net.primitives == {"normal": TINY.cnn_ops, "reduce": TINY.cnn_ops,
                              "seq": SEQ_OP_SETS["all"]}


def test_weights_and_alphas_are_disjoint_and_cover_everything(net):
    w_ids = {id(p) for p in net.weights()}
    a_ids = {id(p) for p in net.alphas()}
    assert len(w_ids) == len(net.weights()) and len(a_ids) == 3
    assert not w_ids & a_ids
    assert w_ids | a_ids == {id(p) for p in net.parameters()}
    assert {"alpha_normal", "alpha_reduce", "alpha_seq"} <= set(net.state_dict())


def test_genotype_valid_and_follows_alphas():
    torch.manual_seed(1)
    net = SuperNet(TINY, 4, SHAPE)
    g = net.genotype()
    assert isinstance(g, Genotype)
    for cell, registry, n_nodes in ((g.normal, CNN_OPS, TINY.cnn_nodes), (g.reduce, CNN_OPS, TINY.cnn_nodes),
                                    (g.seq, SEQ_OPS, TINY.seq_nodes)):
        assert cell.n_nodes == n_nodes
        for j, node in enumerate(cell.nodes):
            assert len(node) == 2
            assert len({src for _, src in node}) == 2
            for op, src in node:
                assert op in registry and op != "none" and 0 <= src < 2 + j
    # make `none` dominant everywhere and one op the runner-up: the genotype must pick that op
    with torch.no_grad():
        prims = net.primitives["seq"]
        net.alpha_seq.zero_()
        net.alpha_seq[:, prims.index("none")] = 5.0
        net.alpha_seq[:, prims.index("rnn_att_2")] = 1.0
        net.alpha_normal.zero_()
        net.alpha_normal[:, TINY.cnn_ops.index("dil_conv_5x5")] = 1.0
    g = net.genotype()
    assert set(g.seq.ops()) == {"rnn_att_2"}
    assert set(g.normal.ops()) == {"dil_conv_5x5"}
    assert Genotype.from_json(g.to_json()) == g


def test_forward_loss_and_gradients(net):
    torch.manual_seed(0)
    net.train()
    x, y = torch.randn(3, 1, *SHAPE), torch.tensor([0, 1, 3])
    assert net(x).shape == (3, 4)
    loss = net.loss(x, y)
    assert loss.dim() == 0
    net.zero_grad()
    loss.backward()
    for a in net.alphas():
        assert a.grad is not None and a.grad.abs().sum() > 0
    assert sum(p.grad.abs().sum() for p in net.weights() if p.grad is not None) > 0
    with pytest.raises(ValueError, match="batch, 1, n_mfcc, n_frames"):
        net(torch.randn(3, *SHAPE))


def test_batch_independence_with_every_seq_op(net):
    """An utterance's logits do not change when the rest of its batch changes (eval mode)."""
    torch.manual_seed(0)
    net.eval()
    x = torch.randn(4, 1, *SHAPE)
    ref = net(x)
    other = torch.cat([x[:1], torch.randn(5, 1, *SHAPE)])
    assert torch.allclose(net(other)[0], ref[0], atol=1e-5)
    assert torch.allclose(net(x[:1])[0], ref[0], atol=1e-5)
    assert torch.allclose(net(x.flip(0))[-1], ref[0], atol=1e-5)
    # and the supernet really depends on the input (the check above is not vacuous)
    assert not torch.allclose(net(other)[1], ref[1], atol=1e-4)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_profile_shapes(profile):
    torch.manual_seed(0)
    p = PROFILES[profile]
    space = override(p.space, seq_ops="rnn") if profile == "cpu" else p.space
    net = SuperNet(space, 4, p.features.shape)
    trace = dict(trace_shapes(net, torch.randn(2, 1, *p.features.shape)))
    T = math.ceil(math.ceil(p.features.n_frames / 2) / 2)       # two reductions, rounding up
    assert trace["seq_in[0]"] == trace["seq_in[1]"] == (2, T, space.seq_hidden)
    assert trace["classifier"] == (2, 4)
    assert net.training                                            # mode restored


def test_reductions_and_channels():
    assert reduction_indices(4) == {1, 2} and reduction_indices(3) == {1, 2}
    assert reduction_indices(8) == {2, 5}
    net = SuperNet(override(TINY, cnn_layers=4), 4, SHAPE)
    assert [c.reduction for c in net.cells] == [False, True, True, False]
    assert [c.out_channels for c in net.cells] == [4, 8, 16, 16]
    # 16 channels != seq_hidden 6: both inputs of the SeqNN are projected
    assert isinstance(net.seq_in.proj0, nn.Linear) and isinstance(net.seq_in.proj1, nn.Linear)


def test_paper_profile_needs_no_projection():
    """With the paper's space the last two CNN cells output 128 = seq_hidden channels."""
    space = override(PROFILES["paper"].space, seq_cells=0)        # the CNN only, to stay small
    net = SuperNet(space, 4, (128, 128))
    assert [c.out_channels for c in net.cells][-2:] == [128, 128] == [space.seq_hidden] * 2
    assert isinstance(net.seq_in.proj0, nn.Identity) and isinstance(net.seq_in.proj1, nn.Identity)
    counts = count_parameters(net)
    # stem + CNN cells + linear head of the public code's supernet: 346,092 weights
    assert counts["stem"] + counts["cnn"] + counts["head"] == 346_092
    assert counts["alphas"] == 2 * 14 * 8 + 14 * 14


def test_seq_only_parameter_count_matches_public_rnn_space():
    """With the 'rnn' op set the paper's SeqNN holds 56 edges of rnn_1..rnn_4 (10 RNN layers each)."""
    counts = count_parameters(SuperNet(override(PROFILES["paper"].space, seq_ops="rnn"), 4, (128, 128)))
    per_layer = 2 * 128 * 128 + 2 * 128                           # W_ih, W_hh, b_ih, b_hh
    assert counts["seq"] == 4 * 14 * 10 * per_layer
    assert counts["weights"] == 346_092 + counts["seq"]           # 18.84 M, the public code's 18.8 M


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="cnn_ops"):
        SuperNet(override(TINY, cnn_ops=("skip_connect", "max_pool_3x3")), 4, SHAPE)
    with pytest.raises(ValueError, match="input_shape"):
        SuperNet(TINY, 4, (12,))
    with pytest.raises(ValueError, match="seq_ops"):
        SuperNet(override(TINY, seq_ops="gru"), 4, SHAPE)


def test_deepcopy_is_an_independent_equal_network(net):
    """The second-order architect works on a copy of the supernet."""
    net.eval()
    twin = copy.deepcopy(net)
    x = torch.randn(2, 1, *SHAPE)
    assert torch.equal(twin(x), net(x))
    with torch.no_grad():
        twin.alpha_seq.add_(1.0)
    assert not torch.equal(twin.alpha_seq, net.alpha_seq)


def test_seeded_construction_repeats():
    torch.manual_seed(3)
    a = SuperNet(TINY, 4, SHAPE)
    torch.manual_seed(3)
    b = SuperNet(TINY, 4, SHAPE)
    x = torch.randn(2, 1, *SHAPE)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))
    assert a.genotype() == b.genotype()
