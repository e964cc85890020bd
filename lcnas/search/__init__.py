"""Search: one backend-neutral space of LC-Net gate shapes and loss weights, run through Optuna
(default), Ray Tune or NNI against FLOPs and per-device latency tables; one :class:`Objective`
(metrics, directions, budgets, feasibility, each engine's policy); one results format.

To search from a study of one's own, the plugin entry points run the same objective:
:class:`OptunaObjective` for ``study.optimize``, :func:`ray_trainable` with
:func:`ray_param_space` for a ``tune.Tuner``, and :func:`nni_trial` with :func:`nni_search_space`
for an NNI experiment."""

from __future__ import annotations

from ._metrics import BUDGET_PENALTY, COST_METRICS, METRICS, Objective
from ._nni import stop_leftovers
from ._objective import SearchSettings, TrialResult, run_trial, trial_config
from ._optuna import optuna_results, storage_url
from ._pick import PICKS, load_study_results, pick_trial, retrain_config
from ._plugin import OptunaObjective, nni_search_space, nni_trial, ray_param_space, ray_trainable, trial_metrics
from ._results import SearchResults, load_results, pareto_front
from ._run import BACKENDS, make_settings, search
from ._space import Param, SearchSpace, load_space, parse_space
from ._translate import LossyTranslationError, from_nni, from_ray, suggest_optuna, to_nni, to_ray

__all__ = ["BACKENDS", "BUDGET_PENALTY", "COST_METRICS", "METRICS", "PICKS", "LossyTranslationError", "Objective",
           "OptunaObjective", "Param", "SearchResults", "SearchSettings", "SearchSpace", "TrialResult", "from_nni", "from_ray",
           "load_results", "load_space", "load_study_results", "make_settings", "nni_search_space", "nni_trial",
           "optuna_results", "pareto_front", "parse_space", "pick_trial", "ray_param_space", "ray_trainable",
           "retrain_config", "run_trial", "search", "stop_leftovers", "storage_url", "suggest_optuna", "to_nni", "to_ray",
           "trial_config", "trial_metrics"]
