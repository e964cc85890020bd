"""The training loop: SGD + Nesterov, cosine/one-cycle, label smoothing, AMP, atomic per-epoch checkpoints."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._io import check_writable, write_json
from ..checkpoint import read_checkpoint, save_checkpoint
from ..data import BatchLoader, imagenet_loader, load_splits
from ..errors import ConfigError
from ..models import create_model, model_info
from ._config import TrainConfig
from ._evaluate import evaluate
from ._losses import distillation_loss, lcnet_loss
from ._schedule import lr_multiplier

__all__ = ["train", "resolve_device", "resolve_amp"]

# Settings that may differ between a run and its resumption without changing the result.
_RESUME_FREE = {"data_root", "threads", "device", "out_dir", "eval_batch_size"}


def resolve_device(device: str) -> torch.device:
    """The torch device for a ``device`` setting: ``"auto"`` (CUDA when available, else CPU), ``"cpu"`` or ``"cuda"``.

    Raises:
        ConfigError: ``"cuda"`` was asked for but no CUDA GPU is available.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' but no CUDA GPU is available; use device=cpu or auto")
    return torch.device(device)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device`` (``None``: fp32)."""
    if amp == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if _cpu_has_native_bf16() else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)


def _cpu_has_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool | None = None,
          on_epoch: Callable[[dict[str, Any]], None] | None = None, test: bool = True) -> dict[str, Any]:
    """Train ``cfg.model`` and return the final metrics (test accuracy included when ``test``).

    Writes ``<out_dir>/<name>/last.pt`` (resumable) and ``metrics.json`` after every epoch, and
    ``final.pt`` (weights only) at the end. An existing run is never overwritten: pass
    ``resume=True`` to continue it. ``on_epoch(row)`` sees each epoch's metrics after its
    checkpoint is written (searches report and prune there; an exception it raises stops the run).
    ``test=False`` leaves the test set untouched (searches tune on the validation split only).
    """
    model_info(cfg.model)  # an unknown model name: its own error before the data is read
    run_dir = cfg.run_dir
    last = run_dir / "last.pt"
    if last.exists() and not resume:
        raise ConfigError(f"run folder {str(run_dir)!r} already holds a checkpoint: continue it with --resume, or pick another name (--set name=...)")
    if resume and not last.exists():
        raise ConfigError(f"nothing to resume: {str(last)!r} does not exist")
    check_writable(run_dir, what="run folder (out_dir/name)", folder=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    loader, val_data, test_data, num_classes = _data(cfg, device)
    model = _build_model(cfg, num_classes).to(device)
    teacher = _load_teacher(cfg, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(_param_groups(model, cfg), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay)
    objective = _Objective(cfg, model, loader, teacher)
    steps = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(cfg.schedule, total_steps=steps, warmup_steps=int(cfg.warmup_epochs * len(loader))))
    amp_dtype = resolve_amp(cfg.amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    lut = _latency_table(cfg)
    if resume:
        start_epoch, history = _restore(last, cfg, model, optimizer, scheduler, scaler)

    for epoch in range(start_epoch, cfg.epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        row = _train_epoch(model, loader, optimizer, scheduler, scaler, amp_dtype, cfg, device, epoch, progress, objective)
        if val_data is not None:
            val = evaluate(model, val_data, batch_size=cfg.eval_batch_size, device=device, channels_last=cfg.channels_last,
                           latency_table=lut)
            row.update({f"val_{k}": v for k, v in val.items() if k not in ("images", "images_per_s")})
        history.append(row)
        train_state = {"epoch": epoch + 1, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                       "scaler": scaler.state_dict(), "history": json.dumps(history)}
        save_checkpoint(last, model, config=cfg.to_dict(), metrics=row, train_state=train_state)
        write_json(run_dir / "metrics.json", {"config": cfg.to_dict(), "epochs": history})
        tqdm.write(_summary(row, cfg.epochs), file=sys.stderr)
        if on_epoch is not None:
            on_epoch(row)

    tested = evaluate(model, test_data, batch_size=cfg.eval_batch_size, device=device, channels_last=cfg.channels_last) if test else {}
    final = {
        **{f"test_{k}": v for k, v in tested.items() if k not in ("images", "images_per_s")},
        "val_accuracy": history[-1].get("val_accuracy") if history else None,
        **{k: v for k, v in (history[-1] if history else {}).items() if k.startswith("val_") and k != "val_accuracy"},
        "epochs": cfg.epochs,
        "train_time_s": sum(r["epoch_time_s"] for r in history),
    }
    save_checkpoint(run_dir / "final.pt", model, config=cfg.to_dict(), metrics=final)
    write_json(run_dir / "metrics.json", {"config": cfg.to_dict(), "epochs": history, "final": final})
    return final


def _data(cfg: TrainConfig, device: torch.device):
    """(train loader, validation data or None, test data, number of classes) for ``cfg.dataset``."""
    if cfg.dataset == "imagenet":
        if not cfg.data_root:
            raise ConfigError("dataset=imagenet needs data_root: an ImageFolder tree with train/ and val/ sub-folders")
        if cfg.train_subset:
            raise ConfigError("train_subset applies to in-memory datasets (cifar10, synthetic), not imagenet")
        # ImageNet's labelled val/ split serves as the test set; resumption is exact per epoch only
        # for the in-memory datasets (DataLoader workers draw their own augmentation randomness).
        kw = dict(workers=cfg.workers, image_size=cfg.image_size)
        train_loader = imagenet_loader(cfg.data_root, split="train", batch_size=cfg.batch_size, **kw)
        test_loader = imagenet_loader(cfg.data_root, split="val", batch_size=cfg.eval_batch_size, **kw)
        return train_loader, None, test_loader, len(cast(Any, train_loader.dataset).classes)
    splits = load_splits(cfg.dataset, data_root=cfg.data_root, val_size=cfg.val_size, split_seed=cfg.split_seed, train_subset=cfg.train_subset)
    loader = BatchLoader(splits.train, batch_size=cfg.batch_size, shuffle=True, augment=True, drop_last=True,
                         device=device, seed=cfg.seed, channels_last=cfg.channels_last)
    return loader, splits.val, splits.test, splits.train.num_classes


def _build_model(cfg: TrainConfig, num_classes: int) -> torch.nn.Module:
    gate_config = cfg.gate if cfg.gating != "none" else None
    model = create_model(cfg.model, gating=cfg.gating, num_classes=num_classes, gate_config=gate_config)
    if cfg.init_from:
        state = _backbone_state(cfg.init_from, cfg.model, num_classes)
        if cfg.gating == "none":
            model.load_state_dict(state)
        elif _gates_fit(model, state):
            # A gated checkpoint with the same gates: continue fine-tuning it (e.g. at a new compute
            # target or for more epochs) instead of relearning its gates from the all-on start.
            model.load_state_dict(state)
        else:
            cast(Any, model).load_backbone({k: v for k, v in state.items() if "_gate." not in k})
    return model


def _gates_fit(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    """True when ``state`` holds gates of exactly ``model``'s gates (same names and shapes)."""
    own = {k: v.shape for k, v in model.state_dict().items() if "_gate." in k}
    theirs = {k: v.shape for k, v in state.items() if "_gate." in k}
    return bool(own) and own == theirs


def _checkpoint_file(source: str) -> str:
    """A checkpoint path, or for the name of a shipped model (``lcnas.list_pretrained``) that is
    not a file here, its verified packaged file: configs then work from any directory."""
    if os.path.exists(source):
        return source
    from ..pretrained import pretrained_manifest, pretrained_path

    return str(pretrained_path(source)) if source in pretrained_manifest() else source


def _backbone_state(source: str, model_name: str, num_classes: int) -> dict[str, torch.Tensor]:
    """Weights of a static backbone: "pretrained" (shipped) or an lcnas checkpoint of the same model."""
    if source == "pretrained":
        from ..pretrained import load_pretrained_state

        return load_pretrained_state(model_name, num_classes=num_classes)
    ckpt = read_checkpoint(_checkpoint_file(source))
    if ckpt["model"]["name"] != model_name:
        raise ConfigError(f"init_from/teacher {source!r} holds a {ckpt['model']['name']!r}, but the run trains {model_name!r}")
    return ckpt["state_dict"]


def _load_teacher(cfg: TrainConfig, device: torch.device) -> torch.nn.Module | None:
    if not cfg.loss.distill:
        return None
    if not cfg.teacher:
        raise ConfigError("loss.distill > 0 needs a teacher: set teacher to 'pretrained' or a checkpoint path")
    if cfg.teacher == "pretrained":
        teacher = create_model(cfg.model, pretrained=True)
    else:
        from ..checkpoint import model_from_checkpoint

        teacher = model_from_checkpoint(read_checkpoint(_checkpoint_file(cfg.teacher)), source=cfg.teacher)
    teacher = teacher.to(device).eval()
    if cfg.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def _param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    if cfg.gating == "none":
        return [{"params": list(model.parameters())}]
    gate_ids = {id(p) for p in cast(Any, model).gate_parameters()}
    backbone = [p for p in model.parameters() if id(p) not in gate_ids]
    gates = {"params": [p for p in model.parameters() if id(p) in gate_ids], "lr": cfg.gate_lr or cfg.lr}
    if cfg.backbone_lr == 0:  # frozen: no gradients computed for it, no weight decay applied to it
        for p in backbone:
            p.requires_grad_(False)
        return [gates]
    return [{"params": backbone, "lr": cfg.backbone_lr or cfg.lr}, gates]


def _freeze_backbone_norms(model: torch.nn.Module) -> None:
    """Backbone BatchNorms in eval mode (running statistics used and kept); gates' own norms train."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and "_gate" not in name:
            module.eval()


class _Objective:
    """Cross-entropy (+ distillation) for static models; the LC-Net loss (compute terms, distillation) for gated ones."""

    def __init__(self, cfg: TrainConfig, model: torch.nn.Module, loader, teacher: torch.nn.Module | None) -> None:
        self.teacher = teacher
        weights = cfg.loss
        # loss.label_smoothing, else the run's: resolved once, not on every step
        self.weights = weights if weights.label_smoothing else replace(weights, label_smoothing=cfg.label_smoothing)
        self.gated = cfg.gating != "none"
        if self.gated:
            from ..cost import describe, static_mflops

            size = (3, cfg.image_size, cfg.image_size) if cfg.dataset == "imagenet" else tuple(loader.data.images.shape[1:])
            self.arch = describe(model, size)
            self.static_mflops = static_mflops(model, size)
            self.latency_cost: Any = None
            self.static_latency_ms: float | None = None
            if self.weights.latency:
                self.latency_cost, self.static_latency_ms = _latency_cost(cfg, model, self.arch)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        teacher_logits = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(x)
        weights = self.weights
        if not self.gated:
            loss = F.cross_entropy(logits.float(), y, label_smoothing=weights.label_smoothing)
            if teacher_logits is not None:
                loss = loss + weights.distill * distillation_loss(logits, teacher_logits, weights.distill_temperature)
            return loss, logits
        loss, _ = lcnet_loss(logits, y, trace=model.last_trace, arch=self.arch, static_mflops=self.static_mflops,
                             weights=weights, teacher_logits=teacher_logits,
                             latency_cost=self.latency_cost, static_latency_ms=self.static_latency_ms)
        return loss, logits


def _latency_table(cfg: TrainConfig):
    """The run's device table (validation latency metrics of gated models), or None."""
    if not cfg.lut or cfg.gating == "none":
        return None
    from ..latency import LatencyTable

    return LatencyTable.load(cfg.lut)


def _latency_cost(cfg: TrainConfig, model: torch.nn.Module, arch):
    """(cost model, static predicted batch-1 latency in ms) for the latency loss term."""
    if not cfg.lut:
        raise ConfigError("loss.latency > 0 needs a latency table: set lut to a file made by `lcnas profile` or a shipped device name")
    from ..latency import LatencyModel, LatencyTable

    cost = LatencyModel(LatencyTable.load(cfg.lut), model=cfg.model, pooling=cfg.gate.pooling, batch=1)
    return cost, cost.static_ms(arch)


def _train_epoch(model, loader, optimizer, scheduler, scaler, amp_dtype, cfg: TrainConfig, device, epoch: int, progress: bool | None,
                 objective: _Objective) -> dict[str, Any]:
    model.train()
    if cfg.backbone_lr == 0:
        _freeze_backbone_norms(model)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    seen, correct, loss_sum, start = 0, 0, 0.0, time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, disable=None if progress is None else not progress, dynamic_ncols=True)
    for x, y in bar:
        x, y = x.to(device, non_blocking=True).contiguous(memory_format=memory_format), y.to(device, non_blocking=True)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
        with ctx:
            loss, logits = objective(model, x, y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {float(loss)} at epoch {epoch + 1}; lower lr (now {scheduler.get_last_lr()[0]:.4g})")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        seen += y.numel()
        loss_sum += float(loss.detach()) * y.numel()
        correct += int((logits.argmax(1) == y).sum())
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
    elapsed = time.perf_counter() - start
    if seen == 0:  # every batch is full (drop_last): a split smaller than one batch trains nothing
        raise ConfigError("the training split holds fewer images than one batch (batch_size); "
                          "lower batch_size or raise train_subset")
    return {"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": 100.0 * correct / seen,
            "lr": scheduler.get_last_lr()[0], "epoch_time_s": elapsed, "images_per_s": seen / elapsed}


def _restore(path: Path, cfg: TrainConfig, model, optimizer, scheduler, scaler) -> tuple[int, list[dict[str, Any]]]:
    ckpt = read_checkpoint(path)
    saved = _stored_config(ckpt.get("config") or {}, path)
    mine = cfg.flat()
    changed = sorted(k for k, v in mine.items() if k.split(".")[0] not in _RESUME_FREE and saved[k] != v)
    if changed:
        diffs = ", ".join(f"{k}: {saved[k]!r} -> {mine[k]!r}" for k in changed)
        raise ConfigError(f"cannot resume {str(path)!r} with a different config ({diffs}); start a new run instead")
    state = ckpt.get("train_state")
    if not state:
        raise ConfigError(f"{str(path)!r} holds no training state to resume from")
    model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return int(state["epoch"]), json.loads(state["history"])


def _stored_config(saved: dict[str, Any], path: Path) -> dict[str, Any]:
    """A checkpoint's stored config under dotted addresses, read as a config file is: groups stored
    as partial mappings or ``None`` take the defaults for what they leave out, and so do settings
    added to lcnas after the run started (keys lcnas no longer knows are left out)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig.from_dict({k: v for k, v in saved.items() if k in known}, source=f"{str(path)!r}'s stored config").flat()


def _summary(row: dict[str, Any], epochs: int) -> str:
    val = f" val_acc {row['val_accuracy']:.2f}" if "val_accuracy" in row else ""
    if "val_mflops_mean" in row:
        val += f" val_mflops {row['val_mflops_mean']:.1f}"
    return (f"epoch {row['epoch']}/{epochs}: loss {row['train_loss']:.4f} acc {row['train_accuracy']:.2f}{val} "
            f"lr {row['lr']:.4g} {row['images_per_s']:.0f} img/s {row['epoch_time_s']:.0f}s")
