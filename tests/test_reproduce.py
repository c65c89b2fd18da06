import json
from pathlib import Path

import pytest

from emodarts_core.batch.reproduce import GridJob, export_records, make_grid, run_grid
from emodarts_core.results.collect import collect, format_report, format_table, summarize


def _fake_run(root: Path, corpus, kind, fold, seed, wa, ua, options=None):
    d = root / corpus / f"fold{fold}" / f"seed{seed}" / kind
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps(
        {"kind": kind, "corpus": corpus, "fold": fold, "seed": seed, "options": options or {}}))
    (d / "metrics.json").write_text(json.dumps({"wa": wa, "ua": ua}))


def test_grid_covers_corpora_folds_seeds(tmp_path):
    jobs = make_grid({"iemocap": "/d/i", "msp_improv": "/d/m"},
                     {"iemocap": [0, 1, 2, 3, 4], "msp_improv": [0, 1, 2, 3]}, [0, 1, 2],
                     "paper", tmp_path)
    assert len(jobs) == (5 + 4) * 3
    assert len({j.job_dir for j in jobs}) == len(jobs)
    # the notebook gets the batch root and appends <corpus>/fold<k>/seed<s> itself, so its runs
    # land in the job's directory (not in a second copy of that path below it)
    job = jobs[-1]
    assert job.parameters()["out_dir"] == str(tmp_path)
    assert job.job_dir == tmp_path / "msp_improv" / "fold3" / "seed2"
    assert jobs[0].parameters()["progress"] is False
    assert jobs[0].parameters()["baselines"] == ["cnn_lstm"]
    assert jobs[0].parameters()["overrides"] == []
    both = make_grid({"generated": "/g"}, [0], [0], "smoke", tmp_path, baselines=("cnn_lstm", "random"))
    assert both[0].parameters()["baselines"] == ["cnn_lstm", "random"]


def test_summary_is_mean_and_sample_std_over_runs(tmp_path):
    _fake_run(tmp_path, "iemocap", "train", 0, 0, 0.70, 0.60)
    _fake_run(tmp_path, "iemocap", "train", 1, 0, 0.80, 0.70)
    _fake_run(tmp_path, "iemocap", "train", 2, 0, 0.90, 0.80)
    _fake_run(tmp_path, "iemocap", "baseline", 0, 0, 0.5, 0.4, {"baseline": "cnn_lstm"})
    (tmp_path / "iemocap" / "fold0" / "seed0" / "search").mkdir()   # searches are not results
    # random search keeps its candidates and final training (kind "train") inside its own run dir:
    # only the baseline's own metrics count
    _fake_run(tmp_path, "iemocap", "random", 0, 0, 0.6, 0.5, {"baseline": "random"})
    (tmp_path / "iemocap/fold0/seed0/random/config.json").write_text(json.dumps(
        {"kind": "baseline", "corpus": "iemocap", "fold": 0, "seed": 0, "options": {"baseline": "random"}}))
    _fake_run(tmp_path / "iemocap/fold0/seed0/random/candidates", "c", "train", 0, 0, 0.99, 0.99)
    rows = collect(tmp_path)
    assert sorted(r.method for r in rows) == ["cnn_lstm", "emodarts", "emodarts", "emodarts", "random"]
    summary = {s.method: s for s in summarize(rows)}
    s = summary["emodarts"]
    assert s.n_runs == 3 and s.folds == [0, 1, 2]
    assert s.wa_mean == pytest.approx(80.0) and s.wa_std == pytest.approx(10.0)
    assert s.ua_mean == pytest.approx(70.0) and s.ua_std == pytest.approx(10.0)
    assert summary["cnn_lstm"].wa_std == 0.0
    table = format_table(summarize(rows))
    assert "80.00 ± 10.00" in table and "78.03" in table     # the paper's IEMOCAP WA beside ours


def test_per_fold_summary_and_report(tmp_path):
    for fold, seed, ua in [(0, 0, 0.5), (0, 1, 0.7), (1, 0, 0.9)]:
        _fake_run(tmp_path, "ravdess", "train", fold, seed, ua, ua)
    _fake_run(tmp_path, "ravdess", "baseline", 0, 1, 0.4, 0.3, {"baseline": "random"})
    rows = collect(tmp_path)
    per_fold = {(s.method, s.folds[0]): s for s in summarize(rows, by_fold=True)}
    assert set(per_fold) == {("emodarts", 0), ("emodarts", 1), ("random", 0)}
    assert per_fold["emodarts", 0].n_runs == 2 and per_fold["emodarts", 0].ua_mean == pytest.approx(60.0)
    assert per_fold["emodarts", 1].ua_std == 0.0
    report = format_report(rows)
    overall, per_fold_part, per_job = report.split("Per ")[0], report.split("Per ")[1], report.split("Per ")[2]
    assert "| ravdess | emodarts | 3 | 0,1 | 70.00 ± 20.00 | 70.00 ± 20.00 |" in overall
    assert "| ravdess | emodarts | 2 | 0 | 60.00 ± 14.14 | 60.00 ± 14.14 |" in per_fold_part
    assert "| ravdess | 0 | 1 | 70.00 | 70.00 | 40.00 | 30.00 |" in per_job     # one line per job
    assert "| ravdess | 0 | 0 | 50.00 | 50.00 | – | – |" in per_job


def test_exported_records_rebuild_the_same_table(tmp_path):
    batch = tmp_path / "batch"
    _fake_run(batch, "ravdess", "train", 0, 0, 0.6, 0.5)
    _fake_run(batch, "ravdess", "train", 0, 1, 0.8, 0.7)
    for d in (batch / "ravdess/fold0").glob("seed*/train"):
        (d / "environment.json").write_text("{}")
        (d / "checkpoint.pt").write_bytes(b"x" * 100)          # not part of the record
        (d / "genotype.json").write_text('{"normal": []}')
    written = export_records(batch, tmp_path / "kept")
    assert len(written) == 2 * 4
    assert not list((tmp_path / "kept").rglob("*.pt"))
    assert (tmp_path / "kept/ravdess/fold0/seed1/train/genotype.json").read_text() == '{"normal": []}'
    assert format_table(summarize(collect(tmp_path / "kept"))) == format_table(summarize(collect(batch)))
    with pytest.raises(ValueError, match="outside"):
        export_records(batch, batch / "inside")


def _square_job(job: GridJob) -> str:
    # a module-level job function: Ray pickles it by reference
    return f"{job.name}:{job.fold * job.fold + job.seed}"


def test_ray_backend_gives_the_local_results_in_order(tmp_path):
    ray = pytest.importorskip("ray")
    import sys
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])   # workers cannot import tests/
    jobs = make_grid({"generated": str(tmp_path)}, [0, 1, 2], [0, 1], "smoke", tmp_path)
    local = run_grid(jobs, _square_job, backend="local")
    on_ray = run_grid(jobs, _square_job, backend="ray", cpus_per_job=1)
    assert on_ray == local
    assert local[-1] == "generated/fold2/seed1:5"
    with pytest.raises(ValueError, match="unknown backend"):
        run_grid(jobs, _square_job, backend="slurm")


def test_cli_reproduce_table_only_and_errors(tmp_path, capsys):
    from emodarts_core.cli import main

    _fake_run(tmp_path, "msp_improv", "train", 0, 0, 0.6, 0.5)
    _fake_run(tmp_path, "msp_improv", "train", 1, 0, 0.8, 0.7)
    assert main(["reproduce", "--out", str(tmp_path), "--table-only"]) == 0
    printed = capsys.readouterr().out
    assert "60.00 ± 14.14" in printed and "65.63" in printed      # ours beside the paper's UA
    assert (tmp_path / "table.md").read_text().strip() == printed.strip()
    assert "Per fold" in printed and "| msp_improv | 1 | 0 | 80.00 | 70.00 |" in printed
    assert main(["reproduce", "--out", str(tmp_path / "x")]) == 2            # no corpus given
    assert main(["reproduce", "--out", str(tmp_path / "typo"), "--table-only"]) == 2
    assert "typo: no such directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="no such directory"):
        collect(tmp_path / "typo")
    assert main(["reproduce", "--out", str(tmp_path), "--corpus", "iemocap"]) == 2   # no root
    assert main(["reproduce", "--out", str(tmp_path), "--corpus", f"generated={tmp_path / 'g'}",
                 "--seeds", "a"]) == 2
    assert main(["reproduce", "--out", str(tmp_path), "--corpus", f"generated={tmp_path / 'g'}",
                 "--baselines", "cnn_lstm,svm"]) == 2


def test_cli_reproduce_passes_set_to_every_job_and_refuses_a_bad_one(tmp_path, monkeypatch, capsys):
    from emodarts_core.batch import reproduce
    from emodarts_core.cli import main

    ran = []
    monkeypatch.setattr(reproduce, "run_grid", lambda jobs, **kw: ran.extend(jobs))
    _fake_run(tmp_path, "generated", "train", 0, 0, 0.6, 0.5)     # so the table step has a row
    common = ["reproduce", "--out", str(tmp_path), "--corpus", f"generated={tmp_path / 'g'}",
              "--folds", "0,1", "--seeds", "0", "--profile", "smoke"]
    assert main([*common, "--set", "train.select=last", "--set", "train.patience=0"]) == 0
    assert len(ran) == 2
    assert all(j.parameters()["overrides"] == ["train.select=last", "train.patience=0"] for j in ran)
    ran.clear()
    assert main([*common, "--set", "train.select=first"]) == 2       # not a selection rule
    assert main([*common, "--set", "train.epoch=3"]) == 2            # no such field
    assert ran == [] and "train.epoch" in capsys.readouterr().err


def test_count_folds_of_the_generated_corpus(tmp_path):
    from emodarts_core.batch.reproduce import count_folds
    from emodarts_core.data.corpora.generated import generate_corpus

    root = generate_corpus(tmp_path / "gen", n_speakers=4, per_class=1, seed=0)
    assert count_folds("generated", root) >= 2


def _code_cells(*states):
    return {"cells": [{"cell_type": "markdown", "metadata": {}}] + [
        {"cell_type": "code", "metadata": {"papermill": {"status": s}}} for s in states]}


def test_notebook_state_reads_papermills_cell_marks(tmp_path):
    from emodarts_core.batch.reproduce import notebook_state

    nb = tmp_path / "nb.ipynb"
    assert notebook_state(nb) == "running"                       # not written yet
    nb.write_text('{"cells": [')                                 # half written
    assert notebook_state(nb) == "running"
    nb.write_text(json.dumps(_code_cells("completed", "running")))
    assert notebook_state(nb) == "running"
    nb.write_text(json.dumps(_code_cells("completed", "failed", "pending")))
    assert notebook_state(nb) == "failed"
    nb.write_text(json.dumps(_code_cells("completed", "completed")))
    assert notebook_state(nb) == "completed"


HANGING_RUN = """
import json, subprocess, sys, time
kernel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(kernel.pid, flush=True)
open(sys.argv[2], "w").write(sys.argv[1])
time.sleep(600)                    # every cell done, and the run never returns
"""


def test_watchdog_stops_a_run_that_never_returns_after_its_last_cell(tmp_path):
    import sys
    import time

    from emodarts_core.batch.reproduce import watch

    out, log = tmp_path / "executed.ipynb", tmp_path / "run.log"
    cmd = [sys.executable, "-c", HANGING_RUN, json.dumps(_code_cells("completed")), str(out)]
    start = time.monotonic()
    assert watch(cmd, out, log, grace_s=1.0, poll_s=0.2) == "completed"
    assert time.monotonic() - start < 60
    kernel_pid = int(log.read_text().split()[0])
    stat = Path(f"/proc/{kernel_pid}/stat")                    # the "kernel" was stopped too

    def gone() -> bool:                                       # SIGKILL lands asynchronously
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except OSError:
            return True
    deadline = time.monotonic() + 10
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone()
    assert "had not returned" in log.read_text()
    # a failed cell is an error, whether or not the run returns
    cmd[3:] = [json.dumps(_code_cells("completed", "failed")), str(tmp_path / "failed.ipynb")]
    with pytest.raises(RuntimeError, match="failed"):
        watch(cmd, tmp_path / "failed.ipynb", log, grace_s=1.0, poll_s=0.2)
    cmd[3:] = [json.dumps(_code_cells("completed")), str(tmp_path / "x.ipynb")]
    cmd[2] = "import sys; open(sys.argv[2], 'w').write(sys.argv[1]); sys.exit(3)"
    with pytest.raises(RuntimeError, match="exit code 3"):
        watch(cmd, tmp_path / "x.ipynb", log, grace_s=1.0, poll_s=0.2)


def test_execute_notebook_runs_papermill_with_the_parameters(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("papermill")
    from emodarts_core.batch.reproduce import execute_notebook

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Python 3"}
    params = nbformat.v4.new_code_cell("seeds = []\nname = 'x'")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("print(name, sum(seeds))")]
    src = tmp_path / "nb.ipynb"
    nbformat.write(nb, src)
    out = tmp_path / "out.ipynb"
    assert execute_notebook(src, out, {"seeds": [1, 2, 3], "name": "job"}, cwd=tmp_path) == "completed"
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[-1].outputs[0]["text"].strip() == "job 6"


def test_records_source_names_the_corpora_of_the_runs(tmp_path):
    from emodarts_core.results.collect import records_source

    _fake_run(tmp_path, "ravdess", "train", 0, 0, 0.6, 0.5)
    _fake_run(tmp_path, "ravdess", "baseline", 0, 0, 0.4, 0.3, {"baseline": "cnn_lstm"})
    src = records_source(tmp_path)
    assert src.corpus == "ravdess" and src.is_real_speech
    assert src.line().startswith("Data source: ravdess — the records of 2 finished runs")
    with pytest.raises(ValueError, match="no such directory"):
        records_source(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no finished"):
        records_source(tmp_path / "empty")


def test_every_job_parameter_is_a_parameter_of_the_experiment_notebook(tmp_path):
    # papermill only warns about a name the notebook lacks, and the job would run with the
    # notebook's default instead: each GridJob parameter must be a name of its parameters cell
    import ast

    from emodarts_core.batch.reproduce import DEFAULT_NOTEBOOK

    nb = json.loads(DEFAULT_NOTEBOOK.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    names = {node.target.id for node in ast.parse("".join(cell["source"])).body
             if isinstance(node, ast.AnnAssign)}
    job = make_grid({"generated": "/g"}, [0], [0], "smoke", tmp_path,
                    overrides=("train.select=last",))[0]
    assert "overrides" in names and set(job.parameters()) <= names, set(job.parameters()) - names


def test_reproduce_ensembles_evaluate_each_folds_seeds_together(tmp_path, capsys):
    import torch

    from emodarts_core.batch.reproduce import export_records
    from emodarts_core.cli import main
    from emodarts_core.data.corpora.generated import generate_corpus

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data, batch = tmp_path / "data", tmp_path / "batch"
        generate_corpus(data, n_speakers=4, per_class=2, seed=0)
        common = ["--corpus", "generated", "--data-root", str(data), "--cache-dir",
                  str(tmp_path / "cache"), "--no-progress", "--device", "cpu",
                  "--set", "train.epochs=1", "--fold", "0"]
        for seed in (0, 1):
            job = batch / "generated" / "fold0" / f"seed{seed}"
            assert main(["baseline", "--kind", "cnn_lstm", *common, "--seed", str(seed),
                         "--out", str(job / "baseline_cnn_lstm")]) == 0
            assert main(["baseline", "--kind", "random", "--k", "1", *common, "--seed", str(seed),
                         "--out", str(job / "baseline_random")]) == 0
        capsys.readouterr()
        assert main(["baseline", "--kind", "random", "--match-search", str(tmp_path / "none"),
                     *common, "--out", str(tmp_path / "rs")]) == 2
        assert "no search run there" in capsys.readouterr().err
        # a third CNN-LSTM on another fold has no partner seed: no ensemble for it
        assert main(["baseline", "--kind", "cnn_lstm", *common[:-2], "--fold", "1",
                     "--out", str(batch / "generated" / "fold1" / "seed0" / "baseline_cnn_lstm")]) == 0
        capsys.readouterr()
        # the audio is read again, so the corpus root is needed even for --table-only
        assert main(["reproduce", "--out", str(batch), "--table-only", "--ensembles"]) == 2
        assert "no data root for corpus generated" in capsys.readouterr().err
        assert main(["reproduce", "--out", str(batch), "--table-only", "--ensembles", "--device",
                     "cpu", "--corpus", f"generated={data}"]) == 0
        printed = capsys.readouterr().out
        ens_dir = batch / "ensembles" / "generated"
        assert sorted(p.relative_to(ens_dir).as_posix() for p in ens_dir.rglob("*.json")) == [
            "fold0/cnn_lstm.json", "fold0/random.json"]
        assert "Ensembles over the seeds, generated" in printed
        assert (ens_dir / "table.md").read_text().strip() in printed
        for method, sub in (("cnn_lstm", "baseline_cnn_lstm"), ("random", "baseline_random")):
            ens = json.loads((ens_dir / "fold0" / f"{method}.json").read_text())
            runs = [batch / "generated" / "fold0" / f"seed{s}" / sub for s in (0, 1)]
            # random search is evaluated through its final training, each member as recorded
            assert ens["runs"] == [str((r / "final") if method == "random" else r) for r in runs]
            assert [m["ua"] for m in ens["members"]] == pytest.approx(
                [json.loads((r / "metrics.json").read_text())["ua"] for r in runs])
        # the ensembles travel with an export, and the table reads them there
        export_records(batch, tmp_path / "kept")
        from emodarts_core.results.evidence_tables import ensemble_table

        kept = tmp_path / "kept" / "ensembles" / "generated"
        assert ensemble_table(kept) == (ens_dir / "table.md").read_text().strip()
    finally:
        torch.set_num_threads(n)
