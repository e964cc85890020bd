"""Optuna backend (the default): a multi-objective study (accuracy ↑, cost ↓) in SQLite or any RDB.

Fault tolerance comes from the storage: each finished trial is committed as it ends, so a study
killed with SIGKILL resumes with every completed trial intact. Trials left RUNNING by a killed
process stop sending heartbeats and are marked FAIL after the grace period. Several processes or
machines share one study through one storage URL (e.g. PostgreSQL).
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from .._optional import import_optional
from ..errors import ConfigError
from ._metrics import Objective
from ._objective import SearchSettings, TrialResult, run_trial, worker_id
from ._results import SearchResults

__all__ = ["run_optuna", "optuna_results", "default_storage", "SAMPLERS"]

SAMPLERS = ("tpe", "nsga2", "random")
HEARTBEAT_S = 20  # a trial silent for GRACE_S is from a dead process: marked FAIL on the next start
GRACE_S = 60
WAIT_S = 1.0  # polling period while other workers finish the last trials


def default_storage(out_dir: str | Path) -> str:
    """The embedded default: a SQLite file in the search folder."""
    return f"sqlite:///{Path(out_dir).resolve() / 'study.db'}"


def run_optuna(
    settings: SearchSettings,
    *,
    n_trials: int,
    storage: str | None = None,
    study_name: str = "lcnas",
    sampler: str = "tpe",
    single_objective: bool = False,
    seed: int | None = None,
    progress: bool = True,
) -> SearchResults:
    """Run (or continue) a study until it holds ``n_trials`` finished trials; return all its trials.

    ``single_objective`` maximises validation accuracy alone (budgets stay constraints), which
    enables median pruning on the per-epoch accuracy.
    """
    optuna = import_optional("optuna", extra="optuna")
    from ._translate import suggest_optuna

    objective_ = settings.objective
    if n_trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {n_trials}")
    url = storage_url(storage) if storage else default_storage(settings.out_dir)
    if not storage:
        Path(settings.out_dir).mkdir(parents=True, exist_ok=True)
    study = _open_study(optuna, settings, url, study_name, sampler, single_objective, seed, n_trials)
    reclaim_dead_trials(optuna, study)
    done = len(_slots(optuna, study, running=False))
    shown = _masked(url)
    print(f"lcnas search: optuna study {study_name!r} in {shown} ({min(done, n_trials)}/{n_trials} trials done); "
          f"watch it with: optuna-dashboard {shown}", file=sys.stderr)

    def objective(trial):
        params = suggest_optuna(trial, settings.space)
        trial.set_user_attr("params", _jsonable(params))
        trial.set_user_attr("worker", worker_id())

        def report(epoch: int, metrics: dict[str, float]) -> None:
            value = metrics[objective_.scheduler_metric]
            if single_objective and value is not None and math.isfinite(value):
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch} at validation {objective_.scheduler_metric} {value:.2f}")

        try:
            result = run_trial(settings, params, number=trial.number, report=report)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # recorded on the trial, then Optuna marks it FAIL and the study goes on
            trial.set_user_attr("error", f"{type(e).__name__}: {e}")
            raise
        trial.set_user_attr("result", result.to_dict())
        set_constraints(trial, objective_, result)
        values = objective_.values(result, single=single_objective)
        return values[0] if single_objective else values

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _optimize(optuna, study, objective, n_trials, progress=progress)
    return optuna_results(study, settings, label=f"{url}#{study_name}")


def storage_url(url: str, *, flag: str = "--storage") -> str:
    """Check an RDB URL before anything is written: one clear error for a malformed URL, an unknown
    database, a missing driver or a SQLite file in a folder that does not exist.

    A plain ``postgresql://`` URL (the usual form) means SQLAlchemy's default driver, psycopg 3;
    when only psycopg2 is installed (``lcnas[dev]``, ``psycopg2-binary``) it is used instead.
    """
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(f"{flag} {url!r} is not a database URL: use sqlite:///path/study.db or "
                          "postgresql://user@host:port/db") from None
    shown = u.render_as_string(hide_password=True)
    if u.get_backend_name() == "postgresql" and "+" not in u.drivername and importlib.util.find_spec("psycopg") is None:
        if importlib.util.find_spec("psycopg2") is None:
            raise ConfigError(f"{flag} {shown!r} needs a PostgreSQL driver: pip install psycopg2-binary (or 'psycopg[binary]')")
        u = u.set(drivername="postgresql+psycopg2")
    try:
        dialect = u.get_dialect()
    except sqlalchemy.exc.NoSuchModuleError:
        raise ConfigError(f"{flag} {shown!r}: unknown database {u.drivername!r}; use sqlite:///path/study.db or "
                          "postgresql://user@host:port/db") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        module = getattr(e, "name", None) or u.drivername
        package = _DRIVER_PACKAGES.get(module, module)
        raise ConfigError(f"{flag} {shown!r}: the database driver {module!r} is not installed; pip install {package}, "
                          f"or name an installed driver in the URL ({u.get_backend_name()}+DRIVER://...)") from None
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        folder = Path(u.database).expanduser().absolute().parent
        if not folder.is_dir():
            raise ConfigError(f"{flag} {shown!r}: folder {str(folder)!r} does not exist; create it first, or give a file in an existing folder")
    return u.render_as_string(hide_password=False)


_DRIVER_PACKAGES = {"MySQLdb": "mysqlclient", "pymysql": "PyMySQL", "psycopg2": "psycopg2-binary", "psycopg": "'psycopg[binary]'"}


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(optuna, url: str, *, heartbeat: bool = True, flag: str = "--storage"):
    """Optuna's RDB storage for a checked ``url``; a server that cannot be reached is a ConfigError."""
    import sqlalchemy.exc

    try:
        return _rdb_storage(optuna, url, heartbeat=heartbeat)
    except sqlalchemy.exc.OperationalError as e:
        reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(getattr(e, "orig", e)).strip() else type(e).__name__
        raise ConfigError(f"{flag} {_masked(url)!r}: cannot connect to the database ({reason}); start the server or fix the URL") from None


# --- one trial at a time, exactly n_trials in all, whatever is killed when -------------------------
# A trial's slot is taken while it runs and once it finished (complete, pruned or failed on its own).
# A trial whose process died (kill -9, power loss) is "interrupted": marked FAIL with
# ``lcnas_interrupted``, its parameters queued again, and it no longer holds a slot. Dead processes
# on this machine are found at once by their pid; on other machines by Optuna's heartbeat.


def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid())}


def _process_start(pid: int) -> str | None:
    try:  # field 22 of /proc/PID/stat: start time in clock ticks since boot (tells a reused pid apart)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict[str, Any]) -> bool:
    pid = int(owner.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    started = owner.get("started")
    return started is None or _process_start(pid) in (None, started)


def _excluded(trial) -> bool:
    return bool(trial.user_attrs.get("lcnas_interrupted") or trial.user_attrs.get("lcnas_surplus"))


def reclaim_dead_trials(optuna, study) -> list[int]:
    """Mark the RUNNING trials of dead processes interrupted and queue their parameters again."""
    from datetime import datetime

    stale = set()
    storage = study._storage
    if hasattr(storage, "_get_stale_trial_ids") and storage.get_heartbeat_interval():
        stale = set(storage._get_stale_trial_ids(study._study_id))
    host, now = socket.gethostname(), datetime.now()
    reclaimed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = t.user_attrs.get("lcnas_owner")
        if owner and owner.get("host") == host:
            dead = not _alive(owner)
        elif owner or t._trial_id in stale:
            dead = t._trial_id in stale
        else:  # killed between Optuna's ask and the first record: no owner, no heartbeat
            dead = t.datetime_start is not None and (now - t.datetime_start).total_seconds() > GRACE_S
        if dead and _release(optuna, study, t, "lcnas_interrupted"):
            reclaimed.append(t.number)
            print(f"lcnas search: trial {t.number} was left running by a process that died; it runs again", file=sys.stderr)
    return reclaimed


def _release(optuna, study, trial, reason: str) -> bool:
    """FAIL ``trial`` without counting it and queue its parameters again; False if another process did."""
    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, reason, True)
        if not storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    frozen = storage.get_trial(trial._trial_id)
    params = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
    study.enqueue_trial(params, user_attrs={"lcnas_retry_of": frozen.number})
    return True


def _slots(optuna, study, *, running: bool = True) -> list:
    states = [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL]
    if running:
        states.append(optuna.trial.TrialState.RUNNING)
    return [t for t in study.get_trials(deepcopy=False, states=tuple(states)) if not _excluded(t)]


def _surplus(optuna, study, trial, n_trials: int) -> bool:
    """Whether ``trial`` is beyond the first ``n_trials`` slots (workers that asked at the same moment
    agree on the order: start time, then id), so it must not run."""
    order = sorted(_slots(optuna, study), key=lambda t: (t.datetime_start or t.datetime_complete, t._trial_id))
    ids = [t._trial_id for t in order]
    return trial._trial_id in ids and ids.index(trial._trial_id) >= n_trials


def _optimize(optuna, study, objective, n_trials: int, *, progress: bool) -> None:
    """Run trials until ``n_trials`` slots are taken; Ctrl-C marks the running trial interrupted."""
    from optuna.storages._heartbeat import get_heartbeat_thread
    from tqdm.auto import tqdm

    bar = tqdm(total=n_trials, desc="trials", disable=not progress, dynamic_ncols=True)
    try:
        while True:
            reclaim_dead_trials(optuna, study)
            bar.n = min(len(_slots(optuna, study, running=False)), n_trials)
            bar.refresh()
            slots = _slots(optuna, study)
            if len(slots) >= n_trials:
                if not any(t.state == optuna.trial.TrialState.RUNNING for t in slots):
                    return
                # Other workers still run the last trials: wait for them, so that every worker's
                # results hold the whole study, and take over a trial whose worker dies meanwhile.
                time.sleep(WAIT_S)
                continue
            with warnings.catch_warnings():  # our loop runs Optuna's heartbeat thread itself, as optimize() does
                warnings.filterwarnings("ignore", message="Heartbeat of storage")
                trial = study.ask()
            with get_heartbeat_thread(trial._trial_id, study._storage):
                trial.set_user_attr("lcnas_owner", _owner())
                if _surplus(optuna, study, trial, n_trials):
                    _release(optuna, study, trial, "lcnas_surplus")
                    continue  # all slots taken: wait for the other workers' last trials
                values, state = None, None
                try:
                    values = objective(trial)
                except optuna.TrialPruned:
                    state = optuna.trial.TrialState.PRUNED
                except KeyboardInterrupt:
                    _release(optuna, study, trial, "lcnas_interrupted")
                    raise
                except Exception:
                    state = optuna.trial.TrialState.FAIL
            if state is None and not all(isinstance(v, (int, float)) and math.isfinite(v)
                                         for v in (values if isinstance(values, (tuple, list)) else (values,))):
                state = optuna.trial.TrialState.FAIL  # a NaN or missing objective: a failed trial, not a crash
            _log_trial(study, study.tell(trial, None if state is not None else values, state=state))
    except KeyboardInterrupt:
        raise KeyboardInterrupt("rerun the same command to continue the study (finished trials are kept)") from None
    finally:
        bar.close()


def _open_study(optuna, settings: SearchSettings, url: str, name: str, sampler: str, single: bool, seed: int | None, n_trials: int):
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler {sampler!r} is not one of {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():  # heartbeats and grouped TPE are "experimental" in Optuna, and what we need
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for attempt in range(5):
            try:
                return _create(optuna, settings, url, name, sampler, single, seed, n_trials)
            except ConfigError:
                raise
            except Exception as e:  # workers starting together race to create the schema or the study
                if attempt == 4 or "IntegrityError" not in type(e).__name__ + str(type(e).__mro__):
                    raise
                time.sleep(0.2 + random.random())


def startup_trials(space, n_trials: int) -> int:
    """Start-up trials before TPE models: a third of a small search, at most Optuna's usual 10,
    and at least enough to try every choice of the largest categorical parameter."""
    widest = max((len(p.choices) for p in space.params if p.kind == "categorical"), default=1)
    return min(n_trials, max(widest, min(10, max(2, n_trials // 3))))


def stratified_choices(space, n: int, seed: int | None) -> list[dict[str, Any]]:
    """``n`` partial parameter sets: each unconditional categorical parameter cycles through its
    choices in a seeded shuffled order (encoded as Optuna stores them); others are left out."""
    from ._translate import encode_choice

    rng = random.Random(seed)
    rows: list[dict[str, Any]] = [{} for _ in range(n)]
    for p in space.params:
        if p.kind != "categorical" or p.condition is not None:
            continue
        order = list(p.choices)
        rng.shuffle(order)
        for i, row in enumerate(rows):
            row[p.name] = encode_choice(order[i % len(order)])
    return rows


def _rdb_storage(optuna, url: str, attempts: int = 5, *, heartbeat: bool = True):
    """Optuna's RDB storage for ``url``. Workers started together on an empty database each create
    the schema; on PostgreSQL the loser of that race fails (a duplicate table or type), and on a
    retry finds the tables there. Other errors, and the last attempt's, propagate."""
    import sqlalchemy.exc

    for attempt in range(attempts):
        try:
            if not heartbeat:
                return optuna.storages.RDBStorage(url)
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + random.random() * 0.2)


def _create(optuna, settings: SearchSettings, url: str, name: str, sampler: str, single: bool, seed: int | None, n_trials: int):
    storage = open_storage(optuna, url)
    directions = settings.objective.directions(single=single)
    # Optuna >= 5 takes constraints from Trial.set_constraint; older versions need constraints_func.
    legacy = not hasattr(optuna.trial.Trial, "set_constraint")
    constraints = _constraints if settings.budgets and legacy else None
    def make_sampler(seed):
        if sampler == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints, population_size=8)
        if sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed, constraints_func=constraints, multivariate=True, group=True,
                                          n_startup_trials=startup_trials(settings.space, n_trials))

    smp = make_sampler(seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0) if single else optuna.pruners.NopPruner()
    try:
        study = optuna.create_study(storage=storage, study_name=name, directions=directions, sampler=smp, pruner=pruner, load_if_exists=True)
    except ValueError as e:  # e.g. an existing study with other directions
        raise ConfigError(f"optuna study {name!r} in {_masked(url)} cannot be opened for this search: {e}; pick another --study-name") from None
    done = len(study.get_trials(deepcopy=False))
    if not done and sampler in ("tpe", "nsga2"):
        # Stratified start-up: a model-based sampler only proposes what its first trials tried, and
        # a few random draws easily miss a gating type altogether (the samplers benchmark and a
        # 16-trial ResNet-32 search never tried layer gating). Fix the categorical choices of the
        # start-up trials so each choice appears equally often; the rest is sampled as usual.
        for fixed in stratified_choices(settings.space, startup_trials(settings.space, n_trials), seed):
            study.enqueue_trial(fixed)
    if seed is not None and done:
        # A resumed seeded study must not replay the sampler's first draws (duplicate trials):
        # continue from a seed that still depends only on the seed and the trials already there.
        study.sampler = make_sampler(seed * 100_003 + done)
    saved = study.user_attrs.get("lcnas_settings")
    mine = _comparable(settings)
    if saved is None:
        study.set_user_attr("lcnas_settings", mine)
    elif saved != mine:
        raise ConfigError(f"optuna study {name!r} in {_masked(url)} was started with other search settings (space, base config, cost or budgets); "
                          "continue it with the same arguments, or pick another --study-name")
    first = study.user_attrs.get("lcnas_sampler")
    if first is None:
        study.set_user_attr("lcnas_sampler", sampler)
    elif first != sampler:
        raise ConfigError(f"optuna study {name!r} in {_masked(url)} was started with --sampler {first}; "
                          f"continue it with --sampler {first}, or pick another --study-name for --sampler {sampler}")
    metric_names = settings.objective.metric_names(single=single)
    if study.metric_names != metric_names:  # optuna-dashboard shows these instead of "Objective 0/1"
        study.set_metric_names(metric_names)
    return study


def _comparable(settings: SearchSettings) -> dict[str, Any]:
    # The output folder may differ between workers sharing a study; everything else must match.
    d = _jsonable(settings.to_dict())
    d.pop("out_dir", None)
    return d


def set_constraints(trial, objective: Objective, result: TrialResult) -> None:
    """Record ``result``'s budget violations on an Optuna trial as its constraints (user attribute
    ``constraints``, read by :func:`_constraints` on Optuna 4; ``trial.set_constraint`` on Optuna 5)."""
    if not objective.budgets:
        return
    violations = objective.violations(result)
    trial.set_user_attr("constraints", violations)
    if hasattr(trial, "set_constraint"):  # Optuna >= 5: samplers read constraints from the trial
        for (key, _), value in zip(objective.budgets, violations, strict=True):
            trial.set_constraint(key, value)


def _constraints(frozen_trial) -> list[float]:
    return frozen_trial.user_attrs.get("constraints", [0.0])


def _log_trial(study, trial) -> None:
    result = trial.user_attrs.get("result")
    if result:
        lat = f", {result['latency_ms_mean']:.3f} ms" if result.get("latency_ms_mean") is not None else ""
        msg = f"{result['accuracy']:.2f} % val, {result['mflops_mean']:.1f} MFLOPs{lat}"
    else:
        msg = trial.user_attrs.get("error", "")
    print(f"trial {trial.number}: {trial.state.name.lower()} {msg}", file=sys.stderr)


def optuna_results(study, settings: SearchSettings, *, label: str = "") -> SearchResults:
    """Every trial of an Optuna study in the common results format."""
    states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    trials = []
    for t in study.trials:
        state = states.get(t.state.name)
        if state is None or _excluded(t):  # running or waiting: not a result yet; interrupted: queued again
            continue
        data = t.user_attrs.get("result") if state == "complete" else None
        if data is None:
            data = {"number": t.number, "params": t.user_attrs.get("params", {}), "worker": t.user_attrs.get("worker"),
                    "error": t.user_attrs.get("error")}
        if state == "complete" and "result" not in t.user_attrs:
            state = "failed"  # completed with a NaN objective or without metrics
        trials.append(TrialResult.from_dict({**data, "number": t.number, "state": state}))
    return SearchResults(backend="optuna", settings=settings, trials=tuple(trials), study=label)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj
