"""Bad input as a user meets it on the command line: every case ends in either a one-line error
(exit status 2, no traceback, no half-made run directory) naming the file or setting and what to
do, or a counted skip that is printed and written into the run's JSON. One test per case, on a
tiny generated corpus and the smoke profile."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import _err  # one CLI error check: exit 2, one line, no traceback

from emodarts_core.cli import main
from emodarts_core.data.corpora.generated import generate_corpus

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ONE_EPOCH = ["--set", "train.epochs=1"]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _corpus(root: Path) -> Path:
    return generate_corpus(root, n_speakers=4, per_class=2, seed=0)


def _common(data: Path, cache: Path) -> list[str]:
    return ["--corpus", "generated", "--data-root", str(data), "--cache-dir", str(cache),
            "--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished CNN-LSTM baseline run (1 epoch) on a small generated corpus."""
    base = tmp_path_factory.mktemp("trained")
    data, cache = _corpus(base / "data"), base / "cache"
    assert main(["baseline", "--kind", "cnn_lstm", *_common(data, cache), *ONE_EPOCH,
                 "--out", str(base / "run")]) == 0
    return base


def _copy_run(trained: Path, dest: Path) -> Path:
    shutil.copytree(trained / "run", dest / "run")
    return dest / "run"


def _evaluate(trained: Path, run: Path) -> list[str]:
    return ["evaluate", "--run", str(run), *_common(trained / "data", trained / "cache")[:6],
            "--device", "cpu"]


# ---------------------------------------------------------------------------------------------
# 1. Bad audio: skipped, counted, printed once, listed in the run's JSON and in evaluate's
def _damage_audio(data: Path) -> dict[str, str]:
    """Damage six of the corpus's files; return {file name: what a reason must mention}."""
    files = sorted(data.glob("spk_*/*.wav"))
    zero, trunc, text, silent, nan, short = files[0], files[5], files[10], files[15], files[20], \
        files[25]
    zero.write_bytes(b"")
    trunc.write_bytes(trunc.read_bytes()[:30])
    text.write_text("this is not audio\n")
    sf.write(silent, np.zeros(16000), 16000, subtype="PCM_16")
    wave = np.full(16000, 0.1)
    wave[100] = np.nan
    sf.write(nan, wave, 16000, subtype="FLOAT")
    rng = np.random.default_rng(0)
    sf.write(short, 0.3 * rng.standard_normal(800), 16000, subtype="PCM_16")   # 0.05 s
    return {zero.name: "decode", trunc.name: "decode", text.name: "decode",
            silent.name: "silent", nan.name: "NaN", short.name: "padded"}


def test_bad_audio_is_counted_printed_and_recorded(capsys, tmp_path):
    data = _corpus(tmp_path / "data")
    expect = _damage_audio(data)
    common = _common(data, tmp_path / "cache")
    assert main(["baseline", "--kind", "cnn_lstm", *common, *ONE_EPOCH,
                 "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    data_lines = [ln for ln in err.splitlines() if ln.startswith("data:")]
    assert len(data_lines) == 1                                        # printed once
    assert "skipped 5 of 32 file(s)" in data_lines[0] and "noted 1 file(s)" in data_lines[0]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["n_files"] == 32 and report["n_skipped"] == 5 and report["n_noted"] == 1
    reasons = {Path(s["file"]).name: s["reason"] for s in report["skipped"]}
    notes = {Path(s["file"]).name: s["note"] for s in report["notes"]}
    for name, word in expect.items():
        text = reasons.get(name) or notes.get(name)
        assert text is not None and word.lower() in text.lower(), (name, text)
    # evaluate says how many files it scored of how many, and why the others were skipped
    assert main(["evaluate", "--run", str(tmp_path / "run"), *common[:6], "--device", "cpu"]) == 0
    out = capsys.readouterr()
    printed = json.loads(out.out.strip().splitlines()[-1])
    assert printed["n"] == 27 and printed["n_files"] == 32
    assert "scored 27 of 32 files; skipped 5" in out.err
    written = json.loads(Path(printed["written_to"]).read_text())
    assert {Path(s["file"]).name for s in written["skipped"]} == set(reasons)


# 2. A misnamed corpus entry: one line suggesting --skip-bad; with it the corpus still runs
def test_misnamed_entry_needs_skip_bad(capsys, tmp_path):
    data = _corpus(tmp_path / "data")
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["files"][3]["label"] = "bored"
    (data / "manifest.json").write_text(json.dumps(manifest))
    argv = ["baseline", "--kind", "cnn_lstm", *_common(data, tmp_path / "cache"), *ONE_EPOCH,
            "--out", str(tmp_path / "run")]
    msg = _err(capsys, argv)
    assert "bored" in msg and "--skip-bad" in msg and "files[3]" in msg
    assert not (tmp_path / "run").exists()
    assert main(argv + ["--skip-bad"]) == 0
    assert "skipped 1 of 32 file(s)" in capsys.readouterr().err
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["n_skipped"] == 1 and "bored" in report["skipped"][0]["reason"]


# 3. A genotype with an unknown operation
def test_genotype_with_unknown_op(capsys, tmp_path):
    from emodarts_core.nas.genotype import CellGenotype, Genotype

    cell = CellGenotype(nodes=((("sep_conv_3x3", 0), ("skip_connect", 1)),), concat=(2,))
    seq = CellGenotype(nodes=((("lstm_1", 0), ("skip_connect", 1)),), concat=(2,))
    geno = Genotype(normal=cell, reduce=cell, seq=seq).to_dict()
    geno["reduce"]["nodes"][0][0][0] = "conv_9x9"
    (tmp_path / "g.json").write_text(json.dumps(geno))
    msg = _err(capsys, ["train", "--genotype", str(tmp_path / "g.json"),
                        *_common(tmp_path / "data", tmp_path / "cache"),
                        "--out", str(tmp_path / "run")])
    assert "conv_9x9" in msg and "reduce" in msg and "g.json" in msg
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


# 4. evaluate --run on a directory whose config.json is not JSON, or lacks fields
@pytest.mark.parametrize("text, words", [("{not json", "not valid JSON"),
                                         ('{"kind": "train"}', "run configuration")])
def test_evaluate_run_with_bad_config(capsys, tmp_path, text, words):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(text)
    msg = _err(capsys, ["evaluate", "--run", str(tmp_path / "run"), "--corpus", "generated"])
    assert words in msg and "config.json" in msg


# 5. Every --set value is range-checked before any data is read
@pytest.mark.parametrize("command, item, words", [
    ("search", "search.epochs=-1", "epochs must be >= 1"),
    ("search", "space.seq_ops=bogus", "unknown seq_ops set 'bogus'"),
    ("baseline", "train.lr=-5", "lr must be > 0"),
    ("baseline", "train.epochs=0", "epochs must be >= 1"),
    ("baseline", "train.batch_size=0", "batch_size must be >= 2"),
])
def test_bad_set_values_stop_before_the_data(capsys, tmp_path, command, item, words):
    extra = ["--kind", "cnn_lstm"] if command == "baseline" else []
    msg = _err(capsys, [command, *extra, *_common(tmp_path / "data", tmp_path / "cache"),
                        "--set", item, "--out", str(tmp_path / "run")])
    assert words in msg and item.split("=")[0].split(".")[1] in msg
    # nothing was read or written: the generated corpus was not even made
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


# 6. reproduce --folds past the corpus's folds fails before any job starts
def test_reproduce_folds_out_of_range(capsys, tmp_path):
    from emodarts_core.batch.reproduce import count_folds

    data = _corpus(tmp_path / "data")
    n = count_folds("generated", data)
    msg = _err(capsys, ["reproduce", "--corpus", f"generated={data}", "--folds", f"0,{n + 5}",
                        "--seeds", "0", "--profile", "smoke", "--out", str(tmp_path / "batch")])
    assert f"has {n} fold(s)" in msg and str(n + 5) in msg
    assert not (tmp_path / "batch").exists()                  # no job, no notebook


# 7. Damaged run files: named, with the choice to restart; --restart then runs again
def test_damaged_checkpoint_is_named_and_restart_recovers(capsys, tmp_path, trained):
    run = _copy_run(trained, tmp_path)
    (run / "metrics.json").unlink()                     # an unfinished run: a rerun resumes
    data = _common(trained / "data", trained / "cache")
    argv = ["baseline", "--kind", "cnn_lstm", *data, *ONE_EPOCH, "--out", str(run)]
    blob = (run / "checkpoint.pt").read_bytes()
    for damage in (b"", blob[: len(blob) // 2]):         # empty, truncated
        (run / "checkpoint.pt").write_bytes(damage)
        msg = _err(capsys, argv)
        assert "checkpoint.pt is damaged" in msg and "--restart" in msg
        assert (run / "config.json").exists()           # the run directory is left as it was
    assert main(argv + ["--restart"]) == 0
    capsys.readouterr()
    assert json.loads((run / "metrics.json").read_text())["epochs_run"] == 1


def test_restart_deletes_nothing_outside_a_run_directory(capsys, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    msg = _err(capsys, ["baseline", "--kind", "cnn_lstm",
                        *_common(tmp_path / "data", tmp_path / "cache"),
                        "--out", str(tmp_path / "mine"), "--restart"])
    assert "not a run directory" in msg and "nothing was deleted" in msg
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


class _Gadget:
    """Not a type ``torch.load(weights_only=True)`` accepts."""


@pytest.mark.parametrize("name, damage, words", [
    ("best.pt", b"", "best.pt is damaged"),
    ("best.pt", "pickle", "weights_only=True"),
    ("normalizer.pt", b"junk bytes", "normalizer.pt is damaged"),
    ("metrics.json", b"{\"wa\": ", "metrics.json is not valid JSON"),
])
def test_damaged_files_of_a_finished_run(capsys, tmp_path, trained, name, damage, words):
    run = _copy_run(trained, tmp_path)
    if damage == "pickle":
        torch.save({"model": _Gadget()}, run / name)
    else:
        (run / name).write_bytes(damage)
    msg = _err(capsys, _evaluate(trained, run))
    assert words in msg and str(run / name) in msg and "--restart" in msg


# 8. Feature cache entries are checked on read; bad ones are computed again and counted
def test_feature_cache_entries_are_checked(tmp_path):
    from emodarts_core.config import FEATURE_PROFILES
    from emodarts_core.data.feature_cache import FeatureCache
    from emodarts_core.data.features import extract_features

    data = _corpus(tmp_path / "data")
    files = sorted(data.glob("spk_*/*.wav"))[:4]
    cfg = FEATURE_PROFILES["smoke"]
    first = extract_features(files, cfg, cache_dir=tmp_path / "cache", progress=False)
    cache = FeatureCache(tmp_path / "cache")
    entries = [cache.entry_path(cfg, cache.content_hash(f)) for f in files]
    poisoned = np.array(first.tensor[0].numpy())
    poisoned[3, 4] = np.nan
    np.save(entries[0], poisoned)                                       # NaN
    np.save(entries[1], np.zeros((cfg.n_mfcc, cfg.n_frames + 1), np.float32))   # wrong shape
    entries[2].write_bytes(b"\x93NUMPY junk")                           # not .npy
    again = extract_features(files, cfg, cache_dir=tmp_path / "cache", progress=False)
    torch.testing.assert_close(again.tensor, first.tensor)
    noted = {Path(w).name: r for w, r in again.report.notes}
    assert set(noted) == {files[0].name, files[1].name, files[2].name}
    assert "NaN" in noted[files[0].name] and "computed again" in noted[files[1].name]
    assert np.isfinite(np.load(entries[0])).all()                       # repaired on disk
    third = extract_features(files, cfg, cache_dir=tmp_path / "cache", progress=False)
    assert not third.report.notes


# 9. evaluate on two copies of a corpus keeps both results
def test_evaluate_keeps_one_file_per_data_root(capsys, tmp_path, trained):
    run = _copy_run(trained, tmp_path)
    copy = shutil.copytree(trained / "data", tmp_path / "copy")
    written = []
    for root in (trained / "data", copy):
        assert main(["evaluate", "--run", str(run), "--corpus", "generated", "--data-root",
                     str(root), "--cache-dir", str(trained / "cache"), "--device", "cpu",
                     "--fold", "0"]) == 0
        written.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written_to"])
    assert written[0] != written[1] and all(Path(w).exists() for w in written)
    assert all(Path(w).name.startswith("evaluate-generated-") and w.endswith("-fold0.json")
               for w in written)
    assert json.loads(Path(written[1]).read_text())["data_root"] == str(copy.resolve())


# 10. One command at a time on a run directory; a dead holder's lock is taken over
def test_run_directory_lock(capsys, tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from emodarts_core.common.locks import run_lock\n"
            "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        msg = _err(capsys, ["baseline", "--kind", "cnn_lstm",
                            *_common(tmp_path / "data", tmp_path / "cache"), "--out", str(out)])
        assert f"pid {holder.pid}" in msg and "in use" in msg
        assert not (tmp_path / "data").exists()          # refused before reading anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    from emodarts_core.common.locks import run_lock

    with run_lock(out):                                  # the dead process's lock is free
        assert f"pid {os.getpid()}" in (out / ".emodarts.lock").read_text()


# 11. A failed command leaves no half-made run directory; the corrected command then runs
def test_failed_command_leaves_no_run_directory(capsys, tmp_path, monkeypatch):
    import emodarts_core.train.baselines as baselines
    from emodarts_core.data.datasets import DataError

    data = _corpus(tmp_path / "data")
    argv = ["baseline", "--kind", "cnn_lstm", *_common(data, tmp_path / "cache"), *ONE_EPOCH,
            "--out", str(tmp_path / "run")]

    def failing_fit(*args, **kwargs):
        raise DataError("the first epoch could not start")

    monkeypatch.setattr(baselines, "fit", failing_fit)
    assert "could not start" in _err(capsys, argv)
    assert not (tmp_path / "run").exists()            # it had been made, then removed
    monkeypatch.undo()
    assert main(argv) == 0
    assert (tmp_path / "run" / "metrics.json").exists()


# 12. Shared things made once: concurrent jobs on a generated corpus not yet written
def test_generated_corpus_is_made_once_by_concurrent_jobs(tmp_path, monkeypatch):
    from emodarts_core.data import datasets
    from emodarts_core.data.datasets import load_records

    root = tmp_path / "new"
    calls, results, errors = [], [], []
    real = datasets.generate_corpus

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **{**kwargs, "n_speakers": 4, "per_class": 1})

    monkeypatch.setattr(datasets, "generate_corpus", counted)

    def job():
        try:
            results.append(len(load_records("generated", root)))
        except Exception as e:  # noqa: BLE001 - the test reports any failure
            errors.append(e)

    threads = [threading.Thread(target=job) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == [16, 16, 16] and len(calls) == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]

    # an interrupted generation leaves no half corpus at the root
    def broken(tmp, **kwargs):
        (Path(tmp) / "spk_00").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "generate_corpus", broken)
    with pytest.raises(KeyboardInterrupt):
        load_records("generated", tmp_path / "other")
    assert not (tmp_path / "other").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
