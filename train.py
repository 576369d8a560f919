"""Train a bird classifier on folder-per-class photos and write a model folder.

    python train.py --data photos/ --output runs/birds

See README.md for publishing to the Hugging Face Hub and retraining.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bird_model.artifacts import ModelFolderError
from bird_model.data import DatasetError
from bird_model.pipeline import run_training
from bird_model.settings import RunSettings, TrainingOptions
from bird_model.sources import DataSourceError, resolve_source


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", required=True, metavar="DIR",
                        help="folder with one sub-folder of photos per class; repeat to merge several")
    parser.add_argument("--output", type=Path, required=True, metavar="DIR", help="model folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model folder at --output")
    parser.add_argument("--base-weights", default="imagenet", metavar="imagenet|none|PATH",
                        help="MobileNetV2 starting weights: imagenet (default), none (random) or a weights file")
    parser.add_argument("--epochs", type=int, default=30, help="phase 1 (frozen base) epochs at most (default 30)")
    parser.add_argument("--fine-tune-epochs", type=int, default=15,
                        help="phase 2 (top 30%% of the base unfrozen) epochs at most; 0 skips it (default 15)")
    parser.add_argument("--batch-size", type=int, default=16, help="default 16")
    parser.add_argument("--image-size", type=int, default=224, help="square input size in pixels (default 224)")
    parser.add_argument("--val-split", type=float, default=0.2, help="validation fraction per class (default 0.2)")
    parser.add_argument("--seed", type=int, default=42, help="seed for the split, augmentation and weights (default 42)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = RunSettings(
        output=args.output,
        base_weights=args.base_weights,
        image_size=args.image_size,
        validation_fraction=args.val_split,
        overwrite=args.overwrite,
        training=TrainingOptions(
            epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, batch_size=args.batch_size, seed=args.seed
        ),
    )
    try:
        run_training([resolve_source(spec) for spec in args.data], settings)
    except (DataSourceError, DatasetError, ModelFolderError, FileNotFoundError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
