from __future__ import annotations

import json

import pytest

from lcnas.cli import main


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_models_json(capsys):
    assert main(["models", "resnet*", "--format", "json"]) == 0
    rows = _json(capsys)
    assert {r["name"] for r in rows} >= {"resnet20", "resnet32", "resnet50"}
    assert all(set(r) == {"name", "dataset", "input_size", "num_classes", "pretrained"} for r in rows)


def test_models_pretrained_lists_the_shipped_lc_nets(capsys):
    assert main(["models", "lcnet-*", "--pretrained", "--format", "json"]) == 0
    rows = _json(capsys)
    names = {r["name"] for r in rows}
    assert "lcnet-resnet32-searched" in names and all(n.startswith("lcnet-") for n in names)
    assert all(r["gating"] != "none" and 0 < r["test_accuracy"] <= 100 for r in rows)


def test_a_closed_stdout_pipe_is_a_quiet_exit():
    import subprocess
    import sys

    # the reader closes its end before lcnas writes (as `lcnas models | head -1` does on long output)
    proc = subprocess.Popen([sys.executable, "-m", "lcnas", "models", "--pretrained", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Traceback" not in err and err == ""


def test_train_then_evaluate_json(tmp_path, capsys):
    args = ["train", "--set", "dataset=synthetic", "--set", "model=resnet20", "--set", "epochs=1", "--set", "train_subset=128",
            "--set", "val_size=100", "--set", f"out_dir={tmp_path}", "--set", "name=cli", "--set", "channels_last=false",
            "--set", "threads=1", "--no-progress", "--format", "json"]
    assert main(args) == 0
    trained = _json(capsys)
    assert trained["epochs"] == 1 and 0 <= trained["test_accuracy"] <= 100
    assert main(["evaluate", str(tmp_path / "cli" / "final.pt"), "--format", "json"]) == 0
    evaluated = _json(capsys)
    assert evaluated["model"] == "resnet20" and evaluated["images"] == 500
    assert evaluated["accuracy"] == pytest.approx(trained["test_accuracy"])
    assert main(["evaluate", str(tmp_path / "cli" / "final.pt"), "--split", "val", "--format", "json"]) == 0
    assert _json(capsys)["images"] == 100


def test_errors_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("epochs: [\n")
    assert main(["train", "-c", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "not valid YAML" in err and "Traceback" not in err
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "not found" in capsys.readouterr().err


def test_help_mentions_resume(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--resume" in capsys.readouterr().out


def test_profile_writes_a_table_and_never_silently_overwrites(tmp_path, capsys):
    out = tmp_path / "cpu.json"
    args = ["profile", "--model", "resnet20", "--batch", "1", "--hidden", "0", "--warmup", "1", "--repeats", "2", "--out", str(out), "--format", "json"]
    assert main(args) == 0
    first = _json(capsys)
    assert first["entries"] > 50 and out.exists()
    before = out.read_bytes()
    assert main(args) == 2  # same entries again: refused without --replace
    assert "--replace" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["profile", "--model", "resnet9", "--out", str(out)]) == 2
    assert "unknown model 'resnet9'" in capsys.readouterr().err


def test_latency_predicts_and_measures_a_gated_checkpoint_at_the_tables_threads(tmp_path, cifar_tree, capsys):
    import warnings

    import torch

    args = ["train", "--set", "dataset=synthetic", "--set", "model=resnet20", "--set", "gating=layer", "--set", "epochs=1",
            "--set", "train_subset=64", "--set", "batch_size=32", "--set", "val_size=32", "--set", f"out_dir={tmp_path}", "--set", "name=gated",
            "--set", "amp=none", "--no-progress", "--format", "json"]
    assert main(args) == 0
    capsys.readouterr()
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the shipped table may describe another CPU model
            assert main(["latency", str(tmp_path / "gated" / "final.pt"), "--lut", "cpu-amd-epyc-2t.json", "--data-root", str(cifar_tree),
                         "--images", "4", "--repeats", "2", "--threads", "1", "--format", "json"]) == 0
        out = _json(capsys)
    finally:
        torch.set_num_threads(threads)
    assert out["images"] == 4 and out["threads"] == 1 and out["speed_factor"] == 1.0
    assert out["predicted_ms_mean"] > 0 and out["measured_ms_mean"] > 0 and 0 <= out["within_10pct"] <= 1
    # relative to the static network: a layer-gated model at most as slow as its backbone, give or take the gates
    assert 0 < out["predicted_relative_mean"] < 1.5 and 0 < out["measured_relative_mean"] < 1.5 and 0 <= out["relative_within_10pct"] <= 1
    assert main(["latency", str(tmp_path / "gated" / "final.pt"), "--lut", str(tmp_path / "missing.json"), "--data-root", str(cifar_tree)]) == 2


def test_a_training_split_smaller_than_one_batch_is_a_clear_error(tmp_path, capsys):
    args = ["train", "--set", "dataset=synthetic", "--set", "model=resnet20", "--set", "epochs=1", "--set", "train_subset=64",
            "--set", "batch_size=128", "--set", "val_size=32", "--set", f"out_dir={tmp_path}", "--set", "name=small", "--no-progress"]
    assert main(args) == 2
    assert "fewer images than one batch" in capsys.readouterr().err
