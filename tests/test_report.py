"""Markdown tables of the chapters (genotypes per epoch, agreement across searches, folds)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest

from emodarts_core.nas.genotype import CellGenotype, Genotype
from emodarts_core.results.collect import ResultRow
from emodarts_core.results.report import (cell_text, fold_table, genotype_agreement,
                                          genotype_per_epoch)


def _cell(*nodes):
    return CellGenotype(nodes=tuple(tuple(n) for n in nodes), concat=tuple(range(2, 2 + len(nodes))))


def _geno(op="sep_conv_3x3", seq="lstm_1"):
    normal = _cell([(op, 0), ("skip_connect", 1)], [("max_pool_3x3", 0), (op, 2)])
    return Genotype(normal=normal, reduce=normal, seq=_cell([(seq, 0), (seq, 1)], [(seq, 1), (seq, 2)]))


def test_cell_text_names_inputs_and_nodes():
    assert cell_text(_geno().normal) == ("n0 = sep_conv_3x3(c\u2096\u208b\u2082) + skip_connect(c\u2096\u208b\u2081); "
                                         "n1 = max_pool_3x3(c\u2096\u208b\u2082) + sep_conv_3x3(n0)")


def test_genotype_per_epoch_marks_changes():
    hist = {"epochs": [
        {"epoch": 0, "valid_ua": 0.25, "skip_count": {"normal": 1}, "genotype": _geno().to_dict()},
        {"epoch": 1, "valid_ua": 0.5, "skip_count": {"normal": 1}, "genotype": _geno().to_dict()},
        {"epoch": 2, "valid_ua": 0.5, "skip_count": {"normal": 0},
         "genotype": _geno(seq="rnn_2").to_dict()},
    ]}
    rows = genotype_per_epoch(hist).splitlines()[2:]
    assert len(rows) == 3 and "**changed:**" not in rows[0] + rows[1]
    assert rows[2].count("**changed:**") == 1 and "rnn_2(c\u2096\u208b\u2082)" in rows[2]
    assert "| 1 | 50.0 % | 1 |" in rows[1]
    with pytest.raises(ValueError, match="no per-epoch genotypes"):
        genotype_per_epoch({"epochs": [{"epoch": 0}]})


def test_genotype_agreement_counts_the_majority():
    table = genotype_agreement([_geno(), _geno(), _geno(op="dil_conv_3x3")], ["a", "b", "c"])
    rows = {tuple(c.strip() for c in ln.split("|")[1:3]): ln for ln in table.splitlines()[2:]}
    assert rows[("normal", "n0")].endswith("| 2 / 3 |")
    assert rows[("seq", "n1")].endswith("| 3 / 3 |")
    assert len(rows) == 2 + 2 + 2
    with pytest.raises(ValueError, match="labels"):
        genotype_agreement([_geno()], ["a", "b"])


def test_fold_table_puts_methods_side_by_side():
    rows = [ResultRow("generated", "cnn_lstm", 0, 0, 0.5, 0.25, "x"),
            ResultRow("generated", "emodarts", 0, 0, 0.75, 0.5, "y"),
            ResultRow("generated", "emodarts", 1, 0, 1.0, 1.0, "z")]
    lines = fold_table(rows).splitlines()
    assert lines[0].index("emodarts WA") < lines[0].index("cnn_lstm WA")
    assert lines[2] == "| generated | 0 | 0 | 75.00 | 50.00 | 50.00 | 25.00 |"
    assert lines[3] == "| generated | 1 | 0 | 100.00 | 100.00 | – | – |"
    assert fold_table([]) == "(no finished runs)"


def test_alpha_decisiveness_is_100_percent_for_uniform_alphas_and_shows_the_gap():
    from emodarts_core.results.evidence_tables import alpha_decisiveness

    uniform = {"epochs": [{"epoch": 0, "alphas": {"normal": [[0.25] * 4, [0.25] * 4]}}]}
    peaked = {"epochs": [{"epoch": 0, "alphas": {"normal": [[0.25] * 4] * 2}},
                         {"epoch": 1, "alphas": {"normal": [[0.7, 0.1, 0.1, 0.1], [0.4, 0.3, 0.2, 0.1]]}}]}
    lines = alpha_decisiveness([uniform, peaked], ["a", "b"]).splitlines()
    assert lines[2] == "| a | normal | 1 | 100.000 % | 0.0000 | 0.2500 |"
    assert lines[3].startswith("| b | normal | 2 | ") and "| 0.3500 |" in lines[3]   # (0.6 + 0.1) / 2
    assert float(lines[3].split("|")[4].strip(" %")) < 100
    with pytest.raises(ValueError, match="no alphas"):
        alpha_decisiveness([{"epochs": [{"epoch": 0}]}], ["c"])


def test_random_search_table_marks_the_kept_candidate(tmp_path):
    import json

    from emodarts_core.results.evidence_tables import random_search_table

    cands = [{"index": i, "genotype": _geno(op).to_dict(), "brief_epochs": 6, "best_epoch": i,
              "valid_ua": ua} for i, (op, ua) in enumerate([("sep_conv_3x3", 0.3), ("dil_conv_5x5", 0.45)])]
    (tmp_path / "candidates.json").write_text(json.dumps({"k": 2, "best_index": 1, "candidates": cands}))
    lines = random_search_table(tmp_path).splitlines()
    assert len(lines) == 4 and lines[3].endswith("| yes |") and not lines[2].endswith("| yes |")
    assert "| 1 | 6 | 1 | 45.00 | n0 = dil_conv_5x5(c\u2096\u208b\u2082)" in lines[3]
    budget = {"unit": "seconds", "limit": 600.0, "spent": {"seconds": 580.4, "steps": 900},
              "search": {"seconds": 600.0, "steps": 368, "epochs": 8}}
    (tmp_path / "candidates.json").write_text(json.dumps(
        {"k": 2, "best_index": 1, "candidates": cands, "budget": budget}))
    assert random_search_table(tmp_path).splitlines()[-1] == (
        "Budget: the search's seconds (600); spent 580 s against the search's 600 s; "
        "steps: 900 against the search's 368.")
    with pytest.raises(ValueError, match="random-search run"):
        random_search_table(tmp_path / "nothing")


def test_provenance_table_lists_top_level_runs_only(tmp_path):
    import json

    from emodarts_core.results.evidence_tables import provenance_table

    for rel, kind in [("c/fold0/seed0/search", "search"), ("c/fold0/seed0/baseline_random", "baseline"),
                      ("c/fold0/seed0/baseline_random/candidates/cand_00", "train")]:
        d = tmp_path / rel
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"kind": kind}))
        (d / "environment.json").write_text(json.dumps(
            {"git_commit": "0123456789abcdef", "torch": "2.9.1", "emodarts_core": "0.1.0",
             "device_name": "x86_64", "start_time": "2026-11-25T22:11:30+00:00"}))
    lines = provenance_table(tmp_path).splitlines()
    assert len(lines) == 4                                   # the candidate is inside another run
    assert lines[3] == ("| c/fold0/seed0/search | search | 012345678 | 0.1.0 | 2.9.1 | x86_64 "
                        "| 2026-11-25T22:11:30+00:00 |")
    with pytest.raises(ValueError, match="no run directories"):
        provenance_table(tmp_path / "c" / "empty")


def test_head_to_head_counts_wins_over_folds_with_both_methods():
    from emodarts_core.results.evidence_tables import head_to_head

    rows = [ResultRow("r", m, f, 0, wa=0.0, ua=ua, run_dir="")
            for m, f, ua in [("emodarts", 0, 0.5), ("random", 0, 0.4), ("emodarts", 1, 0.3),
                             ("random", 1, 0.6), ("emodarts", 2, 0.9)]]
    # differences +10 and -30 points: mean -10, std 28.28; sign flips give means +-10, +-20,
    # of which all 4 reach |mean| >= 10
    assert head_to_head(rows, "emodarts", "random") == (
        "emodarts beat random on test UA in 1 of 2 folds (each fold the mean of its 1 seed; "
        "ahead in 1 of 2 jobs); paired difference -10.00 ± 28.28 points, two-sided p = 1.000 "
        "(exact sign-flip test over the 2 folds)")
    assert head_to_head(rows, "random", "emodarts").startswith(
        "random beat emodarts on test UA in 1 of 2 folds (each fold the mean of its 1 seed; "
        "ahead in 1 of 2 jobs); paired difference +10.00")
    assert head_to_head(rows, "emodarts", "cnn_lstm") == "emodarts beat cnn_lstm on test UA in 0 of 0 folds"
    one = [r for r in rows if r.fold != 1]
    assert head_to_head(one, "emodarts", "random") == (
        "emodarts beat random on test UA in 1 of 1 folds (each fold the mean of its 1 seed; "
        "ahead in 1 of 1 jobs)")


def test_three_seeds_of_one_fold_that_favour_a_count_as_one_fold_win():
    from emodarts_core.results.evidence_tables import head_to_head, paired_folds

    # fold 0: emodarts ahead by 10 points with each of its 3 seeds; fold 1: behind by 20 (one seed)
    rows = ([ResultRow("r", "emodarts", 0, s, wa=0.0, ua=0.6, run_dir="") for s in range(3)]
            + [ResultRow("r", "random", 0, s, wa=0.0, ua=0.5, run_dir="") for s in range(3)]
            + [ResultRow("r", "emodarts", 1, 0, wa=0.0, ua=0.3, run_dir=""),
               ResultRow("r", "random", 1, 0, wa=0.0, ua=0.5, run_dir="")])
    assert paired_folds(rows, "emodarts", "random") == {("r", 0): (60.0, 50.0), ("r", 1): (30.0, 50.0)}
    text = head_to_head(rows, "emodarts", "random")
    assert text.startswith("emodarts beat random on test UA in 1 of 2 folds (each fold the mean "
                           "of the 1-3 seeds both ran there; ahead in 3 of 4 jobs); paired "
                           "difference -5.00 ± 21.21 points")
    assert text.endswith("two-sided p = 1.000 (exact sign-flip test over the 2 folds)")


def test_six_folds_all_won_give_p_1_in_32_whatever_the_seeds():
    from emodarts_core.results.evidence_tables import head_to_head, paired_folds, paired_p_value

    # six folds x three seeds, every job won: 18 jobs would give 2 / 2**18 = 7.6e-06, but the
    # seeds of a fold share its test speakers: six folds give 2 / 2**6 = 0.03125
    rows = [ResultRow("r", m, f, s, wa=0.0, ua=ua + 0.01 * s + 0.02 * f, run_dir="")
            for f in range(6) for s in range(3) for m, ua in [("emodarts", 0.6), ("random", 0.5)]]
    folds = paired_folds(rows, "emodarts", "random")
    assert len(folds) == 6
    assert paired_p_value([a - b for a, b in folds.values()]) == pytest.approx(1 / 32)
    text = head_to_head(rows, "emodarts", "random")
    assert text.startswith("emodarts beat random on test UA in 6 of 6 folds (each fold the mean "
                           "of its 3 seeds; ahead in 18 of 18 jobs)")
    assert text.endswith("two-sided p = 0.031 (exact sign-flip test over the 6 folds)")
    assert "7.6e-06" not in text and "over the 18" not in text


def test_paired_folds_averages_only_the_seeds_both_methods_ran():
    from emodarts_core.results.evidence_tables import paired_folds, paired_jobs

    # fold 0: emodarts has seeds 0-2, random only 0 and 1; seed 2's 90 % must not enter the mean
    rows = ([ResultRow("r", "emodarts", 0, s, wa=0.0, ua=ua, run_dir="")
             for s, ua in [(0, 0.5), (1, 0.7), (2, 0.9)]]
            + [ResultRow("r", "random", 0, s, wa=0.0, ua=ua, run_dir="") for s, ua in [(0, 0.4), (1, 0.6)]]
            + [ResultRow("q", "emodarts", 0, 0, wa=0.2, ua=0.1, run_dir=""),
               ResultRow("q", "random", 0, 0, wa=0.4, ua=0.3, run_dir="")])
    assert paired_folds(rows, "emodarts", "random") == {("q", 0): (10.0, 30.0), ("r", 0): (60.0, 50.0)}
    assert paired_folds(rows, "emodarts", "random", "wa")[("q", 0)] == (20.0, 40.0)
    assert len(paired_jobs(rows, "emodarts", "random")) == 3
    assert paired_folds(rows, "emodarts", "cnn_lstm") == {}
    with pytest.raises(ValueError, match="metric"):
        paired_folds(rows, "emodarts", "random", "f1")


def test_head_to_head_prints_small_p_values_with_significant_digits():
    from emodarts_core.results.evidence_tables import head_to_head

    # twelve folds, all won: p = 2 / 4096 = 0.00049, which three decimals would print as 0.000
    rows = [ResultRow("r", m, f, 0, wa=0.0, ua=ua, run_dir="")
            for f in range(12) for m, ua in [("emodarts", 0.6 + 0.01 * f), ("random", 0.5)]]
    text = head_to_head(rows, "emodarts", "random")
    assert "in 12 of 12 folds" in text and "two-sided p = 0.00049 (" in text


def test_paired_p_value_is_the_exact_sign_flip_probability():
    from emodarts_core.results.evidence_tables import paired_p_value

    # all six differences positive: only the observed signs and their mirror image reach the
    # observed |mean|, 2 of the 2**6 = 64 assignments
    assert paired_p_value([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == pytest.approx(2 / 64)
    # one small negative among large positives: the flips of that one element also qualify
    assert paired_p_value([10.0, 10.0, 10.0, 10.0, 10.0, -1.0]) == pytest.approx(4 / 64)
    # a symmetric sample is as unremarkable as it gets
    assert paired_p_value([3.0, -3.0, 1.0, -1.0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 2"):
        paired_p_value([1.0])


def test_variant_table_pairs_each_variant_with_the_first_by_job():
    from emodarts_core.results.evidence_tables import variant_table

    def rows(values, method="emodarts"):
        return [ResultRow("r", method, f, s, wa=0.0, ua=ua, run_dir="") for (f, s), ua in values.items()]

    default = rows({(0, 0): 0.50, (0, 1): 0.40, (0, 2): 0.60}) + rows({(0, 0): 0.9}, "random")
    warm = rows({(0, 0): 0.55, (0, 1): 0.50})            # seed 2 not finished
    empty = rows({(0, 0): 0.1}, "random")                 # no run of the method
    lines = variant_table({"default": default, "warm-up": warm, "other": empty}).splitlines()
    assert lines[0] == "| corpus | fold | seed | default: UA % | warm-up: UA % | other: UA % |"
    assert lines[2:5] == ["| r | 0 | 0 | 50.00 | 55.00 | – |",
                          "| r | 0 | 1 | 40.00 | 50.00 | – |",
                          "| r | 0 | 2 | 60.00 | – | – |"]
    assert lines[8] == "| default | 3 | 50.00 ± 10.00 | – | – | – | – |"
    # +5 and +10 points on two seeds of one fold: one fold, +7.5, too few folds for a p-value.
    # The default on the same two jobs: 45.00 ± 7.07, not its 50.00 over all three
    assert lines[9] == "| warm-up | 2 | 52.50 ± 3.54 | 1 (2) | 45.00 ± 7.07 | +7.50 | – |"
    assert lines[10] == "| other | 0 | – | – | – | – | – |"
    one = variant_table({"default": default, "short": rows({(0, 1): 0.45})}).splitlines()
    assert one[-1] == "| short | 1 | 45.00 | 1 (1) | 40.00 | +5.00 | – |"     # no std of one value
    assert variant_table({"a": empty}) == "(no finished emodarts runs in any variant)"
    # common_only: seed 2 (run by the default alone) leaves the job list and the default's mean
    common = variant_table({"default": default, "warm-up": warm}, common_only=True).splitlines()
    assert [line.split(" | ")[2] for line in common[2:4]] == ["0", "1"] and len(common) == 9
    assert common[7] == "| default | 2 | 45.00 ± 7.07 | – | – | – | – |"
    assert common[8] == "| warm-up | 2 | 52.50 ± 3.54 | 1 (2) | 45.00 ± 7.07 | +7.50 | – |"
    # the same +5 and +10 on two folds: two independent pairs, p = 2/4
    folds = variant_table({"default": rows({(0, 0): 0.50, (1, 0): 0.40}),
                           "warm-up": rows({(0, 0): 0.55, (1, 0): 0.50})}).splitlines()
    assert folds[-1] == "| warm-up | 2 | 52.50 ± 3.54 | 2 (2) | 45.00 ± 7.07 | +7.50 ± 3.54 | 0.500 |"
    assert variant_table({"default": default, "other": empty}, common_only=True) == \
        "(no emodarts job that every variant ran)"
    with pytest.raises(ValueError, match="no variants"):
        variant_table({})


def test_variant_rows_relabel_and_keep_only_jobs_run_by_two_variants():
    from emodarts_core.results.evidence_tables import variant_rows

    default = [ResultRow("r", m, 0, s, wa=0.0, ua=0.5, run_dir="")
               for m, s in [("emodarts", 0), ("emodarts", 1), ("random", 0)]]
    warm = [ResultRow("r", "emodarts", 0, 0, wa=0.0, ua=0.6, run_dir="")]
    out = variant_rows({"default": default, "warm": warm})
    assert sorted((r.method, r.seed, r.ua) for r in out) == [("default", 0, 0.5), ("warm", 0, 0.6)]


def test_compute_table_sums_every_epochs_seconds_per_method(tmp_path):
    import json

    from emodarts_core.results.evidence_tables import compute_table

    def run(rel, kind, seconds, **options):
        d = tmp_path / rel
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"kind": kind, "options": options}))
        (d / "history.json").write_text(json.dumps({"epochs": [{"seconds": s} for s in seconds]}))
        (d / "metrics.json").write_text("{}")

    job = "c/fold0/seed0"
    run(f"{job}/search", "search", [60, 120])
    run(f"{job}/train", "train", [30] * 4)
    run(f"{job}/baseline_cnn_lstm", "baseline", [6] * 10, baseline="cnn_lstm")
    d = tmp_path / job / "baseline_random"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"kind": "baseline", "options": {"baseline": "random"}}))
    (d / "metrics.json").write_text("{}")
    for i in range(3):
        run(f"{job}/baseline_random/candidates/cand_0{i}", "train", [20, 40])
    run(f"{job}/baseline_random/final", "train", [90, 90])
    lines = compute_table(tmp_path).splitlines()
    assert lines[2] == "| c/fold0/seed0 | cnn_lstm | training 1.0 | 1.0 |"
    assert lines[3] == "| c/fold0/seed0 | emodarts | search 3.0 + final training 2.0 | 5.0 |"
    assert lines[4] == "| c/fold0/seed0 | random | brief trainings 3.0 + final training 3.0 | 6.0 |"
    assert lines[-1] == ("Mean total minutes per finished job: cnn_lstm 1.0 (1 jobs), "
                         "emodarts 5.0 (1 jobs), random 6.0 (1 jobs).")
    # a run still going (no metrics.json) is shown as such and left out of the means
    run("c/fold0/seed1/search", "search", [60])
    (tmp_path / "c/fold0/seed1/search/metrics.json").unlink()
    lines = compute_table(tmp_path).splitlines()
    assert "| c/fold0/seed1 | emodarts | search 1.0 | 1.0 so far (unfinished) |" in lines
    (tmp_path / "c/fold0/seed1/search/metrics.json").write_text("{}")   # finished, not trained
    assert "| c/fold0/seed1 | emodarts | search 1.0 | 1.0 so far (unfinished) |" in \
        compute_table(tmp_path).splitlines()
    assert "emodarts 5.0 (1 jobs)" in lines[-1]
    (tmp_path / job / "train" / "history.json").write_text(json.dumps({"epochs": [{"epoch": 0}]}))
    with pytest.raises(ValueError, match="without 'seconds'"):
        compute_table(tmp_path)
    with pytest.raises(ValueError, match="no search"):
        compute_table(tmp_path / "c" / "nothing")


def test_selection_table_pairs_the_two_epoch_rules_per_method(tmp_path):
    import json

    from emodarts_core.results.evidence_tables import selection_table

    rows = []
    # emodarts: last - best = +10 and +20 points; cnn_lstm: one run; an old run without both
    for i, (method, best, last, epoch) in enumerate([("emodarts", 0.4, 0.5, 10),
                                                     ("emodarts", 0.3, 0.5, 20),
                                                     ("cnn_lstm", 0.6, 0.5, 7), ("cnn_lstm", None, None, 0)]):
        run = tmp_path / f"run{i}"
        run.mkdir()
        metrics = {"ua": 0.0, "wa": 0.0}
        if best is not None:
            metrics["test_by_selection"] = {"best": {"epoch": epoch, "ua": best, "wa": 0.0},
                                            "last": {"epoch": 59, "ua": last, "wa": 0.0}}
        (run / "metrics.json").write_text(json.dumps(metrics))
        rows.append(ResultRow("r", method, 0, i, wa=0.0, ua=0.0, run_dir=str(run)))
    lines = selection_table(rows).splitlines()
    assert lines[2] == "| cnn_lstm | 1 (1) | 60.00 | 7.0 | 50.00 | -10.00 | – |"
    # two seeds of one fold: one fold's mean difference, +15, too few folds for a p-value
    assert lines[3] == "| emodarts | 2 (1) | 35.00 ± 7.07 | 15.0 | 50.00 ± 0.00 | +15.00 | – |"
    assert "1 run(s) without both" in lines[-1]
    # the same runs on two folds: two independent differences of one sign, p = 2/4
    two = [replace(r, fold=r.seed) for r in rows]
    assert selection_table(two).splitlines()[3] == (
        "| emodarts | 2 (2) | 35.00 ± 7.07 | 15.0 | 50.00 ± 0.00 | +15.00 ± 7.07 | 0.500 |")


def test_setting_comparison_pairs_each_method_with_itself_then_methods_under_the_new_setting():
    from emodarts_core.results.evidence_tables import setting_comparison

    def rows(values):
        return [ResultRow("r", m, f, 0, wa=0.0, ua=ua, run_dir="") for (m, f), ua in values.items()]

    before = rows({("emodarts", 0): 0.50, ("emodarts", 1): 0.40, ("emodarts", 2): 0.30,
                   ("random", 0): 0.45, ("random", 1): 0.45})
    after = rows({("emodarts", 0): 0.60, ("emodarts", 1): 0.50, ("random", 0): 0.40,
                  ("random", 1): 0.55})
    text = setting_comparison(before, after, labels=("plain", "masks"))
    blocks = text.split("\n\n")
    assert blocks[0] == "**emodarts**: test UA %, plain and masks"
    # fold 2 ran only before: left out of both means; +10 points on both common folds
    assert "| masks | 2 | 55.00 ± 7.07 | 2 (2) | 45.00 ± 7.07 | +10.00 ± 0.00 | 0.500 |" in blocks[2]
    assert "| r | 2 | 0 |" not in text
    assert blocks[3] == "**random**: test UA %, plain and masks"
    assert "| masks | 2 | 47.50 ± 10.61 | 2 (2) | 45.00 ± 0.00 | +2.50 ± 10.61 | 1.000 |" in blocks[5]
    assert blocks[-1].startswith("masks: emodarts beat random on test UA in 1 of 2 folds")


def test_seed_table_pairs_folds_within_each_seed_then_over_the_fold_means():
    from emodarts_core.results.evidence_tables import seed_table

    # seed 0: emodarts ahead by 10 and 20 points; seed 1: behind by 30 in its one paired fold
    # (fold 1 of seed 1 has no random run, so it is left out)
    rows = [ResultRow("r", m, f, s, wa=0.0, ua=ua, run_dir="")
            for m, f, s, ua in [("emodarts", 0, 0, 0.6), ("random", 0, 0, 0.5),
                                ("emodarts", 1, 0, 0.7), ("random", 1, 0, 0.5),
                                ("emodarts", 0, 1, 0.2), ("random", 0, 1, 0.5),
                                ("emodarts", 1, 1, 0.9)]]
    lines = seed_table(rows, "emodarts", "random").splitlines()
    assert lines[0].startswith("| seed | folds | emodarts UA % | random UA % | emodarts - random")
    assert "emodarts ahead in (folds)" in lines[0]
    assert lines[2] == "| 0 | 2 | 65.00 ± 7.07 | 50.00 ± 0.00 | +15.00 ± 7.07 | 2 of 2 | 0.500 |"
    assert lines[3] == "| 1 | 1 | 20.00 | 50.00 | -30.00 | 0 of 1 | – |"
    # fold means: fold 0 = mean of seeds 0 and 1 (emodarts 40, random 50, -10); fold 1 = seed 0
    # alone (+20); never the three jobs pooled as if independent
    assert lines[4] == "| fold means | 2 | 55.00 ± 21.21 | 50.00 ± 0.00 | +5.00 ± 21.21 | 1 of 2 | 1.000 |"
    assert len(lines) == 5
    one_seed = seed_table([r for r in rows if r.seed == 0], "emodarts", "random").splitlines()
    assert len(one_seed) == 3                      # a single seed gets no "fold means" row
    assert seed_table(rows, "emodarts", "cnn_lstm") == "(no job with both emodarts and cnn_lstm)"


def test_seed_table_and_head_to_head_refuse_an_unknown_metric():
    from emodarts_core.results.evidence_tables import head_to_head, seed_table

    rows = [ResultRow("r", m, 0, 0, wa=0.5, ua=0.5, run_dir="") for m in ("emodarts", "random")]
    for table in (seed_table, head_to_head):
        with pytest.raises(ValueError, match="metric must be 'ua' or 'wa'"):
            table(rows, "emodarts", "random", metric="f1")


def _ensemble_json(path, members, ens):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"ua": ens, "wa": ens + 0.01, "members": [
        {"run": f"r{i}", "ua": u, "wa": u} for i, u in enumerate(members)]}))


def test_ensemble_table_sets_each_ensemble_against_its_own_members(tmp_path):
    from emodarts_core.results.evidence_tables import ensemble_records, ensemble_table

    _ensemble_json(tmp_path / "fold0" / "emodarts.json", [0.50, 0.60, 0.70], 0.66)
    _ensemble_json(tmp_path / "fold1" / "emodarts.json", [0.40, 0.40, 0.46], 0.40)
    _ensemble_json(tmp_path / "fold0" / "random.json", [0.60, 0.60, 0.60], 0.63)
    _ensemble_json(tmp_path / "fold1" / "random.json", [0.50, 0.50, 0.50], 0.45)
    _ensemble_json(tmp_path / "fold0" / "cnn_lstm.json", [0.30, 0.30, 0.30], 0.30)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.json").write_text("{}")            # not a fold: ignored
    recs = ensemble_records(tmp_path)
    # the searched method first, then random search, then the rest (not the files' order)
    assert list(recs) == ["emodarts", "random", "cnn_lstm"] and sorted(recs["random"]) == [0, 1]
    table = ensemble_table(tmp_path)
    assert "| 0 | emodarts | 50.00 / 60.00 / 70.00 | 60.00 | 66.00 | +6.00 |" in table
    assert "| 1 | emodarts | 40.00 / 40.00 / 46.00 | 42.00 | 40.00 | -2.00 |" in table
    # per method over the folds: members' mean 51.00 ± 12.73, ensemble 53 ± 18.38, gains +6 / -2
    assert "| emodarts | 2 | 51.00 ± 12.73 | 53.00 ± 18.38 | +2.00 ± 5.66 | 1 of 2 | 1.000 |" in table
    assert "| random | 2 | 55.00 ± 7.07 | 54.00 ± 12.73 | -1.00 ± 5.66 | 1 of 2 | 1.000 |" in table
    # emodarts - random per fold: +3, -5
    assert "emodarts's ensemble beat random's on test UA in 1 of 2 folds; paired difference " \
           "-1.00 ± 5.66 points" in table
    assert "| 0 | random | 60.00 / 60.00 / 60.00 | 60.00 | 64.00 | +4.00 |" in ensemble_table(tmp_path, "wa")
    short = ensemble_table(tmp_path, per_fold=False)
    assert short.startswith("| method | folds |") and "| 0 | emodarts |" not in short
    assert "| emodarts | 2 | 51.00 ± 12.73 |" in short
    with pytest.raises(FileNotFoundError):
        ensemble_table(tmp_path / "notes")
    (tmp_path / "fold2").mkdir()
    (tmp_path / "fold2" / "emodarts.json").write_text(json.dumps({"ua": 0.5}))
    with pytest.raises(ValueError, match="members"):
        ensemble_records(tmp_path)


def _job_rows(method, values, corpus="r"):
    """ResultRows of one method from ``{(fold, seed): ua}``."""
    return [ResultRow(corpus, method, f, s, wa=ua, ua=ua, run_dir="") for (f, s), ua in values.items()]


def test_setting_effects_pairs_each_method_over_the_folds_both_batches_ran():
    from emodarts_core.results.evidence_tables import (setting_effects, setting_fold_pairs,
                                                       setting_pairs)

    before = _job_rows("emodarts", {(0, 0): 0.5, (1, 0): 0.6, (2, 0): 0.7}) + _job_rows("random", {(0, 0): 0.4})
    after = _job_rows("emodarts", {(0, 0): 0.6, (1, 0): 0.8}) + _job_rows("cnn_lstm", {(0, 0): 0.1})
    assert setting_pairs(before, after, "emodarts") == {("r", 0, 0): (50.0, 60.0), ("r", 1, 0): (60.0, 80.0)}
    assert setting_fold_pairs(before, after, "emodarts") == {("r", 0): (50.0, 60.0), ("r", 1): (60.0, 80.0)}
    table = setting_effects([("wider", before, after)]).splitlines()
    assert len(table) == 3                     # random has no run after, cnn_lstm none before
    assert "| folds (jobs) |" in table[0] and "after ahead in (folds)" in table[0]
    assert table[2] == "| wider | emodarts | 2 (2) | 55.00 ± 7.07 | 70.00 ± 14.14 | +15.00 ± 7.07 | 2 of 2 | 0.500 |"
    with pytest.raises(ValueError, match="no method"):
        setting_effects([("x", before, after)], methods=("random",))


def test_setting_effects_takes_each_fold_as_the_mean_of_its_seeds():
    from emodarts_core.results.evidence_tables import setting_effects, setting_fold_pairs

    # three seeds on each of two folds, every job moved up: 6 jobs, but 2 folds (p = 2/4)
    before = _job_rows("emodarts", {(f, s): 0.5 for f in range(2) for s in range(3)})
    after = _job_rows("emodarts", {(f, s): 0.5 + 0.01 * (s + 1) + 0.1 * f for f in range(2) for s in range(3)})
    after = [r for r in after if (r.fold, r.seed) != (1, 2)]          # fold 1: seeds 0 and 1 only
    pairs = setting_fold_pairs(before, after, "emodarts")
    assert pairs[("r", 0)] == pytest.approx((50.0, 52.0)) and pairs[("r", 1)] == pytest.approx((50.0, 61.5))
    row = setting_effects([("x", before, after)], methods=("emodarts",)).splitlines()[2]
    assert row == "| x | emodarts | 2 (5) | 50.00 ± 0.00 | 56.75 ± 6.72 | +6.75 ± 6.72 | 2 of 2 | 0.500 |"


def test_paired_verdict_reads_the_sign_flip_test_over_the_folds():
    from emodarts_core.results.evidence_tables import paired_verdict

    jobs = {(f, 0): 0.5 for f in range(6)}
    better = _job_rows("a", {j: v + 0.1 for j, v in jobs.items()}) + _job_rows("b", jobs)
    assert paired_verdict(better, "a", "b").startswith("a beats b (a - b: +10.00 ± 0.00 points")
    assert paired_verdict(better, "b", "a").startswith("b is beaten by a")
    mixed = _job_rows("a", {j: v + (0.1 if j[0] % 2 else -0.1) for j, v in jobs.items()}) + _job_rows("b", jobs)
    assert paired_verdict(mixed, "a", "b").startswith("a does not beat b")
    assert "too few" in paired_verdict(better[:1] + better[6:7], "a", "b")
    # one fold with six seeds, all won: six jobs but one fold, too few for a test
    one_fold = {(0, s): 0.5 for s in range(6)}
    seeds = _job_rows("a", {j: v + 0.1 for j, v in one_fold.items()}) + _job_rows("b", one_fold)
    assert paired_verdict(seeds, "a", "b") == "a against b: 1 fold(s) with both, too few for a paired test"
    # four folds x three seeds, all won: p over the folds is 2/16 = 0.125, not 2/4096
    grid = {(f, s): 0.5 for f in range(4) for s in range(3)}
    four = _job_rows("a", {j: v + 0.1 for j, v in grid.items()}) + _job_rows("b", grid)
    assert paired_verdict(four, "a", "b") == (
        "a does not beat b (a - b: +10.00 ± 0.00 points of test UA over 4 folds, each fold the "
        "mean of its 3 seeds; ahead in 4 of 4 folds (12 of 12 jobs); sign-flip p over the "
        "folds = 0.125)")


def test_evidence_answer_computes_every_line(tmp_path):
    from emodarts_core.results.evidence_tables import evidence_answer

    jobs = {(f, s): 0.5 for f in range(6) for s in range(2)}
    rows = (_job_rows("emodarts", jobs) + _job_rows("random", {j: v + 0.02 * (j[0] - 2.5) for j, v in jobs.items()})
            + _job_rows("cnn_lstm", {j: 0.2 for j in jobs}))
    for fold in range(3):
        (tmp_path / f"fold{fold}").mkdir()
        (tmp_path / f"fold{fold}" / "emodarts.json").write_text(json.dumps(
            {"ua": 0.7, "wa": 0.7, "members": [{"ua": 0.5, "wa": 0.5}] * 3}))
    text = evidence_answer(rows, tmp_path, reference=62.0)
    assert "(12 jobs: folds 0, 1, 2, 3, 4, 5 x seeds 0, 1), emodarts does not beat random" in text
    assert "over 6 folds, each fold the mean of its 2 seeds" in text
    # six folds all won: p = 2/64 = 0.031 < 0.05 (the twelve jobs are not twelve samples)
    assert "emodarts beats cnn_lstm" in text and "random beats cnn_lstm" in text
    assert "ahead in 6 of 6 folds (12 of 12 jobs); sign-flip p over the folds = 0.031" in text
    assert "single network: emodarts, 50.00 %, below the reference 62.00 %" in text
    assert "emodarts's 70.00 % (above the reference)" in text
