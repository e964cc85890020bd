"""One NNI trial: ``python -m lcnas.search._nni_trial SETTINGS_JSON`` (started by NNI, not by hand)."""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from pathlib import Path

from .._io import write_json
from ._objective import SearchSettings, TrialResult, run_trial, worker_id


def main(argv: list[str]) -> int:
    """Run the trial NNI hands out with the settings in file ``argv[0]``; report to NNI and write
    ``<out_dir>/nni_results/<number>.json``. Returns the exit status (1 if the trial failed)."""
    import nni

    from ._translate import from_nni

    settings = SearchSettings.from_dict(json.loads(Path(argv[0]).read_text()))
    token, offset = (argv[1], int(argv[2])) if len(argv) >= 3 else (None, 0)
    out = Path(settings.out_dir)
    number = offset + nni.get_sequence_id()
    results = out / "nni_results"
    pid_file = out / "nni_pids" / str(os.getpid())  # a rerun after kill -9 stops trials left running
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.touch()

    def record(result: TrialResult) -> None:
        # Only the current pass's trials count: one of a killed driver's passes writes nothing.
        if token is None or (json.loads((out / "nni_run.json").read_text()).get("token") == token):
            write_json(results / f"{number:05d}.json", result.to_dict())

    objective = settings.objective
    raw = nni.get_next_parameter()
    params = {}
    try:
        try:
            params = from_nni(raw, settings.space)
            result = run_trial(settings, params, number=number,
                               report=lambda epoch, m: nni.report_intermediate_result(_finite(m[objective.scheduler_metric])))
        except Exception as e:
            record(TrialResult(number=number, state="failed", params=params or {}, worker=worker_id(),
                               error=f"{type(e).__name__}: {e}"))
            traceback.print_exc()
            return 1
        record(result)
    finally:
        pid_file.unlink(missing_ok=True)
    # NNI's tuners are single-objective: they maximise the objective's score (budgets as a penalty)
    nni.report_final_result({"default": _finite(objective.score(result)), **{k: v for k, v in result.to_dict().items()
                                                        if k in ("mflops_mean", "latency_ms_mean") and v is not None}})
    return 0


def _finite(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(x) else -1.0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
