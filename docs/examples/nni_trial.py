"""One NNI trial of an LC-Net search: NNI starts `python nni_trial.py` per trial (see nni_experiment.py).

Run by hand, outside an experiment, it trains the space's first choices once (NNI's standalone mode).
"""

import os
from pathlib import Path

import lcnas.search

# The tests run this file with LCNAS_EXAMPLE_TINY=1: synthetic images, seconds per trial.
TINY = os.environ.get("LCNAS_EXAMPLE_TINY") == "1"
TINY_TRAINING = {"dataset": "synthetic", "train_subset": 128, "val_size": 64, "batch_size": 64,
                 "eval_batch_size": 64, "amp": "none", "threads": 1}


def make_search_settings() -> lcnas.search.SearchSettings:
    """The settings both the experiment (for the search space) and every trial use."""
    return lcnas.search.make_settings(
        "lcnet_cifar10",  # a shipped search space, or the path of your own YAML
        out_dir=os.environ.get("LCNAS_EXAMPLE_OUT", Path("runs/nni").resolve()),  # trial runs go to <out_dir>/trials/
        overrides=TINY_TRAINING if TINY else {"epochs": 2},
        cost_metric="mflops_mean",
        max_mflops=60.0,  # over this budget, NNI's score is the accuracy less 100 points
    )


if __name__ == "__main__":
    # nni.get_next_parameter() -> train -> nni.report_intermediate_result per epoch -> nni.report_final_result
    result = lcnas.search.nni_trial(make_search_settings())
    print(f"trial {result.number}: {result.accuracy:.2f} % at {result.mflops_mean:.1f} MFLOPs, feasible: {result.feasible}")
