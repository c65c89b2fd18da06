"""Batch reproduction: a grid of corpora x folds x seeds, run locally or on a Ray cluster, and the
tables (mean ± std over folds and seeds) gathered back from the run directories.

Each grid job executes the job notebook shipped with this package (``job.ipynb``, which calls
:func:`emodarts_core.batch.experiment.run_experiment` as the book's chapter 5 does) with papermill
and that job's parameters, in the caller's working directory; the executed notebook is kept in
the job's directory. The tables are built from the ``metrics.json`` files of
the run directories alone, so they can be rebuilt at any time without re-running anything.

Past one machine the same jobs go to Ray (``backend="ray"``): each job is one Ray task that asks
for the CPUs / GPU it needs, and a cluster started with ``ray start`` is joined by address. Ray
is an optional dependency (``pip install "emodarts-core[cluster]"``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from emodarts_core.batch.experiment import fold_dir
from emodarts_core.common.files import atomic_write_text
from emodarts_core.common.progress import progress as progress_bar
from emodarts_core.data.datasets import load_records
from emodarts_core.data.folds import make_folds
from emodarts_core.results.collect import collect
from emodarts_core.search.quality import PT_FILE
from emodarts_core.train.baselines import FINAL_DIR
from emodarts_core.train.evaluate import run_evaluate

# The notebook each grid job runs: shipped inside the package (package data), so a batch runs
# from a pip install; it calls the same run_experiment as the book's chapter 5.
DEFAULT_NOTEBOOK = Path(__file__).resolve().with_name("job.ipynb")


@dataclass(frozen=True)
class GridJob:
    """One cell of the grid: one corpus, fold and seed of the batch rooted at ``out_root``.

    Its runs go to :attr:`job_dir` (``<out_root>/<corpus>/fold<k>/seed<s>``, the layout of
    :func:`emodarts_core.batch.experiment.fold_dir`), next to the executed notebook.
    """

    corpus: str
    data_root: str
    fold: int
    seed: int
    profile: str
    out_root: str
    protocol: str | None = None
    device: str = "auto"
    baselines: tuple[str, ...] = ("cnn_lstm",)
    overrides: tuple[str, ...] = ()     # profile changes, ``section.field=value`` (as ``--set``)

    @property
    def name(self) -> str:
        return f"{self.corpus}/fold{self.fold}/seed{self.seed}"

    @property
    def job_dir(self) -> Path:
        """Where this job's runs and its executed notebook live."""

        return fold_dir(self.out_root, self.corpus, self.fold, self.seed)

    def parameters(self) -> dict[str, Any]:
        """The notebook parameters of this job (the names of ``job.ipynb``'s `parameters` cell).

        The notebook's ``out_dir`` is the batch root: the notebook itself appends
        ``<corpus>/fold<k>/seed<s>``, which lands in :attr:`job_dir`.
        """
        params = asdict(self)
        params["out_dir"] = params.pop("out_root")
        params["protocol"] = self.protocol or ""
        params["baselines"] = list(self.baselines)
        params["overrides"] = list(self.overrides)
        params["progress"] = False
        return params


def count_folds(corpus: str, root: str | Path, protocol: str | None = None) -> int:
    """How many folds the corpus's default scheme has for this protocol (reads the label files)."""

    return len(make_folds(load_records(corpus, root, protocol), protocol=protocol or "standard"))


def make_grid(corpora: dict[str, str], folds: Sequence[int] | dict[str, Sequence[int]],
              seeds: Sequence[int], profile: str, out_root: str | Path,
              protocol: str | None = None, device: str = "auto",
              baselines: Sequence[str] = ("cnn_lstm",),
              overrides: Sequence[str] = ()) -> list[GridJob]:
    """All jobs of ``corpora`` (name -> data root) x ``folds`` x ``seeds``.

    ``folds`` is one list for every corpus or a dict giving each corpus its own list;
    ``overrides`` (``"train.select=last"`` ...) change the profile of every job alike.
    """
    if not corpora:
        raise ValueError("make_grid needs at least one corpus")
    if not seeds:
        raise ValueError("make_grid needs at least one seed")
    jobs = []
    for corpus, root in corpora.items():
        corpus_folds = folds[corpus] if isinstance(folds, dict) else folds
        for fold in corpus_folds:
            for seed in seeds:
                jobs.append(GridJob(corpus=corpus, data_root=str(root), fold=int(fold),
                                    seed=int(seed), profile=profile, out_root=str(out_root),
                                    protocol=protocol, device=device,
                                    baselines=tuple(baselines), overrides=tuple(overrides)))
    return jobs


def run_notebook_job(job: GridJob, notebook: str | Path = DEFAULT_NOTEBOOK,
                     timeout_s: int | None = None) -> str:
    """Execute the experiment notebook for one job; return the job's output directory."""
    out = job.job_dir
    out.mkdir(parents=True, exist_ok=True)
    execute_notebook(notebook, out / "executed.ipynb", job.parameters(),
                     cwd=Path.cwd(), timeout_s=timeout_s, log_path=out / "papermill.log")
    return str(out)


# ---------------------------------------------------------------------------------------------
# Executing a notebook with a watchdog
def notebook_state(path: str | Path) -> str:
    """``"completed"`` when papermill has marked every code cell of the executed notebook at
    ``path`` completed, ``"failed"`` when a cell failed, else ``"running"`` (also while the file
    is missing or half written)."""
    try:
        nb = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return "running"
    states = [c.get("metadata", {}).get("papermill", {}).get("status")
              for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    if "failed" in states:
        return "failed"
    return "completed" if states and all(s == "completed" for s in states) else "running"


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (read from /proc; empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    import signal

    for pid in [*_descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def watch(cmd: Sequence[str], output: str | Path, log_path: str | Path,
          grace_s: float = 120.0, poll_s: float = 5.0) -> str:
    """Run ``cmd`` (a papermill run writing ``output``) to its end; return the notebook's state.

    The watchdog: papermill can finish every cell and then never return (it waits for a kernel
    reply that does not come; nteract/papermill issues #705 and #711, seen here once inside a Ray
    worker). Once :func:`notebook_state` says every cell completed and the process is still
    alive ``grace_s`` seconds later, the process and its kernel are killed and the run counts
    as completed. A failed cell or a non-zero exit raises ``RuntimeError`` naming the log.
    """

    # the kernel imports the same emodarts_core as this process, installed or from a source tree
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env)
        done_since = None
        while True:
            try:
                rc = proc.wait(timeout=poll_s)
                break
            except subprocess.TimeoutExpired:
                pass
            if notebook_state(output) == "running":
                done_since = None
                continue
            done_since = done_since or time.monotonic()
            if time.monotonic() - done_since >= grace_s:
                _kill_tree(proc)
                log.write(f"\n[emodarts] every cell had ended {grace_s:.0f} s before and papermill "
                          f"had not returned: stopped it and its kernel\n".encode())
                rc = None
                break
    state = notebook_state(output)
    if state == "failed" or (rc is not None and rc != 0):
        raise RuntimeError(f"notebook run failed ({state}, exit code {rc}): see {output} "
                           f"and {log_path}")
    return state


def execute_notebook(notebook: str | Path, output: str | Path, parameters: dict[str, Any],
                     cwd: str | Path, timeout_s: int | None = None,
                     log_path: str | Path | None = None, grace_s: float = 120.0) -> str:
    """Execute ``notebook`` into ``output`` with papermill in a child process, under
    :func:`watch`'s watchdog; ``timeout_s`` limits each cell (None: no limit)."""

    import yaml

    cmd = [sys.executable, "-m", "papermill", str(notebook), str(output),
           "-y", yaml.safe_dump(parameters), "-k", "python3", "--cwd", str(cwd),
           "--no-progress-bar"]
    if timeout_s is not None:
        cmd += ["--execution-timeout", str(int(timeout_s))]
    log_path = Path(log_path) if log_path else Path(output).with_suffix(".log")
    return watch(cmd, output, log_path, grace_s=grace_s)


def run_grid(jobs: Iterable[GridJob], job_fn: Callable[[GridJob], str] = run_notebook_job,
             backend: str = "local", ray_address: str | None = None,
             cpus_per_job: float = 1.0, gpus_per_job: float = 0.0) -> list[str]:
    """Run every job with ``job_fn``, in order (``local``) or as Ray tasks (``ray``).

    Results come back in job order. A job that already finished is not redone by the
    experiment notebook (its runs resume or skip from their checkpoints), so a stopped batch is
    restarted with the same call.
    """
    jobs = list(jobs)
    if backend == "local":
        return [job_fn(job) for job in jobs]
    if backend != "ray":
        raise ValueError(f"unknown backend {backend!r}; use 'local' or 'ray'")
    try:
        import ray
    except ImportError as exc:   # pragma: no cover - depends on the install
        raise ImportError("backend='ray' needs Ray: pip install 'emodarts-core[cluster]'") from exc
    started_here = not ray.is_initialized()
    if started_here and ray_address is None:
        # a private single-machine instance, reachable on the loopback interface only
        ray.init(include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    elif started_here:
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job)(job_fn)
        return ray.get([task.remote(job) for job in jobs])
    finally:
        if started_here:
            ray.shutdown()


# Files of a run directory that make up its record: small JSON, no checkpoints or notebooks.
RECORD_FILES = ("config.json", "environment.json", "metrics.json", "genotype.json", "history.json",
                "candidates.json", "tuning.json", "data_report.json", PT_FILE)
# Where :func:`evaluate_ensembles` writes below a batch directory.
ENSEMBLE_DIR = "ensembles"


def export_records(out_root: str | Path, dest: str | Path) -> list[Path]:
    """Copy the small JSON record of every run below ``out_root`` to the same relative place
    below ``dest`` (no checkpoints, no executed notebooks), with the ensemble evaluations of
    :func:`evaluate_ensembles`, so that a batch's results can be kept in version control and
    :func:`collect` / the tables rebuilt from them anywhere.

    Returns the files written. Existing files in ``dest`` are overwritten (atomically).
    """

    root, dest = Path(out_root), Path(dest)
    if not root.is_dir():
        raise ValueError(f"export_records: no such directory {root}")
    if dest.resolve() == root.resolve() or root.resolve() in dest.resolve().parents:
        raise ValueError("export_records: dest must lie outside the batch directory")
    written = []
    for path in sorted((root / ENSEMBLE_DIR).rglob("*.json")):   # evaluate_ensembles' results
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(target, path.read_text())
        written.append(target)
    for env_path in sorted(root.rglob("environment.json")):    # every run directory has one
        run_dir = env_path.parent
        for name in RECORD_FILES:
            src = run_dir / name
            if src.exists():
                target = dest / run_dir.relative_to(root) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, src.read_text())
                written.append(target)
    return written


# ---------------------------------------------------------------------------------------------
# Ensembles over seeds


def evaluated_run(run_dir: str | Path) -> Path:
    """The directory whose weights stand for a result row: a random search's ``final`` training
    (the random-search run itself holds no weights), any other run itself."""

    run_dir = Path(run_dir)
    final = run_dir / FINAL_DIR
    return final if (final / "config.json").exists() else run_dir


def evaluate_ensembles(out_root: str | Path, corpora: dict[str, str | Path | None],
                       protocol: str | None = None, device: str = "cpu",
                       cache_dir: str | Path | None = None,
                       progress: bool = True) -> dict[str, Path]:
    """Each fold's networks of one method over the batch's seeds, evaluated together.

    For every (corpus, fold, method) of :func:`collect` with finished runs of at least two
    seeds, :func:`emodarts_core.train.evaluate.run_evaluate` averages their softmax probabilities on the
    fold's test side and writes ``<out_root>/ensembles/<corpus>/fold<k>/<method>.json`` (the
    layout :func:`emodarts_core.results.evidence_tables.ensemble_table` reads). ``corpora`` maps each corpus name
    to its data root (features are computed again from the audio, as each run was trained);
    every corpus of the batch needs one. Returns ``{corpus: its ensemble directory}``.
    """

    rows = collect(out_root)
    missing = sorted({r.corpus for r in rows} - set(corpora))
    if missing:
        raise ValueError(f"evaluate_ensembles: no data root for corpus {', '.join(missing)} "
                         f"(pass it as NAME=ROOT)")
    groups: dict[tuple[str, int, str], dict[int, Path]] = {}
    for r in rows:
        groups.setdefault((r.corpus, r.fold, r.method), {})[r.seed] = evaluated_run(r.run_dir)
    groups = {key: runs for key, runs in sorted(groups.items()) if len(runs) >= 2}
    dest = Path(out_root) / ENSEMBLE_DIR
    written: dict[str, Path] = {}
    for (corpus, fold, method), runs in progress_bar(list(groups.items()), desc="ensembles",
                                                      enabled=progress):
        out = dest / corpus / f"fold{fold}" / f"{method}.json"
        run_evaluate([runs[s] for s in sorted(runs)], corpus, corpora[corpus], protocol=protocol,
                     fold=fold, cache_dir=cache_dir, out=out, device=device)
        written[corpus] = dest / corpus
    return written
