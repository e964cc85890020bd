"""Search LC-Net gates from a Ray Tune `Tuner` of your own: `python ray_tune_trainable.py`."""

import os
from pathlib import Path

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

import lcnas.search

# The tests run this file with LCNAS_EXAMPLE_TINY=1: synthetic images, seconds per trial, one CPU.
TINY = os.environ.get("LCNAS_EXAMPLE_TINY") == "1"
OUT = Path("runs/ray_tune_trainable").resolve()  # Ray wants an absolute storage path
EPOCHS = 1 if TINY else 4
TINY_TRAINING = {"dataset": "synthetic", "train_subset": 128, "val_size": 64, "batch_size": 64,
                 "eval_batch_size": 64, "amp": "none", "threads": 1}

settings = lcnas.search.make_settings(
    "lcnet_cifar10",  # a shipped search space, or the path of your own YAML
    out_dir=OUT,  # trial runs go to OUT/trials/
    overrides={**(TINY_TRAINING if TINY else {}), "epochs": EPOCHS},
    cost_metric="mflops_mean",
    max_mflops=60.0,  # a budget: trials above it are infeasible, and their score drops by 100 points
)

ray.init(num_cpus=1 if TINY else None, include_dashboard=False)  # or address="auto" on a cluster
tuner = tune.Tuner(
    tune.with_resources(lcnas.search.ray_trainable(settings), {"cpu": 1}),
    param_space=lcnas.search.ray_param_space(settings),  # conditional parameters sampled only when active
    tune_config=tune.TuneConfig(
        metric="score",  # validation accuracy, less 100 points over the budget
        mode="max",
        num_samples=2 if TINY else 30,
        scheduler=ASHAScheduler(grace_period=1, max_t=EPOCHS),  # stops weak trials early (epochs are its time)
    ),
    run_config=tune.RunConfig(name="lcnet", storage_path=str(OUT / "ray"), verbose=0),
)
grid = tuner.fit()

best = grid.get_best_result()
params = lcnas.search.from_ray(best.config, settings.space)  # lcnas values: lists, not Ray's JSON text
print(f"best: {best.metrics['accuracy']:.2f} % at {best.metrics['mflops_mean']:.1f} MFLOPs, "
      f"feasible: {best.metrics['feasible']}, {params}")
df = grid.get_dataframe()  # one row per trial: accuracy, mflops_mean, ..., score, config/...
print(df[["trial_number", "accuracy", "mflops_mean", "feasible", "score"]].to_string(index=False))
ray.shutdown()
