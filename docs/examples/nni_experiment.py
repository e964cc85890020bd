"""An NNI experiment whose trials are nni_trial.py: `python nni_experiment.py [PORT]`.

NNI's web UI shows the trials at http://localhost:PORT while the experiment runs. NNI 3.0's server
listens on every network interface, not only on localhost: run it where that is acceptable.
"""

import os
import sys
from pathlib import Path

from nni.experiment import Experiment

import lcnas.search
from nni_trial import TINY, make_search_settings

HERE = Path(__file__).resolve().parent
port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
settings = make_search_settings()
os.environ["LCNAS_EXAMPLE_OUT"] = settings.out_dir  # every trial writes beside this script's runs

experiment = Experiment("local")
experiment.config.experiment_name = "lcnet"
experiment.config.experiment_working_directory = str(Path(settings.out_dir) / "nni-experiments")
experiment.config.search_space = lcnas.search.nni_search_space(settings)  # conditions become nested choices
experiment.config.trial_command = f"{sys.executable} nni_trial.py"
experiment.config.trial_code_directory = str(HERE)
experiment.config.tuner.name = "TPE"
experiment.config.tuner.class_args = {"optimize_mode": "maximize"}  # the trials' "default" is the score
experiment.config.max_trial_number = 2 if TINY else 30
experiment.config.trial_concurrency = 1
experiment.config.training_service.use_active_gpu = False

experiment.run(port)  # returns when every trial has ended
for trial in experiment.export_data():  # final results: {"default": score, "accuracy": ..., "mflops_mean": ...}
    print(f"trial {trial.trialJobId}: score {trial.value['default']:.2f}, {trial.value['accuracy']:.2f} %, "
          f"{trial.value['mflops_mean']:.1f} MFLOPs")
experiment.stop()
