"""The command line: typed --set overrides and one-line errors with exit status 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from emodarts_core.cli import main
from emodarts_core.config import UsageError, apply_overrides, get_profile


def test_overrides_are_typed_by_the_dataclass_field():
    p = apply_overrides(get_profile("smoke"), [
        "search.epochs=3", "search.weight_fraction=0.25", "search.collapse_guard=darts+",
        "search.alpha_betas=0.6,0.9", "space.seq_ops=lstm", "features.fmax=none",
        "train.class_weighted=false", "space.cnn_ops=max_pool_3x3,skip_connect,none",
    ])
    assert p.search.epochs == 3 and isinstance(p.search.epochs, int)
    assert p.search.weight_fraction == 0.25
    assert p.search.collapse_guard == "darts+"
    assert p.search.alpha_betas == (0.6, 0.9)
    assert p.space.seq_ops == "lstm"
    assert p.features.fmax is None
    assert p.train.class_weighted is False
    assert p.space.cnn_ops == ("max_pool_3x3", "skip_connect", "none")
    assert apply_overrides(p, ["search.collapse_guard=none"]).search.collapse_guard is None
    # the original profile is untouched
    assert get_profile("smoke").search.epochs == 2


@pytest.mark.parametrize("item, match", [
    ("search.epochs=three", "expected int"),
    ("search.nope=1", "no field 'nope'"),
    ("model.epochs=1", "unknown section"),
    ("epochs=1", "SECTION.FIELD=VALUE"),
    ("train.class_weighted=maybe", "true or false"),
    ("search.alpha_betas=0.1", "2 comma-separated"),
    ("train.select=middle", "must be one of best, last"),
])
def test_bad_overrides_are_usage_errors(item, match):
    with pytest.raises(UsageError, match=match):
        apply_overrides(get_profile("smoke"), [item])


def _err(capsys, argv) -> str:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 2, out
    lines = [ln for ln in out.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("emodarts: error:"), out.err
    assert "Traceback" not in out.err
    return lines[0]


def test_usage_errors_exit_2_with_one_line(capsys, tmp_path):
    assert "profile" in _err(capsys, ["search", "--profile", "huge", "--no-progress"])
    assert "corpus" in _err(capsys, ["search", "--corpus", "nocorpus", "--data-root", str(tmp_path),
                                     "--out", str(tmp_path / "r")])
    assert "data-root" in _err(capsys, ["search", "--corpus", "ravdess",
                                        "--data-root", str(tmp_path / "missing")])
    assert "fold" in _err(capsys, ["search", "--fold", "-1"])
    assert "required" in _err(capsys, ["train"])                    # no --genotype
    assert "invalid choice" in _err(capsys, ["fly"])
    assert "--set" in _err(capsys, ["search", "--set", "search.epochs=x"])
    assert "--run" in _err(capsys, ["evaluate", "--run", str(tmp_path), "--corpus", "generated"])


def test_commands_honour_emodarts_threads(capsys, tmp_path, monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("EMODARTS_THREADS", "1")
        # the command fails on its --run, after the thread count has been applied
        assert "--run" in _err(capsys, ["evaluate", "--run", str(tmp_path), "--corpus", "generated"])
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("EMODARTS_THREADS", "two")
        assert "EMODARTS_THREADS" in _err(capsys, ["evaluate", "--run", str(tmp_path),
                                                   "--corpus", "generated"])
    finally:
        torch.set_num_threads(before)


def test_genotype_file_errors(capsys, tmp_path):
    msg = _err(capsys, ["train", "--genotype", str(tmp_path / "none.json")])
    assert "no such file" in msg
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not a valid genotype" in _err(capsys, ["train", "--genotype", str(bad)])
    bad.write_text(json.dumps({"normal": {"nodes": [], "concat": []}}))
    assert "missing cell" in _err(capsys, ["train", "--genotype", str(bad)])
    assert "genotype.json" in _err(capsys, ["train", "--genotype", str(tmp_path)])


def test_module_entry_point_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "emodarts_core", "search", "--profile", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "unknown profile" in proc.stderr


def test_fold_out_of_range_and_bad_data_make_no_run_dir(capsys, tmp_path):
    from emodarts_core.data.corpora.generated import generate_corpus

    generate_corpus(tmp_path / "data", n_speakers=4, per_class=1, seed=0)
    base = ["search", "--corpus", "generated", "--data-root", str(tmp_path / "data"),
            "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--out", str(tmp_path / "r")]
    msg = _err(capsys, base + ["--fold", "4"])
    assert "fold 4 is out of range" in msg and "4 fold(s)" in msg
    assert not (tmp_path / "r").exists()
    # a folder that is not a generated corpus (no manifest)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "x.txt").write_text("x")
    msg = _err(capsys, ["search", "--corpus", "generated", "--data-root", str(tmp_path / "empty"),
                        "--out", str(tmp_path / "r2")])
    assert "manifest" in msg and not (tmp_path / "r2").exists()


def test_baseline_commands_for_the_size_matched_network_and_egemaps(capsys, tmp_path):
    from emodarts_core.data.corpora.generated import generate_corpus
    from emodarts_core.results.collect import collect

    generate_corpus(tmp_path / "data", n_speakers=4, per_class=2, seed=0)
    common = ["--corpus", "generated", "--data-root", str(tmp_path / "data"),
              "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--device", "cpu"]
    assert main(["baseline", "--kind", "cnn_bilstm_att", *common, "--out", str(tmp_path / "a"),
                 "--set", "train.epochs=1", "--target-params", "30000"]) == 0
    assert "baseline cnn_bilstm_att finished" in capsys.readouterr().out
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["options"]["target_parameters"] == 30000
    assert config["options"]["size_match"]["target_parameters"] == 30000
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert main(["evaluate", "--run", str(tmp_path / "a"), "--corpus", "generated",
                 "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                 "--fold", "0", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["confusion"] == metrics["confusion"]

    assert main(["baseline", "--kind", "egemaps_svm", *common, "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "baseline egemaps_svm finished" in out and "UA" in out
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["c"] > 0
    assert sorted(r.method for r in collect(tmp_path)) == ["cnn_bilstm_att", "egemaps_svm"]
    # an evaluation of the SVM run, and options of other kinds, stop with one line and exit 2
    assert "no network" in _err(capsys, ["evaluate", "--run", str(tmp_path / "e"), "--corpus",
                                         "generated", "--data-root", str(tmp_path / "data"),
                                         "--fold", "0"])
    assert "cnn_bilstm_att only" in _err(capsys, ["baseline", "--kind", "egemaps_svm",
                                                  "--target-params", "9", *common,
                                                  "--out", str(tmp_path / "x")])
    assert "--target-params must be >= 1" in _err(capsys, [
        "baseline", "--kind", "cnn_bilstm_att", "--target-params", "0", *common,
        "--out", str(tmp_path / "y")])
    assert "cnn_lstm only" in _err(capsys, ["baseline", "--kind", "egemaps_svm", "--head-norm",
                                            *common, "--out", str(tmp_path / "z")])


def test_baseline_and_evaluate_commands(capsys, tmp_path):
    import torch

    from emodarts_core.data.corpora.generated import generate_corpus

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generate_corpus(tmp_path / "data", n_speakers=4, per_class=2, seed=0)
        common = ["--corpus", "generated", "--data-root", str(tmp_path / "data"),
                  "--cache-dir", str(tmp_path / "cache"), "--no-progress", "--device", "cpu"]
        assert main(["baseline", "--kind", "cnn_lstm", *common, "--out", str(tmp_path / "b"),
                     "--set", "train.epochs=1"]) == 0
        out = capsys.readouterr().out
        assert "baseline cnn_lstm finished" in out and "UA" in out
        metrics = json.loads((tmp_path / "b" / "metrics.json").read_text())
        assert main(["evaluate", "--run", str(tmp_path / "b"), "--corpus", "generated",
                     "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                     "--fold", "0", "--device", "cpu"]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed["confusion"] == metrics["confusion"] and printed["n"] == metrics["n"]

        # the head-norm variant: recorded in the run's options, rebuilt as trained by evaluate,
        # and kept apart from the plain CNN-LSTM in the results table
        assert main(["baseline", "--kind", "cnn_lstm", "--head-norm", *common,
                     "--out", str(tmp_path / "bn"), "--set", "train.epochs=1"]) == 0
        capsys.readouterr()
        config = json.loads((tmp_path / "bn" / "config.json").read_text())
        assert config["options"]["cnn_lstm"] == {"head_norm": True}
        metrics = json.loads((tmp_path / "bn" / "metrics.json").read_text())
        assert main(["evaluate", "--run", str(tmp_path / "bn"), "--corpus", "generated",
                     "--data-root", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
                     "--fold", "0", "--device", "cpu"]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert printed["confusion"] == metrics["confusion"]
        # both CNN-LSTMs as an ensemble: --run twice, and --json-out is required for it
        ens = ["evaluate", "--run", str(tmp_path / "b"), "--run", str(tmp_path / "bn"),
               "--corpus", "generated", "--data-root", str(tmp_path / "data"),
               "--cache-dir", str(tmp_path / "cache"), "--fold", "0", "--device", "cpu"]
        assert "--json-out" in _err(capsys, ens)
        assert main([*ens, "--json-out", str(tmp_path / "ens.json")]) == 0
        printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert [m["ua"] for m in printed["members"]] == pytest.approx(
            [json.loads((tmp_path / r / "metrics.json").read_text())["ua"] for r in ("b", "bn")])
        assert json.loads((tmp_path / "ens.json").read_text())["n"] == metrics["n"]
        from emodarts_core.results.collect import collect

        assert sorted(r.method for r in collect(tmp_path)) == ["cnn_lstm", "cnn_lstm+head_norm"]
        assert main(["baseline", "--kind", "random", "--head-norm", *common,
                     "--out", str(tmp_path / "x")]) == 2
        assert "cnn_lstm only" in capsys.readouterr().err

        # a random search's winner trained again (here with the last-epoch rule) keeps where its
        # genotype came from and counts as random search in tables; a bare file counts as emodarts
        assert main(["baseline", "--kind", "random", "--k", "1", *common, "--out",
                     str(tmp_path / "r"), "--set", "train.epochs=1"]) == 0
        assert main(["train", "--genotype", str(tmp_path / "r"), *common, "--out",
                     str(tmp_path / "rt"), "--set", "train.epochs=1",
                     "--set", "train.select=last"]) == 0
        assert "(last epoch 0;" in capsys.readouterr().out
        source = json.loads((tmp_path / "rt" / "config.json").read_text())["options"]["genotype_source"]
        assert source == {"path": str((tmp_path / "r" / "genotype.json").resolve()), "method": "random"}
        (tmp_path / "g.json").write_text((tmp_path / "r" / "genotype.json").read_text())
        assert main(["train", "--genotype", str(tmp_path / "g.json"), *common, "--out",
                     str(tmp_path / "gt"), "--set", "train.epochs=1"]) == 0
        methods = {Path(r.run_dir).name: r.method for r in collect(tmp_path)}
        assert methods["r"] == methods["rt"] == "random" and methods["gt"] == "emodarts"
    finally:
        torch.set_num_threads(n)
