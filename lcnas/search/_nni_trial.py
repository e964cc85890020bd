"""One NNI trial: ``python -m lcnas.search._nni_trial SETTINGS_JSON`` (started by NNI, not by hand)."""

from __future__ import annotations

import json
import math
import sys
import traceback
from pathlib import Path

from .._io import write_json
from ._objective import SearchSettings, TrialResult, run_trial, worker_id

BUDGET_PENALTY = 100.0  # accuracy points subtracted from an over-budget trial's score (NNI is single-objective)


def main(argv: list[str]) -> int:
    """Run the trial NNI hands out with the settings in file ``argv[0]``; report to NNI and write
    ``<out_dir>/nni_results/<number>.json``. Returns the exit status (1 if the trial failed)."""
    import nni

    from ._translate import from_nni

    settings = SearchSettings.from_dict(json.loads(Path(argv[0]).read_text()))
    number = nni.get_sequence_id()
    results = Path(settings.out_dir) / "nni_results"
    raw = nni.get_next_parameter()
    params = {}
    try:
        params = from_nni(raw, settings.space)
        result = run_trial(settings, params, number=number,
                           report=lambda epoch, m: nni.report_intermediate_result(_finite(m["accuracy"])))
    except Exception as e:
        write_json(results / f"{number:05d}.json", TrialResult(
            number=number, state="failed", params=params or {}, worker=worker_id(), error=f"{type(e).__name__}: {e}").to_dict())
        traceback.print_exc()
        return 1
    write_json(results / f"{number:05d}.json", result.to_dict())
    score = result.accuracy - (0.0 if result.feasible else BUDGET_PENALTY)
    nni.report_final_result({"default": _finite(score), **{k: v for k, v in result.to_dict().items()
                                                        if k in ("mflops_mean", "latency_ms_mean") and v is not None}})
    return 0


def _finite(x: float | None) -> float:
    return float(x) if x is not None and math.isfinite(x) else -1.0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
