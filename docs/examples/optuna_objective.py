"""Search LC-Net gates from an Optuna study of your own: `python optuna_objective.py`."""

import os
from pathlib import Path

import optuna

import lcnas.search

# The tests run this file with LCNAS_EXAMPLE_TINY=1: synthetic images, seconds per trial.
TINY = os.environ.get("LCNAS_EXAMPLE_TINY") == "1"
OUT = Path("runs/optuna_objective")  # the study, and trial runs in OUT/trials/
TINY_TRAINING = {"dataset": "synthetic", "train_subset": 128, "val_size": 64, "batch_size": 64,
                 "eval_batch_size": 64, "amp": "none", "threads": 1}

settings = lcnas.search.make_settings(
    "lcnet_cifar10",  # a shipped search space, or the path of your own YAML
    out_dir=OUT,
    overrides=TINY_TRAINING if TINY else {"epochs": 2},  # training settings under the trial's parameters
    cost_metric="mflops_mean",  # or latency_ms_mean with lut="<device table>"
)
objective = lcnas.search.OptunaObjective(settings)  # returns (accuracy, mean MFLOPs)

OUT.mkdir(parents=True, exist_ok=True)
study = optuna.create_study(
    study_name="lcnet",
    storage=f"sqlite:///{OUT / 'study.db'}",  # watch it with: optuna-dashboard sqlite:///runs/optuna_objective/study.db
    directions=objective.directions,  # ["maximize", "minimize"]
    sampler=optuna.samplers.TPESampler(seed=0),
    load_if_exists=True,
)
study.set_metric_names(objective.metric_names)  # ["accuracy", "mflops_mean"]
study.optimize(objective, n_trials=2 if TINY else 30)

for trial in study.best_trials:  # the Pareto front
    print(f"trial {trial.number}: {trial.values[0]:.2f} % at {trial.values[1]:.1f} MFLOPs, {trial.user_attrs['params']}")

# The same trials in lcnas's results format (results.json, pareto.json, trials.csv): `lcnas retrain` reads them.
lcnas.search.optuna_results(study, settings).write(settings.out_dir)
