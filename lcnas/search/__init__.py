"""Search: one backend-neutral space of LC-Net gate shapes and loss weights, run through Optuna
(default), Ray Tune or NNI against FLOPs and per-device latency tables; one results format."""

from __future__ import annotations

from ._objective import COST_METRICS, SearchSettings, TrialResult, run_trial, trial_config
from ._pick import PICKS, load_study_results, pick_trial, retrain_config
from ._results import SearchResults, load_results, pareto_front
from ._run import BACKENDS, make_settings, search
from ._space import Param, SearchSpace, load_space, parse_space
from ._translate import LossyTranslationError, from_nni, optuna_distributions, suggest_optuna, to_nni, to_ray

__all__ = ["BACKENDS", "COST_METRICS", "PICKS", "load_study_results", "pick_trial", "retrain_config", "LossyTranslationError", "Param", "SearchResults", "SearchSettings", "SearchSpace",
           "TrialResult", "from_nni", "load_results", "load_space", "make_settings", "optuna_distributions", "pareto_front",
           "parse_space", "run_trial", "search", "suggest_optuna", "to_nni", "to_ray", "trial_config"]
