import pytest
import torch

from emodarts_core.config import CNN_PRIMITIVES
from emodarts_core.nas.genotype import CellGenotype, Genotype, derive_cell, edges_of_node, n_edges


def test_edge_layout():
    assert n_edges(4) == 14
    assert list(edges_of_node(0)) == [0, 1]
    assert list(edges_of_node(3)) == [9, 10, 11, 12, 13]


def test_derive_keeps_two_strongest_edges_and_never_none():
    alpha = torch.zeros(n_edges(2), len(CNN_PRIMITIVES))
    alpha[:, -1] = 10.0                      # `none` dominates everywhere: must still be skipped
    alpha[0, 3] = 5.0                        # node 0: edge from state 0 -> sep_conv_3x3
    alpha[1, 0] = 1.0                        # node 0: edge from state 1 -> max_pool_3x3
    alpha[2, 2] = 0.5                        # node 1: state 0 -> skip (weak)
    alpha[3, 5] = 4.0                        # node 1: state 1 -> dil_conv_3x3
    alpha[4, 6] = 3.0                        # node 1: state 2 -> dil_conv_5x5
    cell = derive_cell(alpha, CNN_PRIMITIVES, n_nodes=2)
    assert cell.nodes[0] == (("sep_conv_3x3", 0), ("max_pool_3x3", 1))
    assert cell.nodes[1] == (("dil_conv_3x3", 1), ("dil_conv_5x5", 2))
    assert cell.concat == (2, 3)
    assert "none" not in cell.ops()


def test_json_round_trip_and_validation():
    cell = CellGenotype(nodes=((("skip_connect", 0), ("sep_conv_3x3", 1)),
                               (("avg_pool_3x3", 2), ("dil_conv_5x5", 0))), concat=(2, 3))
    seq = CellGenotype(nodes=((("lstm_2", 0), ("rnn_att_1", 1)),), concat=(2,))
    g = Genotype(normal=cell, reduce=cell, seq=seq)
    assert Genotype.from_json(g.to_json()) == g
    bad = g.to_dict()
    bad["normal"]["nodes"][0][0][1] = 5         # node 0 cannot read state 5
    with pytest.raises(ValueError, match="state 5"):
        Genotype.from_dict(bad)
    with pytest.raises(ValueError, match="missing"):
        Genotype.from_dict({"normal": cell.to_dict()})
