"""Bad input on the CLI: one clear line naming the flag, exit code 2."""

from __future__ import annotations

import pytest

from lcnas.cli import main


@pytest.mark.parametrize("verb", [["train", "-c", "studies/resnet20_cifar10.yaml"], ["retrain", "runs/none", "--dry-run"]])
def test_set_typo_names_the_flag_not_the_file(verb, capsys, tmp_path, monkeypatch):
    rc = main([*verb, "--set", "epochz=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--set epochz=1" in err[0] and "'epochs'" in err[0] and ".yaml" not in err[0], err
