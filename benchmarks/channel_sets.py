"""How many distinct channel sets a trained Channel-Net chooses per block, on CIFAR-10 test images.

    python benchmarks/channel_sets.py lcnet-resnet32-searched --data-root ../shared/data/cifar10 \
        --out benchmarks/results/channel_sets_lcnet-resnet32-searched.json

The native engine gathers each kept set's weights once and caches them (``_native_net.cpp``,
``Compact``); skip_speed.py's forced decisions draw every block's sets from a pool of 4. This
measures what a trained gate does instead: per gated block, the number of distinct kept sets
over the images, how many images the commonest 1, 2 and 4 sets cover, and the commonest set's
kept groups. Sets are read from the grouped batch path's per-block masks (the executor's gate
rules, which the whole-network engine repeats in C).
"""

from __future__ import annotations

import argparse
import collections

import torch

from _common import write_json

from lcnas import environment_metadata, load_model
from lcnas.data import load_cifar10
from lcnas.engine import EngineOptions
from lcnas.errors import LcnasError


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", help="a path or a shipped model name with channel gates")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--images", type=int, default=2000, help="the first N test images")
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.images < 1 or args.batch < 1:
        ap.error(f"--images and --batch must be at least 1, got {args.images} and {args.batch}")
    torch.set_grad_enabled(False)
    try:
        model = load_model(args.checkpoint)
        test = load_cifar10(args.data_root, train=False, download=False)
    except LcnasError as e:
        raise SystemExit(str(e)) from None
    if getattr(model, "gating", "none") not in ("channel", "lc"):
        raise SystemExit(f"{args.checkpoint} has no channel gates (gating={getattr(model, 'gating', 'none')!r}): "
                         "give a channel- or lc-gated checkpoint")
    model.engine.options = EngineOptions(batch_native=False)  # the grouped batch path records each block's N×G kept masks
    images = test.images[: args.images].float() / 255
    sets: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for start in range(0, images.shape[0], args.batch):
        model(images[start : start + args.batch])
        for block, masks in model.engine.masks.items():
            sets[block].update(tuple(row) for row in masks.tolist())
    blocks = []
    for block in sorted(sets):
        counts = sets[block]
        runs = sum(counts.values())
        top = counts.most_common(4)
        cover = {k: 100.0 * sum(n for _, n in top[:k]) / runs for k in (1, 2, 4)}
        blocks.append({"block": block, "runs": runs, "distinct_sets": len(counts), "groups": len(top[0][0]),
                       "commonest_kept_groups": sum(top[0][0]), "cover_top1_pct": cover[1],
                       "cover_top2_pct": cover[2], "cover_top4_pct": cover[4]})
        print(f"block {block:2d}: {len(counts):4d} sets over {runs} runs; the commonest 1 / 2 / 4 cover "
              f"{cover[1]:5.1f} / {cover[2]:5.1f} / {cover[4]:5.1f} %; commonest keeps {sum(top[0][0])} of {len(top[0][0])} groups")
    write_json(args.out, {"benchmark": "channel_sets", "settings": vars(args), "results": {"blocks": blocks},
                          "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
