"""How much the architecture matters: the analysis of variance, the permutation test, reading
the experiment's runs, and ``benchmarks/architecture_effect.py`` end to end on a tiny corpus."""
from __future__ import annotations

import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from emodarts_core.results.architecture_effect import (
    GENOTYPES_FILE, architecture_effect, effect_reading, effect_table, group_difference,
    load_architecture_scores)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "architecture_effect.py"


@pytest.mark.parametrize("sizes", [(3, 3, 3, 3), (2, 4, 3)])
def test_f_and_p_are_scipys_one_way_anova(sizes):
    rng = np.random.default_rng(0)
    groups = [rng.normal(0.5 + 0.02 * i, 0.05, n) for i, n in enumerate(sizes)]
    e = architecture_effect(groups)
    f, p = stats.f_oneway(*groups)
    assert e.f == pytest.approx(f) and e.p == pytest.approx(p)
    assert e.df == (len(sizes) - 1, sum(sizes) - len(sizes))
    assert e.grand_mean == pytest.approx(np.concatenate(groups).mean())


def test_variance_components_of_a_balanced_design():
    """sd within = sqrt(MS_within); sd between = sqrt((MS_between - MS_within) / n); ICC their
    share, by hand for three genotypes of two seeds."""
    groups = [[0.40, 0.44], [0.50, 0.52], [0.60, 0.66]]
    means = np.array([0.42, 0.51, 0.63])
    msw = (0.02 ** 2 * 2 + 0.01 ** 2 * 2 + 0.03 ** 2 * 2) / 3
    msb = 2 * ((means - means.mean()) ** 2).sum() / 2
    e = architecture_effect(groups)
    assert e.within_sd == pytest.approx(np.sqrt(msw))
    assert e.between_sd == pytest.approx(np.sqrt((msb - msw) / 2))
    assert e.icc == pytest.approx(((msb - msw) / 2) / ((msb - msw) / 2 + msw))


def test_genotype_effects_are_found_and_pure_noise_is_not():
    rng = np.random.default_rng(1)
    strong = architecture_effect([rng.normal(m, 0.01, 3) for m in np.linspace(0.3, 0.7, 8)])
    assert strong.icc > 0.95 and strong.p < 1e-6
    noise = architecture_effect([rng.normal(0.5, 0.05, 3) for _ in range(8)])
    assert noise.p > 0.05 and noise.icc < 0.3
    assert noise.between_sd < noise.within_sd


def test_degenerate_and_bad_designs():
    flat = architecture_effect([[0.25, 0.25], [0.25, 0.25]])
    assert flat.f is None and flat.p == 1.0 and flat.icc == 0.0
    exact = architecture_effect([[0.2, 0.2], [0.4, 0.4]])
    assert exact.f is None and exact.p == 0.0 and exact.icc == 1.0
    with pytest.raises(ValueError, match=">= 2 genotypes"):
        architecture_effect([[0.1, 0.2, 0.3]])
    with pytest.raises(ValueError, match="more runs than"):
        architecture_effect([[0.1], [0.2], [0.3]])


def test_group_difference_is_an_exact_permutation_test():
    diff, p = group_difference([1, 2, 3], [4, 5, 6])
    assert diff == -3 and p == pytest.approx(2 / 20)     # only the two extreme splits
    a, b = [0.3, 0.7, 0.5], [0.4, 0.45, 0.6, 0.2]
    pooled = a + b
    brute = [np.mean([pooled[i] for i in idx])
             - np.mean([pooled[i] for i in range(7) if i not in idx])
             for idx in combinations(range(7), 3)]
    diff, p = group_difference(a, b)
    assert diff == pytest.approx(np.mean(a) - np.mean(b))
    assert p == pytest.approx(np.mean(np.abs(brute) >= abs(diff) - 1e-12))
    with pytest.raises(ValueError, match="both groups"):
        group_difference([], [1.0])
    with pytest.raises(ValueError, match="relabellings"):
        group_difference(np.zeros(20), np.zeros(20))


def _experiment(root: Path, scores: dict[str, tuple[str, list[float]]]) -> Path:
    """An experiment's tree as the benchmark writes it, test UA = validation UA - 0.05."""
    entries = []
    for name, (kind, values) in scores.items():
        entries.append({"name": name, "kind": kind, "source": "test", "genotype": {}})
        for seed, v in enumerate(values):
            run = root / name / f"seed{seed}"
            run.mkdir(parents=True)
            (run / "metrics.json").write_text(json.dumps(
                {"best_valid_ua": v, "ua": v - 0.05, "n_parameters": 1000}))
    (root / "random-99" / "seed0").mkdir(parents=True)        # killed before its metrics
    entries.append({"name": "random-99", "kind": "random", "source": "test", "genotype": {}})
    (root / GENOTYPES_FILE).write_text(json.dumps(
        {"corpus": "ravdess", "fold": 0, "epochs": 6, "genotypes": entries}))
    return root


def test_reading_an_experiment_and_saying_what_it_found(tmp_path):
    flat = load_architecture_scores(_experiment(tmp_path / "flat", {
        "random-00": ("random", [0.50, 0.56, 0.44]), "random-01": ("random", [0.46, 0.55, 0.51]),
        "random-02": ("random", [0.53, 0.45, 0.50]), "searched-0": ("searched", [0.49, 0.52, 0.47])}))
    assert [g.name for g in flat.genotypes] == ["random-00", "random-01", "random-02",
                                                "searched-0"]     # the unfinished one left out
    assert flat.genotypes[0].test_ua == pytest.approx((0.45, 0.51, 0.39))
    text = effect_reading(flat)
    assert "flat at this budget" in text and "not distinguishable from" in text
    assert "more by its seed than by its architecture" in text
    table = effect_table(flat).splitlines()
    assert len(table) == 4 and table[2].startswith("| validation UA (best epoch) | 3 (9) |")

    steep = load_architecture_scores(_experiment(tmp_path / "steep", {
        "random-00": ("random", [0.30, 0.31, 0.29]), "random-01": ("random", [0.50, 0.51, 0.49]),
        "random-02": ("random", [0.70, 0.71, 0.69])}))
    text = effect_reading(steep, "test_ua")
    assert "matters beyond the noise" in text and "searched" not in text
    assert "mostly by their architecture" in text
    assert "| – |" in effect_table(steep)           # no searched genotype to compare


def test_missing_experiment_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="architecture_effect.py"):
        load_architecture_scores(tmp_path)


def test_plot_draws_every_training(tmp_path):
    from matplotlib.collections import PathCollection

    from emodarts_core.results.evidence_plots import plot_architecture_effect

    scores = load_architecture_scores(_experiment(tmp_path, {
        "random-00": ("random", [0.50, 0.56]), "random-01": ("random", [0.46, 0.55]),
        "searched-0": ("searched", [0.48, 0.50])}))
    fig = plot_architecture_effect(scores)
    left = fig.axes[0]
    dots = sum(len(c.get_offsets()) for c in left.collections
               if isinstance(c, PathCollection))
    assert dots == 6
    assert [t.get_text() for t in left.get_xticklabels()] == ["searched-0", "random-01",
                                                              "random-00"]  # by mean


def test_script_end_to_end_on_a_generated_corpus(tmp_path):
    """Two random genotypes and a searched one, two seeds each, one epoch: runs, the index, the
    summary and the export; a rerun keeps the runs; other genotypes into the same --out fail."""
    import torch

    from emodarts_core.config import get_profile
    from emodarts_core.data.corpora.generated import generate_corpus
    from emodarts_core.nas.genotype import sample_genotype

    data = generate_corpus(tmp_path / "gen", n_speakers=6, per_class=2, seed=0)
    searched = tmp_path / "search"
    searched.mkdir()
    geno = sample_genotype(get_profile("smoke").space, torch.Generator().manual_seed(5))
    (searched / "genotype.json").write_text(json.dumps(geno.to_dict()))
    out, rec = tmp_path / "runs", tmp_path / "records"
    base = [sys.executable, str(SCRIPT), "--corpus", "generated", "--data-root", str(data),
            "--profile", "smoke", "--random", "2", "--searched", str(searched), "--seeds",
            "0,1", "--epochs", "1", "--out", str(out)]
    env = {"EMODARTS_THREADS": "1", "PATH": "/usr/bin:/bin"}
    first = subprocess.run(base + ["--export", str(rec)], capture_output=True, text=True,
                           env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("[arch]") == 6
    spec = json.loads((out / GENOTYPES_FILE).read_text())
    assert [g["name"] for g in spec["genotypes"]] == ["random-00", "random-01", "searched-0"]
    assert spec["genotypes"][2]["genotype"] == geno.to_dict()
    for name in ("random-00", "random-01", "searched-0"):
        for seed in (0, 1):
            assert json.loads((rec / name / f"seed{seed}" / "genotype.json").read_text()) == \
                spec["genotypes"][int(name[-1]) if name.startswith("r") else 2]["genotype"]
    assert json.loads((rec / GENOTYPES_FILE).read_text()) == spec
    summary = json.loads((out / "summary.json").read_text())
    assert summary["effect"]["valid_ua"]["n_runs"] == 4
    again = subprocess.run(base, capture_output=True, text=True, env=env, check=True)
    assert "[arch]" not in again.stdout                   # every run kept
    def with_value(flag, value):
        args = list(base)
        args[args.index(flag) + 1] = value
        return args

    other = subprocess.run(with_value("--random", "3"), capture_output=True, text=True,
                           env=env)
    assert other.returncode != 0 and "other genotypes" in other.stderr
    one_seed = subprocess.run(with_value("--seeds", "0"), capture_output=True, text=True,
                              env=env)
    assert one_seed.returncode != 0 and "at least two seeds" in one_seed.stderr
