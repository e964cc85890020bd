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


@pytest.mark.parametrize(("argv", "flag", "says"), [
    (["profile", "--model", "resnet20", "--batch", "a,b", "--out", "t.json"], "--batch", "comma-separated integers >= 1"),
    (["profile", "--model", "resnet20", "--batch", "1,0", "--out", "t.json"], "--batch", "each value must be >= 1, got 0"),
    (["profile", "--model", "resnet20", "--hidden", "-3", "--out", "t.json"], "--hidden", "each value must be >= 0"),
    (["profile", "--model", "resnet20", "--pooling", "mean", "--out", "t.json"], "--pooling", "unknown 'mean'; choose from avg, max, avgmax"),
    (["profile", "--model", "resnet20", "--threads", "-1", "--out", "t.json"], "--threads", "must be an integer >= 1, got -1"),
    (["profile", "--model", "resnet20", "--repeats", "0", "--out", "t.json"], "--repeats", "must be an integer >= 1, got 0"),
    (["evaluate", "x.pt", "--batch-size", "0"], "--batch-size", "must be an integer >= 1"),
    (["latency", "x.pt", "--lut", "t.json", "--images", "0"], "--images", "must be an integer >= 1"),
    (["latency", "x.pt", "--lut", "t.json", "--repeats", "ten"], "--repeats", "expected an integer >= 1, got 'ten'"),
    (["search", "--trials", "0"], "--trials", "must be an integer >= 1"),
    (["search", "--seed", "-5"], "--seed", "from 0 to 4294967295"),
    (["search", "--backend", "ray", "--concurrency", "0"], "--concurrency", "must be an integer >= 1"),
    (["search", "--backend", "nni", "--port", "99999"], "--port", "from 1 to 65535"),
    (["retrain", "runs/none", "--epochs", "0"], "--epochs", "must be an integer >= 1"),
    (["report", "runs/none", "--latency-images", "0"], "--latency-images", "must be an integer >= 1"),
    (["search", "--study-name", ""], "--study-name", "must not be empty"),
    (["retrain", "runs/none", "--name", " "], "--name", "must not be empty"),
])
def test_a_bad_number_is_one_line_naming_its_option_before_anything_runs(argv, flag, says, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and "Traceback" not in "\n".join(err)
    assert f"argument {flag}: " in err[-1] and says in err[-1], err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_profiling_on_a_missing_gpu_is_a_clear_error(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["profile", "--model", "resnet20", "--device", "cuda", "--out", str(tmp_path / "t.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0] and "--device cpu" in err[0], err
    assert not (tmp_path / "t.json").exists()


def test_an_unknown_model_in_a_config_is_named_before_any_data_is_read(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text("model: resnet21\n")
    assert main(["train", "-c", "c.yaml", "--data-root", str(tmp_path / "no-data")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model 'resnet21'" in err[0] and "CIFAR" not in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_report_given_a_checkpoint_file_says_it_takes_the_run_folder(capsys, tmp_path):
    (tmp_path / "final.pt").write_bytes(b"")
    assert main(["report", str(tmp_path / "final.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file" in err[0] and "run folder" in err[0], err


def test_export_never_overwrites_an_existing_file_without_replace(capsys, tmp_path):
    import lcnas
    from lcnas.checkpoint import save_checkpoint

    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, lcnas.create_model("resnet8", gating="layer"))
    out = tmp_path / "model.ts"
    out.write_text("the user's own file")
    assert main(["export", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--replace" in err[0], err
    assert out.read_text() == "the user's own file"
    assert main(["export", str(ckpt), "--out", str(out), "--replace", "--format", "json"]) == 0
    assert out.read_bytes()[:2] == b"PK"  # a TorchScript archive now
    assert "FutureWarning" not in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "says"), [
    (["search", "--space", "lcnet_cifar10", "--out", "afile"], "--out 'afile' is a file, where lcnas writes a folder"),
    (["search", "--space", "lcnet_cifar10", "--out", "afile/s"], "'afile/s' cannot be created"),
    (["train", "-c", "studies/quickstart_cifar10.yaml", "--set", "out_dir=afile"], "'afile/quickstart' cannot be created"),
    (["profile", "--model", "resnet20", "--out", "afile/t.json"], "--out 'afile/t.json' cannot be created"),
    (["profile", "--model", "resnet20", "--out", "folder"], "--out 'folder' is a folder, where lcnas writes a file"),
])
def test_a_place_that_cannot_be_written_is_named_before_any_work(argv, says, capsys, tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies").mkdir()
    shutil.copy(repo / "studies" / "quickstart_cifar10.yaml", tmp_path / "studies")
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "folder").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0] and "pick another path" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing made, no probe left behind
    assert (tmp_path / "afile").read_text() == "a file"


@pytest.mark.parametrize("verb", ["search", "models", "export"])
def test_an_unknown_option_is_reported_by_its_own_command(verb, capsys):
    extra = ["m.pt", "--out", "m.ts"] if verb == "export" else []
    with pytest.raises(SystemExit) as exit_:
        main([verb, *extra, "--pruner=median"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and err[-1] == f"lcnas {verb}: error: unrecognized arguments: --pruner=median (see lcnas {verb} --help)"
