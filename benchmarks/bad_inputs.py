"""Bad input as a new user meets it: run the command line on damaged copies of a small generated
corpus, bad settings and damaged run files, and print a Markdown table of what each case gets
(the line the user reads and the exit status).

    python benchmarks/bad_inputs.py [--ray] [--keep DIR]

Every command runs as ``python -m emodarts_core ...`` in a child process, on the ``smoke``
profile and the CPU, as a user would type it. ``--ray`` adds the concurrent batch on a generated
corpus not yet written (``reproduce --backend ray``, a few minutes). The same cases are tests in
``tests/test_bad_inputs.py``; this script shows what they look like.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ROWS: list[tuple[str, str, int]] = []


def cli(*args: str, env: dict | None = None, wait: bool = True):
    cmd = [sys.executable, "-m", "emodarts_core", *args]
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "EMODARTS_THREADS": "1", **(env or {})}
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=full_env)
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=900)


def what(proc, base: Path, prefer: str = "") -> str:
    """The line a user reads: the error line, else the line starting with ``prefer``."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    if proc.returncode != 0:
        if any("Traceback" in ln for ln in lines):
            return "TRACEBACK: " + lines[-1]
        pick = lines[-1] if lines else "(nothing)"
    else:
        chosen = [ln for ln in lines if prefer and ln.startswith(prefer)]
        pick = chosen[0] if chosen else (proc.stdout.strip().splitlines() or ["(nothing)"])[-1]
    pick = pick.replace(str(base.resolve()), "DIR").replace(str(base), "DIR")
    return pick if len(pick) <= 330 else pick[:327] + "..."


def row(case: str, proc, base: Path, prefer: str = "") -> None:
    ROWS.append((case, what(proc, base, prefer), proc.returncode))
    print(f"[{proc.returncode}] {case}", file=sys.stderr, flush=True)


def common(data: Path, cache: Path) -> list[str]:
    return ["--corpus", "generated", "--data-root", str(data), "--cache-dir", str(cache),
            "--profile", "smoke", "--device", "cpu", "--no-progress"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ray", action="store_true", help="also run the concurrent Ray batch case")
    ap.add_argument("--keep", default=None, help="work in this folder and keep it")
    args = ap.parse_args()
    from emodarts_core.data.corpora.generated import generate_corpus

    base = Path(args.keep or tempfile.mkdtemp(prefix="bad-inputs-"))
    base.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    data, cache = generate_corpus(base / "data", n_speakers=4, per_class=2, seed=0), base / "cache"
    one = ["--set", "train.epochs=1"]

    # -- audio that cannot be used, and a very short file --------------------------------------
    bad = generate_corpus(base / "bad", n_speakers=4, per_class=2, seed=0)
    files = sorted(bad.glob("spk_*/*.wav"))
    files[0].write_bytes(b"")
    files[5].write_bytes(files[5].read_bytes()[:30])
    files[10].write_text("not audio\n")
    sf.write(files[15], np.zeros(16000), 16000, subtype="PCM_16")
    wave = np.full(16000, 0.1)
    wave[100] = np.nan
    sf.write(files[20], wave, 16000, subtype="FLOAT")
    sf.write(files[25], 0.3 * np.random.default_rng(0).standard_normal(800), 16000,
             subtype="PCM_16")
    p = cli("baseline", "--kind", "cnn_lstm", *common(bad, base / "cache-bad"), *one,
            "--out", str(base / "runs/bad"))
    row("zero-byte, truncated, non-audio, silent, NaN and 0.05 s files in a 32-file corpus "
        "(`baseline`)", p, base, "data:")
    p = cli("evaluate", "--run", str(base / "runs/bad"), *common(bad, base / "cache-bad")[:6],
            "--device", "cpu")
    row("`evaluate` of that run on that corpus", p, base, "evaluate:")

    # -- a misnamed corpus entry --------------------------------------------------------------
    mis = Path(shutil.copytree(data, base / "misnamed"))
    manifest = json.loads((mis / "manifest.json").read_text())
    manifest["files"][3]["label"] = "bored"
    (mis / "manifest.json").write_text(json.dumps(manifest))
    p = cli("baseline", "--kind", "cnn_lstm", *common(mis, cache), *one, "--out",
            str(base / "runs/mis"))
    row("a corpus entry with an unknown emotion code", p, base)
    p = cli("baseline", "--kind", "cnn_lstm", *common(mis, cache), *one, "--out",
            str(base / "runs/mis"), "--skip-bad")
    row("the same with `--skip-bad`", p, base, "data:")

    # -- bad settings -------------------------------------------------------------------------
    for cmd, item in (("search", "search.epochs=-1"), ("search", "space.seq_ops=bogus"),
                      ("baseline", "train.lr=-5"), ("baseline", "train.epochs=0"),
                      ("baseline", "train.batch_size=0")):
        extra = ["--kind", "cnn_lstm"] if cmd == "baseline" else []
        p = cli(cmd, *extra, *common(data, cache), "--set", item, "--out", str(base / "runs/x"))
        left = "; no run directory left" if not (base / "runs/x").exists() else "; RUN DIR LEFT"
        ROWS.append((f"`{cmd} --set {item}`", what(p, base) + left, p.returncode))
    geno = {"normal": {"nodes": [[["sep_conv_3x3", 0], ["skip_connect", 1]]], "concat": [2]},
            "reduce": {"nodes": [[["conv_9x9", 0], ["skip_connect", 1]]], "concat": [2]},
            "seq": {"nodes": [[["lstm_1", 0], ["skip_connect", 1]]], "concat": [2]}}
    (base / "unknown_op.json").write_text(json.dumps(geno))
    p = cli("train", "--genotype", str(base / "unknown_op.json"), *common(data, cache),
            "--out", str(base / "runs/x"))
    row("`train --genotype` with an unknown operation", p, base)
    p = cli("reproduce", "--corpus", f"generated={data}", "--folds", "9", "--seeds", "0",
            "--profile", "smoke", "--out", str(base / "batch9"))
    row("`reproduce --folds 9` on a 4-fold corpus", p, base)

    # -- a trained run, then its files damaged -------------------------------------------------
    p = cli("baseline", "--kind", "cnn_lstm", *common(data, cache), *one,
            "--out", str(base / "runs/good"))
    assert p.returncode == 0, p.stderr

    def damaged_copy(name: str) -> Path:
        run = base / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        shutil.copytree(base / "runs/good", run)
        return run

    for name, text in (("config.json", "{not json"), ("config.json", '{"kind": "train"}')):
        run = damaged_copy("cfg")
        (run / name).write_text(text)
        p = cli("evaluate", "--run", str(run), "--corpus", "generated", "--data-root", str(data))
        row(f"`evaluate --run` whose {name} is `{text}`", p, base)
    run = damaged_copy("resume")
    (run / "metrics.json").unlink()
    resume = ["baseline", "--kind", "cnn_lstm", *common(data, cache), *one, "--out", str(run)]
    blob = (run / "checkpoint.pt").read_bytes()
    for label, content in (("an empty", b""), ("a truncated", blob[: len(blob) // 2])):
        (run / "checkpoint.pt").write_bytes(content)
        row(f"rerun (resume) with {label} `checkpoint.pt`", cli(*resume), base)
    row("the same with `--restart`", cli(*resume, "--restart"), base)
    evaluate = ["--corpus", "generated", "--data-root", str(data), "--cache-dir", str(cache),
                "--device", "cpu"]
    for name, damage in (("best.pt", b""), ("best.pt", "pickle"),
                         ("normalizer.pt", b"junk"), ("metrics.json", b'{"wa": ')):
        run = damaged_copy("files")
        if damage == "pickle":
            code = ("import sys, torch\nclass Gadget:\n    pass\n"
                    "torch.save({'model': Gadget()}, sys.argv[1])")
            subprocess.run([sys.executable, "-c", code, str(run / name)], check=True)
            label = "a pickle `weights_only=True` refuses"
        else:
            (run / name).write_bytes(damage)
            label = "empty" if not damage else "junk"
        p = cli("evaluate", "--run", str(run), *evaluate)
        row(f"`evaluate` with {label} `{name}`", p, base)

    # -- the feature cache ---------------------------------------------------------------------
    entries = sorted((cache).glob("*/??/*.npy"))
    arr = np.load(entries[0])
    arr[0, 0] = np.nan
    np.save(entries[0], arr)
    p = cli("evaluate", "--run", str(base / "runs/good"), *evaluate)
    row("`evaluate` after NaN was written into a feature cache entry", p, base, "evaluate:")

    # -- evaluate on two copies of the corpus ---------------------------------------------------
    copy = shutil.copytree(data, base / "copy")
    outs = []
    for root in (data, copy):
        p = cli("evaluate", "--run", str(base / "runs/good"), "--corpus", "generated",
                "--data-root", str(root), "--cache-dir", str(cache), "--device", "cpu")
        outs.append(json.loads(p.stdout.strip().splitlines()[-1])["written_to"])
    ROWS.append(("`evaluate` of one run on two copies of the corpus",
                 "two files kept: " + ", ".join(Path(o).name for o in outs), p.returncode))

    # -- two commands on one --out --------------------------------------------------------------
    first = cli("baseline", "--kind", "cnn_lstm", *common(data, cache), "--set", "train.epochs=500",
                "--out", str(base / "runs/busy"), wait=False)
    lock = base / "runs/busy/.emodarts.lock"
    for _ in range(600):
        if lock.exists() and lock.read_text().strip():
            break
        time.sleep(0.1)
    second = cli("baseline", "--kind", "cnn_lstm", *common(data, cache), "--set",
                 "train.epochs=500", "--out", str(base / "runs/busy"))
    row("a second `baseline` on the same `--out` while the first runs", second, base)
    first.kill()
    first.wait()
    p = cli("baseline", "--kind", "cnn_lstm", *common(data, cache), "--set", "train.epochs=1",
            "--out", str(base / "runs/busy"), "--restart")
    ROWS.append(("after the first was killed (SIGKILL), `--restart` on that `--out`",
                 "runs: the dead process's lock is taken over" if p.returncode == 0
                 else what(p, base), p.returncode))

    # -- a batch whose jobs share a corpus not yet written --------------------------------------
    if args.ray:
        p = cli("reproduce", "--corpus", f"generated={base / 'newcorpus'}", "--profile", "smoke",
                "--folds", "0", "--seeds", "0,1", "--backend", "ray", "--out",
                str(base / "batch"), "--set", "train.epochs=1", "--set", "search.epochs=1")
        shown = (f"both jobs ran; table of {len(p.stdout.splitlines())} lines"
                 if p.returncode == 0 else what(p, base))
        ROWS.append(("`reproduce --corpus generated=NEWDIR --folds 0 --seeds 0,1 --backend ray`",
                     shown, p.returncode))

    print("| case | what the user gets | exit code |")
    print("|---|---|---|")
    for case, got, code in ROWS:
        print(f"| {case} | {got.replace('|', '/')} | {code} |")
    print(f"\n{len(ROWS)} cases in {time.time() - t0:.0f} s; work folder {base}"
          + ("" if args.keep else " (removed)"))
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
