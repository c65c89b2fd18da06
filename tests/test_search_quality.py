"""Search-quality diagnostics, the remedies for a search that does not decide, and split_seed."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from test_architect import TinyMixed
from test_search import search_cfg, tiny_fold

from emodarts_core.config import SearchConfig, UsageError, apply_overrides, get_profile
from emodarts_core.data.datasets import split_search
from emodarts_core.nas.genotype import Genotype, sample_genotype
from emodarts_core.nas.relaxation import relaxed_weights, selection_scores, smoothed
from emodarts_core.nas.supernet import SuperNet
from emodarts_core.search.architect import Architect
from emodarts_core.search.loop import remedy_schedule, run_search
from emodarts_core.search.quality import (agreement, chance_agreement, entropy_fraction,
                                          epoch_quality, flip_rate, mean_pairwise_agreement,
                                          top2_margin)
from emodarts_core.train.runs import RunDir


def test_entropy_fraction_and_margin_on_known_matrices():
    uniform = np.full((3, 4), 0.25)
    onehot = np.eye(4)[:3]
    assert entropy_fraction(uniform) == pytest.approx(1.0)
    assert entropy_fraction(onehot) == pytest.approx(0.0, abs=1e-12)
    # margins ignore the last column ('none'): rows (0.5, 0.3, 0.1 | 0.1) and (0.2, 0.2, 0.2 | 0.4)
    w = np.array([[0.5, 0.3, 0.1, 0.1], [0.2, 0.2, 0.2, 0.4]])
    assert top2_margin(w) == pytest.approx((0.2 + 0.0) / 2)
    with pytest.raises(ValueError, match="probability"):
        entropy_fraction(np.array([[0.5, 0.7]]))


def _cell(pairs):
    return {"nodes": [[list(p) for p in node] for node in pairs], "concat": [2, 3]}


def test_agreement_and_flip_rate_count_kept_edge_op_pairs():
    a = {"normal": _cell([[("sep_conv_3x3", 0), ("skip_connect", 1)],
                          [("max_pool_3x3", 0), ("dil_conv_3x3", 2)]]),
         "reduce": _cell([[("sep_conv_3x3", 0), ("skip_connect", 1)],
                          [("max_pool_3x3", 0), ("dil_conv_3x3", 2)]]),
         "seq": _cell([[("lstm_1", 0), ("lstm_2", 1)], [("lstm_1", 0), ("skip_connect", 2)]])}
    b = {k: dict(v) for k, v in a.items()}
    # same edge, other op (normal node 0); other edge, same op (seq node 1): 2 of 12 pairs differ
    b["normal"] = _cell([[("sep_conv_5x5", 0), ("skip_connect", 1)],
                         [("max_pool_3x3", 0), ("dil_conv_3x3", 2)]])
    b["seq"] = _cell([[("lstm_1", 0), ("lstm_2", 1)], [("lstm_1", 1), ("skip_connect", 2)]])
    assert agreement(a, a) == 1.0
    assert agreement(a, b) == pytest.approx(10 / 12)
    assert flip_rate(a, b) == pytest.approx(2 / 12)
    assert agreement(a, b, cells=("reduce",)) == 1.0
    # sep_conv_5x5 for sep_conv_3x3 is the same family; the moved seq edge is not the same edge
    assert agreement(a, b, level="family") == pytest.approx(11 / 12)
    assert agreement(a, b, level="edge") == pytest.approx(11 / 12)
    with pytest.raises(ValueError, match="level"):
        agreement(a, b, level="cell")
    assert mean_pairwise_agreement([a, a, b]) == pytest.approx((1 + 10 / 12 + 10 / 12) / 3)


@pytest.mark.parametrize("seq_ops", ["lstm", "all"])
def test_chance_agreement_is_the_random_search_samplers_expected_agreement(seq_ops):
    """The closed form against 3000 pairs drawn by random search's own sampler."""
    space = apply_overrides(get_profile("cpu"), [f"space.seq_ops={seq_ops}"]).space
    g = torch.Generator().manual_seed(0)
    pairs = [(sample_genotype(space, g), sample_genotype(space, g)) for _ in range(3000)]
    for level in ("op", "family", "edge"):
        draws = [agreement(a, b, level=level) for a, b in pairs]
        se = np.std(draws) / math.sqrt(len(draws))
        assert abs(np.mean(draws) - chance_agreement(space, level=level)) < 4 * se, level
    exact = chance_agreement(space)
    # cpu space, all 14 sequence ops: CNN 7 ops, seq 13 ops, 3 nodes per cell (~8.6 %)
    if seq_ops == "all":
        cnn = np.mean([2 / 2 / 7] * 2 + [2 / 3 / 7] * 2 + [2 / 4 / 7] * 2)
        seq = np.mean([2 / 2 / 13] * 2 + [2 / 3 / 13] * 2 + [2 / 4 / 13] * 2)
        assert exact == pytest.approx((2 * cnn + seq) / 3)


def test_split_seed_fixes_the_split_across_run_seeds(tmp_path):
    """With search.split_seed the weights'/alphas' halves no longer follow the run's seed."""
    fold = tiny_fold()
    runs = []
    for seed in (0, 1):
        cfg = search_cfg(tmp_path, f"s{seed}", search={"epochs": 1, "order": "first",
                                                          "split_seed": 7})
        cfg = cfg.__class__(**{**cfg.__dict__, "seed": seed})
        runs.append(RunDir.open(run_search(cfg, progress=False, data=fold).run_dir))
    metrics = [r.read_json(RunDir.METRICS) for r in runs]
    assert [m["split_seed"] for m in metrics] == [7, 7]
    x_w7 = split_search(fold.x_train, fold.y_train, 0.5, 7)[0]
    x_w0 = split_search(fold.x_train, fold.y_train, 0.5, 0)[0]
    assert not torch.equal(x_w7, x_w0)             # the split really is the split seed's
    # the alphas start from each run's own seed, so the searches differ
    hist = [r.history()["epochs"][-1]["alphas"] for r in runs]
    assert hist[0] != hist[1]


def test_every_epoch_records_its_quality(tmp_path):
    res = run_search(search_cfg(tmp_path, search={"epochs": 2, "order": "first"}),
                     progress=False, data=tiny_fold())
    run = RunDir.open(res.run_dir)
    epochs = run.history()["epochs"]
    q0, q1 = epochs[0]["quality"], epochs[1]["quality"]
    assert q0["flip_rate"] is None
    assert q1["flip_rate"] == pytest.approx(flip_rate(epochs[0]["genotype"], epochs[1]["genotype"]))
    for cell in ("normal", "reduce", "seq"):
        w = np.asarray(epochs[1]["alphas"][cell])
        assert q1["entropy_fraction"][cell] == pytest.approx(entropy_fraction(w), abs=1e-6)
        assert 0.0 < q1["entropy_fraction"][cell] <= 1.0
    assert run.read_json(RunDir.METRICS)["quality"] == q1


def test_accumulated_alpha_gradient_equals_the_whole_batchs():
    """chunks=k averages the pieces' gradients by size: without batch statistics in the net that
    is exactly the whole batch's gradient, in both orders."""
    for order in ("first", "second"):
        torch.manual_seed(0)
        net = TinyMixed().double()
        w_opt = torch.optim.SGD(net.weights(), lr=0.5, momentum=0.9)
        xt, xv = torch.randn(8, 5, dtype=torch.float64), torch.randn(12, 5, dtype=torch.float64)
        yt, yv = torch.randint(0, 3, (8,)), torch.randint(0, 3, (12,))
        arch = Architect(net, SearchConfig(order=order))
        whole, lw = arch.alpha_gradients(xt, yt, xv, yv, 0.1, w_opt)
        split, ls = arch.alpha_gradients(xt, yt, xv, yv, 0.1, w_opt, chunks=3)
        assert ls == pytest.approx(lw, rel=1e-9)
        # second order: the finite difference sees a slightly different dw norm, hence eps
        tol = 1e-12 if order == "first" else 1e-6
        assert torch.allclose(whole[0], split[0], atol=tol), order


def test_beta_decay_adds_its_regulariser_gradient():
    torch.manual_seed(0)
    net = TinyMixed().double()
    xt, yt = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 3, (8,))
    arch = Architect(net, SearchConfig(order="first"))
    (plain,), _ = arch.alpha_gradients(xt, yt, xt, yt, 0.1, None)
    before = net.alpha.detach().clone().requires_grad_()
    torch.logsumexp(before, -1).mean().backward()     # d/dalpha of mean_edges logsumexp(alpha)
    arch.step(xt, yt, xt, yt, 0.1, None, beta_weight=2.0)
    assert torch.allclose(net.alpha.grad, plain + 2.0 * before.grad, atol=1e-12)


def test_dirichlet_relaxation_draws_in_training_and_uses_its_mean_otherwise():
    torch.manual_seed(0)
    alpha = torch.randn(5, 4, requires_grad=True)
    draw = relaxed_weights(alpha, "dirichlet", sample=True)
    assert torch.allclose(draw.sum(-1), torch.ones(5)) and (draw > 0).all()
    draw.pow(2).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0     # reparameterised
    mean = relaxed_weights(alpha, "dirichlet", sample=False)
    conc = torch.nn.functional.elu(alpha) + 1
    assert torch.allclose(mean, conc / conc.sum(-1, keepdim=True))
    assert torch.allclose(torch.softmax(selection_scores(alpha, "dirichlet"), -1), mean)
    # many draws average to the mean
    draws = torch.stack([relaxed_weights(alpha, "dirichlet", sample=True) for _ in range(4000)])
    assert torch.allclose(draws.mean(0), mean.detach(), atol=0.02)

    p = get_profile("smoke")
    net = SuperNet(p.space, 4, (20, 16), relaxation="dirichlet")
    net.eval()
    assert all(torch.equal(a, b) for a, b in zip(net.mixing_weights().values(),
                                                  net.alpha_weights().values()))
    net.train()
    assert not torch.equal(net.mixing_weights()["normal"], net.alpha_weights()["normal"])
    with pytest.raises(ValueError, match="relaxation"):
        SuperNet(p.space, 4, (20, 16), relaxation="gumbel")


def test_smoothing_noise_is_bounded_and_only_in_training_passes():
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(6, 5), -1)
    noisy = smoothed(w, 0.3)
    assert (noisy - w).abs().max() <= 0.3 and not torch.equal(noisy, w)
    assert smoothed(w, 0.0) is w
    p = get_profile("smoke")
    net = SuperNet(p.space, 4, (20, 16))
    net.smoothing_eps = 0.3
    net.eval()
    assert torch.equal(net.mixing_weights()["seq"], net.alpha_weights()["seq"])
    net.train()
    diff = net.mixing_weights()["seq"] - net.alpha_weights()["seq"]
    assert 0 < diff.abs().max() <= 0.3


def test_remedy_schedule_ramps():
    s = SearchConfig(epochs=5, smoothing_eps=0.3, beta_decay=4.0, alpha_warmup_epochs=1)
    sched = [remedy_schedule(s, e) for e in range(5)]
    assert [round(x, 6) for x, _ in sched] == [0.03, 0.0975, 0.165, 0.2325, 0.3]
    assert [b for _, b in sched] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert remedy_schedule(SearchConfig(), 3) == (0.0, 0.0)


def test_remedies_run_end_to_end_and_are_checked(tmp_path):
    """A search with every remedy on at once runs, records its quality and is reproducible."""
    remedies = {"epochs": 2, "order": "first", "alpha_accumulate": 2, "relaxation": "dirichlet",
                "smoothing_eps": 0.3, "beta_decay": 1.0, "split_seed": 3}
    a = run_search(search_cfg(tmp_path, "a", search=remedies), progress=False, data=tiny_fold())
    b = run_search(search_cfg(tmp_path, "b", search=remedies), progress=False, data=tiny_fold())
    ha, hb = (RunDir.open(r.run_dir).history()["epochs"] for r in (a, b))
    assert ha[-1]["alphas"] == hb[-1]["alphas"]
    assert isinstance(Genotype.from_dict(ha[-1]["genotype"]), Genotype)
    for bad, match in ((["search.relaxation=gumbel"], "relaxation"),
                       (["search.alpha_accumulate=0"], "alpha_accumulate"),
                       (["search.smoothing_eps=-0.1"], "smoothing_eps"),
                       (["search.beta_decay=-1"], "beta_decay")):
        with pytest.raises(UsageError, match=match):
            apply_overrides(get_profile("smoke"), bad)


def test_epoch_quality_of_uniform_alphas_is_undecided():
    p = get_profile("smoke")
    net = SuperNet(p.space, 4, (20, 16))
    with torch.no_grad():
        for a in net.alphas():
            a.zero_()
    q = epoch_quality({k: v.detach() for k, v in net.alpha_weights().items()}, net.genotype())
    assert all(v == pytest.approx(1.0) for v in q.entropy_fraction.values())
    assert all(v == pytest.approx(0.0, abs=1e-7) for v in q.top2_margin.values())


def test_setting_summary_and_its_plot_from_real_search_runs(tmp_path):
    """Two folds x two seeds of a smoke search, summarised and plotted from their run dirs."""
    import matplotlib
    matplotlib.use("Agg")
    from emodarts_core.results.plots import plot_search_quality
    from emodarts_core.search.quality import (GATE_AGREEMENT, gate_table, load_record,
                                              summarise_setting)

    records = []
    for fold in (0, 1):
        for seed in (0, 1):
            cfg = search_cfg(tmp_path, f"f{fold}s{seed}",
                             search={"epochs": 2, "order": "first", "split_seed": 0})
            cfg = cfg.__class__(**{**cfg.__dict__, "seed": seed, "fold": fold})
            records.append(load_record(run_search(cfg, progress=False,
                                                  data=tiny_fold(seed=fold)).run_dir))
    s = summarise_setting(records, search_cfg(tmp_path).profile.space)
    assert s.n_runs == 4 and s.n_folds == 2
    for fold in (0, 1):
        a, b = (r.genotype for r in records if r.fold == fold)
        assert s.agreement_by_fold[fold] == pytest.approx(agreement(a, b))
    assert s.agreement == pytest.approx(np.mean(list(s.agreement_by_fold.values())))
    for fold in (0, 1):
        assert s.entropy_by_fold[fold] == pytest.approx(np.mean(
            [np.mean(list(r.epochs[-1]["quality"]["entropy_fraction"].values()))
             for r in records if r.fold == fold]))
    assert s.passes == all(s.agreement_by_fold[f] >= GATE_AGREEMENT
                           and s.entropy_by_fold[f] <= 0.75 for f in (0, 1))
    table = gate_table({"smoke": s}).splitlines()
    assert len(table) == 3 and table[2].startswith("| smoke | 4 |")
    assert f"0: {s.agreement_by_fold[0]:.2f} / {s.entropy_by_fold[0]:.2f}" in table[2]
    assert table[2].rstrip().endswith("| pass |" if s.passes else "| fail |")
    assert s.entropy_mean == pytest.approx(np.mean(
        [np.mean([r.epochs[-1]["quality"]["entropy_fraction"][c] for r in records])
         for c in ("normal", "reduce", "seq")]))
    fig = plot_search_quality(RunDir.open(tmp_path / "f0s0").history())
    assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 4      # three cells and the gate
    with pytest.raises(ValueError, match="two seeds"):
        summarise_setting(records[:1], search_cfg(tmp_path).profile.space)


def _summary(agreement: float, entropy: float):
    from emodarts_core.search.quality import SettingSummary
    cells = {c: entropy for c in ("normal", "reduce", "seq")}
    return SettingSummary(
        n_runs=6, n_folds=2, entropy_fraction=cells, entropy_mean=entropy, top2_margin=cells,
        flip_rate=0.1, agreement=agreement, agreement_by_fold={0: agreement, 1: agreement},
        entropy_by_fold={0: entropy, 1: entropy}, chance=0.087, family_agreement=0.5,
        family_chance=0.41, edge_agreement=0.75, edge_chance=0.72, rank_correlation=0.05,
        valid_ua=0.6, minutes=60.0)


def test_alpha_rank_correlation_sees_the_order_not_only_the_winner():
    from emodarts_core.search.quality import alpha_rank_correlation

    a = {"normal": [[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]}
    assert alpha_rank_correlation(a, a, cells=("normal",)) == pytest.approx(1.0)
    reverse = {"normal": [row[::-1] for row in a["normal"]]}
    assert alpha_rank_correlation(a, reverse, cells=("normal",)) == pytest.approx(-1.0)
    # the same winner, the rest reversed: agreement on the winner, rank correlation 0.2
    b = {"normal": [[0.3, 0.2, 0.1, 0.4], [0.4, 0.1, 0.2, 0.3]]}
    assert alpha_rank_correlation(a, b, cells=("normal",)) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="shapes"):
        alpha_rank_correlation(a, {"normal": [[0.5, 0.5]]}, cells=("normal",))


def test_gate_reading_follows_the_plans_stopping_rule():
    from emodarts_core.search.quality import GATE_ORDER, gate_reading

    fail, ok = _summary(0.18, 0.86), _summary(0.45, 0.7)
    assert ok.passes and not fail.passes
    one = gate_reading({"long": fail})
    assert "- `long` **fails**: seeds of a fold share 0.18" in one
    assert "with a correlation of 0.05" in one
    assert "still to run: `long-acc2`, `drnas`, `sdarts`, `beta`." in one
    with_pt = gate_reading({"long": fail, "long+pt": fail})      # a +pt row is no setting
    assert "(1 of the plan's 5)" in with_pt
    adopted = gate_reading({"long": fail, "long-acc2": fail, "drnas": ok, "sdarts": ok})
    assert "`drnas` is the first setting that passes" in adopted
    flat = gate_reading({name: fail for name in GATE_ORDER})
    assert "the search space is flat" in flat and "still to run" not in flat
    # one fold below the gate is a fail, whatever the mean
    split = dataclasses.replace(ok, agreement_by_fold={0: 0.7, 1: 0.3})
    assert not split.passes and "**fails**" in gate_reading({"long": split})


def test_gate_summary_and_plot_from_the_committed_records():
    """The exported gate records (benchmarks/records/gate-ravdess) read back in the plan's
    order; the figure has one bar per fold and setting and the gate's lines."""
    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path

    from emodarts_core.results.evidence_plots import plot_gate
    from emodarts_core.search.quality import GATE_ORDER, PT_SUFFIX, summarise_gate

    root = Path(__file__).resolve().parents[1] / "benchmarks" / "records" / "gate-ravdess"
    summaries = summarise_gate(root)
    names = list(summaries)
    settings = [n for n in names if not n.endswith(PT_SUFFIX)]
    assert names[0] == "long" and settings == [n for n in GATE_ORDER if n in summaries]
    for i, name in enumerate(names):          # a +pt row right after its own setting
        if name.endswith(PT_SUFFIX):
            assert names[i - 1] == name.removesuffix(PT_SUFFIX)
    assert all(s.n_runs == 6 and s.n_folds == 2 for s in summaries.values())
    fig = plot_gate(summaries)
    left, right = fig.axes[:2]
    assert len(left.patches) == len(right.patches) == 2 * len(names)
    assert [round(p.get_height(), 6) for p in right.patches[:1]] == [
        round(summaries["long"].entropy_by_fold[0], 6)]
    assert len(left.lines) == 2 and len(right.lines) == 1          # gate + chance; gate
    with pytest.raises(FileNotFoundError):
        summarise_gate(root / "nowhere")


def test_recalibrated_batchnorm_matches_evaluation_conditions():
    """After recalibrate_batchnorm a BatchNorm's running statistics are the plain average of its
    batch statistics over the data with dropout off; flags and momentum are restored."""
    from torch import nn

    from emodarts_core.train.engine import recalibrate_batchnorm

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    x = torch.randn(40, 6) * 3 + 1
    net.train()
    for _ in range(5):                       # running stats of dropout-noised activations
        net(x)
    n = recalibrate_batchnorm(net, x, batch_size=10, device=torch.device("cpu"))
    assert n == 1 and net.training and net[1].training and net[2].momentum == 0.1
    h = net[0](x).detach()
    means = torch.stack([h[i:i + 10].mean(0) for i in range(0, 40, 10)]).mean(0)
    vars_ = torch.stack([h[i:i + 10].var(0) for i in range(0, 40, 10)]).mean(0)
    assert torch.allclose(net[2].running_mean, means, atol=1e-5)
    assert torch.allclose(net[2].running_var, vars_, atol=1e-5)
    assert recalibrate_batchnorm(nn.Linear(2, 2), x[:, :2], 10, torch.device("cpu")) == 0


def test_the_gate_needs_every_fold():
    """A setting whose mean agreement clears the gate but one fold does not, fails."""
    from dataclasses import replace

    from emodarts_core.search.quality import SettingSummary

    base = SettingSummary(n_runs=6, n_folds=2, entropy_fraction={"normal": 0.5, "reduce": 0.5,
                          "seq": 0.5}, entropy_mean=0.5, top2_margin={"normal": 0.3,
                          "reduce": 0.3, "seq": 0.3}, flip_rate=0.1, agreement=0.45,
                          agreement_by_fold={0: 0.6, 1: 0.3}, entropy_by_fold={0: 0.5, 1: 0.5},
                          chance=0.1, family_agreement=0.6, family_chance=0.4,
                          edge_agreement=0.8, edge_chance=0.7, rank_correlation=0.3,
                          valid_ua=0.5, minutes=30.0)
    assert not base.passes
    assert replace(base, agreement_by_fold={0: 0.6, 1: 0.4}).passes
    assert not replace(base, agreement_by_fold={0: 0.6, 1: 0.4},
                       entropy_by_fold={0: 0.5, 1: 0.8}).passes


def test_gate_rows_for_perturbation_selection_judge_their_own_genotypes(tmp_path):
    """A setting whose searches all carry perturbation.json gains a ``+pt`` row right after
    it: the same alphas (entropy), the perturbation genotypes (agreement)."""
    import json
    import shutil
    from pathlib import Path

    from emodarts_core.search.quality import gate_reading, load_record, summarise_gate

    records = Path(__file__).resolve().parents[1] / "benchmarks" / "records" / "gate-ravdess"
    shutil.copytree(records / "long", tmp_path / "long",
                    ignore=shutil.ignore_patterns("perturbation.json"))
    assert list(summarise_gate(tmp_path)) == ["long"]            # none has the file yet
    runs = sorted((tmp_path / "long").glob("fold*/seed*"))
    one = json.loads((runs[0] / "genotype.json").read_text())
    for run in runs:                          # every search "selects" the same genotype
        (run / "perturbation.json").write_text(json.dumps({"genotype": one}))
    summaries = summarise_gate(tmp_path)
    assert list(summaries) == ["long", "long+pt"]
    pt, base = summaries["long+pt"], summaries["long"]
    assert pt.agreement == pytest.approx(1.0) and base.agreement < 0.5
    assert pt.entropy_by_fold == base.entropy_by_fold
    assert load_record(runs[1], "perturbation").genotype == one
    assert "genotypes selected by perturbation" in gate_reading(summaries)
    with pytest.raises(ValueError, match="selection"):
        load_record(runs[0], "magic")
    (runs[0] / "perturbation.json").unlink()
    with pytest.raises(FileNotFoundError, match="perturbation.json"):
        load_record(runs[0], "perturbation")
    assert list(summarise_gate(tmp_path)) == ["long"]


def test_search_gate_script_end_to_end(tmp_path):
    """benchmarks/search_gate.py with --perturbation on a tiny generated corpus: a row per
    setting and its +pt row, the export read back by summarise_gate (what chapter 6 and
    RESULTS read) gives the script's own summary, a rerun keeps every search, and a malformed
    --setting is a one-line error."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from emodarts_core.data.corpora.generated import generate_corpus
    from emodarts_core.search.quality import summarise_gate

    data = generate_corpus(tmp_path / "gen", n_speakers=6, per_class=2, seed=0)
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "search_gate.py"
    out, rec = tmp_path / "runs", tmp_path / "records"
    base = [sys.executable, str(script), "--corpus", "generated", "--data-root", str(data),
            "--profile", "smoke", "--folds", "0", "--seeds", "0,1", "--out", str(out),
            "--perturbation"]
    env = {"EMODARTS_THREADS": "1", "PATH": "/usr/bin:/bin"}
    first = subprocess.run([*base, "--setting", "quick=", "--export", str(rec)],
                           capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("perturbation:") == 2            # each search read by PT
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary) == ["quick", "quick+pt"]
    assert all((rec / "quick" / "fold0" / f"seed{s}" / "perturbation.json").is_file()
               for s in (0, 1))
    from_records = summarise_gate(rec)
    for name, row in summary.items():
        assert from_records[name].to_dict() == {k: v for k, v in row.items()
                                                if k != "overrides"} | {
            "agreement_by_fold": {0: row["agreement_by_fold"]["0"]},
            "entropy_by_fold": {0: row["entropy_by_fold"]["0"]}}
    running = out / "later" / "fold0" / "seed0"             # another setting, unfinished
    running.mkdir(parents=True)
    (running / "environment.json").write_text("{}")
    again = subprocess.run([*base, "--setting", "quick=", "--export", str(tmp_path / "rec2")],
                           capture_output=True, text=True, env=env, check=True)
    assert "[gate]" not in again.stdout and "| quick+pt |" in again.stdout
    assert sorted(p.name for p in (tmp_path / "rec2").iterdir()) == ["quick"]
    one_seed = list(base)
    one_seed[one_seed.index("--seeds") + 1] = "0"
    one = subprocess.run([*one_seed, "--setting", "quick=", "--summary-only"],
                         capture_output=True, text=True, env=env)
    assert one.returncode == 0, one.stderr                  # one seed: no row, no crash
    assert "no two of one fold yet" in one.stdout and "| quick |" not in one.stdout
    bad = subprocess.run([*base, "--setting", "noequals"], capture_output=True, text=True,
                         env=env)
    assert bad.returncode != 0 and "expected NAME=OVERRIDES" in bad.stderr
