"""Perturbation-based selection (emodarts_core.search.perturbation): the cached passes are the
supernet's own forward pass, the scores are loss rises, and the genotype follows the scores."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from test_search import search_cfg, tiny_fold

from emodarts_core.config import get_profile
from emodarts_core.nas.genotype import Genotype, edges_of_node, top_k_cell
from emodarts_core.nas.supernet import SuperNet
from emodarts_core.search import perturbation as pt
from emodarts_core.search.loop import run_search
from emodarts_core.train.runs import RunDir

PRIMS = ("a", "b", "c", "none")


def test_top_k_cell_ranks_edges_by_their_own_scores_when_given():
    # two nodes: node 0 has edges 0-1, node 1 edges 2-4; ops a, b, c
    ops = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3],
                        [0.0, 0.0, 0.8], [0.7, 0.1, 0.1], [0.2, 0.6, 0.0]])
    by_ops = top_k_cell(ops, PRIMS, 2, k=2)
    assert by_ops.nodes[1] == (("c", 0), ("a", 1))           # best op scores 0.8, 0.7
    edges = torch.tensor([1.0, 2.0, 0.1, 0.3, 0.9])
    by_edges = top_k_cell(ops, PRIMS, 2, k=2, edge_scores=edges)
    assert by_edges.nodes[1] == (("a", 1), ("b", 2))         # edges 3 and 4 of the cell
    assert by_edges.nodes[0] == (("b", 0), ("a", 1))
    with pytest.raises(ValueError, match="do not fit"):
        top_k_cell(ops[:, :2], PRIMS, 2)


def _net(seed: int = 0) -> tuple[SuperNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    space = get_profile("smoke").space
    net = SuperNet(space, 4, (20, 16))
    with torch.no_grad():
        for a in net.alphas():
            a.normal_(0, 1)                   # weights far from uniform, so masks matter
    net.eval()
    x, y = torch.randn(10, 1, 20, 16), torch.arange(10) % 4
    return net, x, y


def test_scores_are_the_full_forward_passes_loss_rises_for_every_cell_and_edge():
    """Each variant's pass starts at a later cell with the states of the unmasked pass; its loss
    must be the full forward pass's with that mask, in every cell type, op and whole edge."""
    net, x, y = _net()
    res = pt.perturbation_scores(net, x, y, batch_size=4)
    base = {k: v.detach() for k, v in net.alpha_weights().items()}

    def full(w) -> float:
        with torch.no_grad():
            return float(F.cross_entropy(net(x, w), y))

    assert res.base_loss == pytest.approx(full(base), rel=1e-5)
    for cell in pt.CELLS:
        for edge, op in ((1, 0), (2, 2)):
            masked = base[cell].clone()
            masked[edge, op] = 0.0
            rise = full({**base, cell: masked}) - res.base_loss
            assert res.op_scores[cell][edge][op] == pytest.approx(rise, abs=1e-5), cell
            assert abs(rise) > 1e-6                 # the mask really changes the output
        masked = base[cell].clone()
        masked[0] = 0.0
        assert res.edge_scores[cell][0] == pytest.approx(
            full({**base, cell: masked}) - res.base_loss, abs=1e-5), cell


def test_scores_select_the_genotype():
    net, x, y = _net()
    res = pt.perturbation_scores(net, x, y, batch_size=4)
    base = {k: v.detach() for k, v in net.alpha_weights().items()}
    space, prims = net.space, net.primitives
    for cell, nodes in (("normal", space.cnn_nodes), ("seq", space.seq_nodes)):
        ops, edges = torch.tensor(res.op_scores[cell]), torch.tensor(res.edge_scores[cell])
        got = getattr(res.genotype, cell)
        assert got == top_k_cell(ops, prims[cell], nodes, 2, edges)
        for j, node in enumerate(got.nodes):        # each kept edge carries its best op
            for op, src in node:
                row = list(edges_of_node(j))[src]
                assert prims[cell][int(ops[row].argmax())] == op
    # scoring does not move the supernet
    assert all(torch.equal(a, b) for a, b in zip(base.values(),
                                                  net.alpha_weights().values()))


def test_select_by_perturbation_on_a_search_run_writes_and_reads_its_file(tmp_path):
    fold = tiny_fold()
    res = run_search(search_cfg(tmp_path, search={"epochs": 1, "order": "first"}),
                     progress=False, data=fold)
    got = pt.select_by_perturbation(res.run_dir, progress=False, data=fold)
    written = json.loads((res.run_dir / pt.FILE).read_text())
    assert Genotype.from_dict(written["genotype"]) == got.genotype
    assert written["n"] == got.n == 8                  # the alpha half of 16 utterances
    again = pt.select_by_perturbation(res.run_dir, progress=False, data=fold)
    assert again == got                                # read back, not recomputed
    assert pt.load_perturbation(res.run_dir).edge_scores == got.edge_scores


def test_select_by_perturbation_refuses_what_it_cannot_score(tmp_path):
    fold = tiny_fold()
    res = run_search(search_cfg(tmp_path, search={"epochs": 1, "order": "first"}),
                     progress=False, data=fold)
    (res.run_dir / RunDir.METRICS).unlink()
    with pytest.raises(ValueError, match="has not finished"):
        pt.select_by_perturbation(res.run_dir, progress=False, data=fold)
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        pt.select_by_perturbation(tmp_path / "nothing", progress=False, data=fold)


def test_search_selection_perturbation_makes_its_genotype_the_searchs(tmp_path):
    fold = tiny_fold()
    cfg = search_cfg(tmp_path, search={"epochs": 1, "order": "first",
                                       "selection": "perturbation"})
    res = run_search(cfg, progress=False, data=fold)
    run = RunDir.open(res.run_dir)
    chosen = pt.load_perturbation(res.run_dir)
    assert res.genotype == chosen.genotype
    assert Genotype.from_dict(run.read_json(RunDir.GENOTYPE)) == chosen.genotype
    assert run.read_json(RunDir.METRICS)["selection"].startswith("perturbation")
    # the same search with the alphas' rule: the same supernet, its own genotype file only
    alphas = run_search(search_cfg(tmp_path, "a", search={"epochs": 1, "order": "first"}),
                        progress=False, data=fold)
    assert not (alphas.run_dir / pt.FILE).exists()
    assert (RunDir.open(alphas.run_dir).history()["epochs"][-1]["alphas"]
            == run.history()["epochs"][-1]["alphas"])
    # a finished run reopened reads its choice back
    assert run_search(cfg, progress=False, data=fold).genotype == chosen.genotype


def test_unknown_selection_is_a_clear_error():
    from emodarts_core.config import UsageError, apply_overrides

    with pytest.raises(UsageError, match="selection must be one of alphas, perturbation"):
        apply_overrides(get_profile("smoke"), ["search.selection=magic"])
