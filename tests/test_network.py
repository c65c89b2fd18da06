"""The fixed network from a genotype: shapes for every feature profile, aux head, drop-path,
batch independence, training, and the inspection helpers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from emodarts_core.config import (CNN_PRIMITIVES, FEATURE_PROFILES, PROFILES, SEQ_OP_SETS,
                                  SearchSpaceConfig, override)
from emodarts_core.nas.genotype import CellGenotype, Genotype, derive_cell, n_edges
from emodarts_core.nas.inspect import count_parameters, format_trace, trace_shapes
from emodarts_core.nas.network import Network
from emodarts_core.nas.supernet import SuperNet

NORMAL = CellGenotype(nodes=((("sep_conv_3x3", 0), ("skip_connect", 1)),
                             (("dil_conv_3x3", 1), ("max_pool_3x3", 2))), concat=(2, 3))
REDUCE = CellGenotype(nodes=((("avg_pool_3x3", 0), ("skip_connect", 1)),
                             (("sep_conv_5x5", 2), ("dil_conv_5x5", 0))), concat=(2, 3))
# every sequence op of the "all" set appears in this (hand-written, wider than top-2) SeqNN cell
_SEQ = SEQ_OP_SETS["all"]
SEQ_ALL = CellGenotype(nodes=(tuple((op, i % 2) for i, op in enumerate(_SEQ[:7])),
                              tuple((op, i % 3) for i, op in enumerate(_SEQ[7:]))), concat=(2, 3))
SEQ_SMALL = CellGenotype(nodes=((("lstm_1", 0), ("rnn_att_1", 1)),
                                (("skip_connect", 2), ("rnn_1", 0))), concat=(2, 3))
GENOTYPE = Genotype(normal=NORMAL, reduce=REDUCE, seq=SEQ_SMALL)
TINY = SearchSpaceConfig(cnn_layers=3, cnn_nodes=2, init_channels=2, seq_cells=2, seq_nodes=2,
                         seq_hidden=6, dropout=0.0)


@pytest.mark.parametrize("profile", ["smoke", "16k", "paper"])
def test_forward_shapes_for_every_feature_profile(profile):
    torch.manual_seed(0)
    shape = FEATURE_PROFILES[profile].shape
    genotype = GENOTYPE
    if profile == "paper":      # the paper's CNN at full size, one small SeqNN cell, batch 1
        space, batch = override(PROFILES["paper"].space, seq_cells=1), 1
        cnn = [derive_cell(torch.randn(n_edges(4), len(CNN_PRIMITIVES)), CNN_PRIMITIVES, 4)
               for _ in range(2)]
        genotype = Genotype(normal=cnn[0], reduce=cnn[1], seq=SEQ_SMALL)
    else:
        space, batch = PROFILES["smoke" if profile == "smoke" else "cpu"].space, 2
    net = Network(genotype, space, 4, shape)
    net.eval()
    x = torch.randn(batch, 1, *shape)
    logits, aux = net.forward_with_aux(x)
    assert logits.shape == (batch, 4) and aux.shape == (batch, 4)
    assert torch.allclose(net(x), logits)
    trace = dict(trace_shapes(net, x))
    assert trace["cells.0"][2:] == shape
    if profile == "paper":
        assert trace["cells.3"] == (1, 128, 32, 32) and trace["seq_in[1]"] == (1, 32, 128)
        assert isinstance(net.seq_in.proj0, nn.Identity) and isinstance(net.seq_in.proj1, nn.Identity)


def test_aux_head_sits_after_second_reduction_and_is_optional():
    torch.manual_seed(0)
    net = Network(GENOTYPE, override(TINY, cnn_layers=4), 3, (12, 10))
    assert net.aux_index == 2 and net.cells[2].reduction
    assert net.aux_head is not None
    assert net.aux_head.features[2].in_channels == net.cells[2].out_channels
    no_aux = Network(GENOTYPE, TINY, 3, (12, 10), aux=False)
    logits, aux = no_aux.forward_with_aux(torch.randn(2, 1, 12, 10))
    assert aux is None and logits.shape == (2, 3)
    assert count_parameters(no_aux)["aux"] == 0 < count_parameters(net)["aux"]


def test_batch_independence_with_every_seq_op():
    torch.manual_seed(0)
    net = Network(Genotype(NORMAL, REDUCE, SEQ_ALL), TINY, 4, (12, 10)).eval()
    x = torch.randn(4, 1, 12, 10)
    ref = net(x)
    other = torch.cat([x[:1], torch.randn(3, 1, 12, 10)])
    assert torch.allclose(net(other)[0], ref[0], atol=1e-5)
    assert torch.allclose(net(x[:1])[0], ref[0], atol=1e-5)
    assert not torch.allclose(net(other)[1], ref[1], atol=1e-4)


def test_drop_path_only_in_training_and_only_when_set():
    net = Network(GENOTYPE, TINY, 4, (12, 10), aux=False)
    x = torch.randn(8, 1, 12, 10)
    net.train()

    def run(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return net(x)

    assert torch.equal(run(1), run(2))                 # p = 0, dropout 0: deterministic
    net.drop_path_prob = 0.5
    assert not torch.allclose(run(1), run(2))          # masks drawn per call
    assert torch.equal(run(1), run(1))                 # ... from the torch generator (seeded)
    net.eval()
    assert torch.equal(run(1), run(2))                 # never in eval mode


def test_network_from_a_derived_genotype_trains():
    """A few SGD steps (drop-path and aux head on) fit a repeated tiny batch."""
    torch.manual_seed(0)
    g = SuperNet(TINY, 3, (12, 10)).genotype()
    net = Network(g, TINY, 3, (12, 10))
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    x = 2 * torch.randn(3, 1, 12, 10)[y] + 0.3 * torch.randn(6, 1, 12, 10)   # noisy prototypes

    def clean_loss() -> float:          # train-mode BN, no drop-path, no aux term
        net.drop_path_prob = 0.0
        with torch.no_grad():
            return net.loss(x, y).item()

    before = clean_loss()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for _ in range(15):
        net.drop_path_prob = 0.1
        opt.zero_grad()
        loss = net.loss(x, y, aux_weight=0.4)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        assert torch.isfinite(loss)
    assert clean_loss() < 0.5 * before


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    net = Network(GENOTYPE, TINY, 4, (12, 10)).eval()
    x = torch.randn(3, 1, 12, 10)
    ref = net(x)
    net = net.to(memory_format=torch.channels_last)
    assert torch.allclose(net(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5)


def test_channels_last_flag_gives_the_same_loss_and_gradients():
    """Training mode, drop-path and dropout off: the flag changes the layout, not the function."""
    import copy
    torch.manual_seed(0)
    fast = Network(GENOTYPE, override(TINY, dropout=0.0), 4, (12, 10))
    slow = copy.deepcopy(fast)
    slow.channels_last = False
    assert fast.channels_last
    x, y = torch.randn(5, 1, 12, 10), torch.tensor([0, 1, 2, 3, 0])
    losses, grads = [], []
    for net in (fast, slow):
        loss = net.loss(x, y, aux_weight=0.4)
        losses.append(loss.detach())
        grads.append(torch.autograd.grad(loss, list(net.parameters())))
    assert torch.allclose(losses[0], losses[1], rtol=1e-6, atol=1e-7)
    for (name, _), a, b in zip(fast.named_parameters(), *grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6), name


def test_loss_adds_weighted_aux_term():
    torch.manual_seed(0)
    net = Network(GENOTYPE, TINY, 3, (12, 10)).eval()
    x, y = torch.randn(4, 1, 12, 10), torch.tensor([0, 1, 2, 0])
    logits, aux = net.forward_with_aux(x)
    ce = nn.functional.cross_entropy
    assert torch.allclose(net.loss(x, y), ce(logits, y))
    assert torch.allclose(net.loss(x, y, aux_weight=0.4), ce(logits, y) + 0.4 * ce(aux, y))


def test_fixed_network_uses_affine_bn_and_rejects_unknown_ops():
    net = Network(GENOTYPE, TINY, 4, (12, 10))
    bns = [m for m in net.cells.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.affine for bn in bns)
    bad = Genotype(normal=NORMAL, reduce=REDUCE,
                   seq=CellGenotype(nodes=((("gru_1", 0), ("lstm_1", 1)),), concat=(2,)))
    with pytest.raises(ValueError, match="genotype.seq node 0 uses unknown op 'gru_1'"):
        Network(bad, TINY, 4, (12, 10))


def test_count_parameters_partitions_all_parameters():
    torch.manual_seed(0)
    for model in (Network(GENOTYPE, TINY, 4, (12, 10)), SuperNet(TINY, 4, (12, 10))):
        counts = count_parameters(model)
        assert counts["total"] == sum(p.numel() for p in model.parameters())
        assert counts["other"] == 0
        assert sum(counts[k] for k in ("stem", "cnn", "seq", "head", "aux", "alphas")) == counts["total"]
        assert counts["stem"] == sum(p.numel() for p in model.stem.parameters())
        assert counts["head"] == sum(p.numel() for p in model.classifier.parameters()) + sum(
            p.numel() for p in model.head_norm.parameters())
    assert counts["alphas"] == sum(a.numel() for a in model.alphas())


@pytest.mark.parametrize("affine", [False, True])
def test_head_norm_standardises_the_pooled_vector(affine):
    """With ``space.head_norm`` the classifier reads each pooled feature standardised over the
    batch (training mode), however small its spread was; without it, the identity."""
    torch.manual_seed(0)
    space = override(TINY, head_norm=True)
    net = (Network(GENOTYPE, space, 4, (12, 10)) if affine else SuperNet(space, 4, (12, 10))).train()
    assert isinstance(net.head_norm, nn.BatchNorm1d) and net.head_norm.affine == affine
    seen = {}
    net.head_norm.register_forward_hook(lambda m, i, o: seen.update(pooled=i[0]))
    net.classifier.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    net(torch.randn(16, 1, 12, 10))
    v = seen["pooled"].var(0, unbiased=False)
    assert torch.allclose(seen["x"].mean(0), torch.zeros(space.seq_hidden), atol=1e-5)
    assert torch.allclose(seen["x"].var(0, unbiased=False), v / (v + net.head_norm.eps), rtol=1e-3)
    assert (seen["x"].var(0) > 10 * v).all()           # the small spread is amplified
    assert isinstance(Network(GENOTYPE, TINY, 4, (12, 10)).head_norm, nn.Identity)


def test_trace_shapes_lists_stages_in_order():
    torch.manual_seed(0)
    net = Network(GENOTYPE, TINY, 4, (12, 10))
    trace = trace_shapes(net, torch.randn(2, 1, 12, 10))
    names = [name for name, _ in trace]
    assert names == ["input", "stem", "cells.0", "cells.1", "cells.2", "seq_in[0]", "seq_in[1]",
                     "seq_cells.0", "seq_cells.1", "pool", "head_norm", "classifier"]
    shapes = dict(trace)
    assert shapes["stem"] == (2, 6, 12, 10)
    assert shapes["cells.1"] == (2, 8, 6, 5) and shapes["cells.2"] == (2, 16, 3, 3)
    assert shapes["seq_cells.1"] == (2, 3, 6) and shapes["pool"] == (2, 6)
    assert "cells.2" in format_trace(trace)
    assert net.training
