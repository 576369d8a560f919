"""Train a bird classifier on folder-per-class photos, write a model folder, publish it.

    python train.py                      # the original dataset, into runs/<time>, linked as runs/latest
    python train.py --data photos/ --output runs/birds
    python train.py --data photos/ --output runs/birds --push-to-hub OWNER/NAME --tag v1
    python train.py --push-only runs/birds --push-to-hub OWNER/NAME     # publish without training

The Hub token comes from --token, else HF_TOKEN, else your saved `hf auth login`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bird_model.artifacts import LATEST_LINK, ModelFolderError, new_run_folder, point_latest
from bird_model.checkpoints import CheckpointError
from bird_model.class_names import ClassNamesError
from bird_model.cluster import ClusterError, WorkerLostError
from bird_model.data import DatasetError
from bird_model.hub import HubError
from bird_model.pipeline import BaseWeightsError, check_base_weights, run_training
from bird_model.release import Parent, find_parent, publish
from bird_model.settings import CACHE_ENV, DEFAULT_DATA, RunSettings, TrainingOptions, default_cache_dir
from bird_model.sources import SPEC_FORMS, DataSourceError, resolve_source

RUN = RunSettings(output=Path())
"""The defaults of every option (``bird_model/settings.py``)."""
TRAINING = TrainingOptions()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", metavar="SOURCE",
                        help=f"folder-per-class photos: {SPEC_FORMS}; repeat to merge several "
                             f"(default: {DEFAULT_DATA}, the original birds dataset)")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help=f"model folder to write (default: a new folder under runs/, linked as {LATEST_LINK})")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing model folder at --output (and an interrupted run's checkpoint)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run of --output from its last epoch; the same options needed")
    parser.add_argument("--base-weights", default=RUN.base_weights, metavar="imagenet|none|PATH",
                        help=f"MobileNetV2 starting weights: imagenet, none (random) or a weights file "
                             f"(default {RUN.base_weights})")
    parser.add_argument("--epochs", type=int, default=TRAINING.epochs,
                        help=f"phase 1 (frozen base) epochs at most (default {TRAINING.epochs})")
    parser.add_argument("--fine-tune-epochs", type=int, default=TRAINING.fine_tune_epochs,
                        help=f"phase 2 (top {TRAINING.fine_tune_fraction * 100:.0f}%% of the base unfrozen) epochs at most; "
                             f"0 skips it (default {TRAINING.fine_tune_epochs})")
    parser.add_argument("--batch-size", type=int, default=TRAINING.batch_size, help=f"default {TRAINING.batch_size}")
    parser.add_argument("--image-size", type=int, default=RUN.image_size,
                        help=f"square input size in pixels (default {RUN.image_size})")
    parser.add_argument("--val-split", type=float, default=RUN.validation_fraction,
                        help=f"validation fraction per class (default {RUN.validation_fraction})")
    parser.add_argument("--model-name", default=RUN.model_name, metavar="NAME",
                        help="the model card's title and model_name (default: the first --data source's name "
                             "+ -classifier, e.g. parrots-classifier)")
    parser.add_argument("--license", default=RUN.license, metavar="ID",
                        help=f"the model card's license, a Hub license id such as cc-by-4.0 or apache-2.0; "
                             f"the photos' terms decide it (default {RUN.license})")
    parser.add_argument("--no-quantize", dest="quantize", action="store_false",
                        help="serve the float32 LiteRT model and skip the 8-bit conversions and their comparison "
                             "(about 15 s less per run; docs/training.md, The served model)")
    parser.add_argument("--class-names-file", type=Path, metavar="CSV",
                        help="display names per language for the page: a CSV whose first line is 'class' and "
                             "language codes (class,id,en), then one line per class folder")
    parser.add_argument("--outlier-photos", type=Path, metavar="DIR",
                        help="photos that are none of the classes (other birds, say): the model card says how many "
                             "the served model calls unknown")
    parser.add_argument("--cache-dir", type=Path, metavar="DIR",
                        help=f"where decoded photos are kept for later runs (default here: {default_cache_dir()}; "
                             f"${CACHE_ENV} moves it)")
    parser.add_argument("--seed", type=int, default=TRAINING.seed,
                        help=f"seed for the split, augmentation and weights (default {TRAINING.seed})")
    hub = parser.add_argument_group("publishing to the Hugging Face Hub")
    hub.add_argument("--push-to-hub", metavar="OWNER/NAME", help="upload the model folder as one commit to this repo")
    hub.add_argument("--push-only", type=Path, metavar="DIR", help="publish an existing model folder, no training")
    hub.add_argument("--private", action="store_true", help="create the repo as private")
    hub.add_argument("--tag", help="tag the uploaded commit (for example v1)")
    hub.add_argument("--commit-message", help="message of the upload commit")
    hub.add_argument("--token", help="Hub token with write access (default: HF_TOKEN or the saved login)")
    hub.add_argument("--force", action="store_true",
                     help="move main even if the new model is worse than main's on the photos that validated it")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.push_only and not args.push_to_hub:
        parser.error("--push-only needs --push-to-hub OWNER/NAME")
    if args.resume and args.output is None:
        parser.error("--resume needs the --output of the interrupted run")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.push_only
    if folder is None:
        if not args.data:
            print(f"No --data given: training on the original birds dataset, {DEFAULT_DATA}")
        try:
            check_base_weights(args.base_weights, args.image_size)
            sources = [resolve_source(spec) for spec in args.data or [DEFAULT_DATA]]
            trained = run_training(sources, run_settings(args), parent=published_parent(args))
        except (DataSourceError, DatasetError, ClassNamesError, ModelFolderError, CheckpointError, ClusterError,
                FileNotFoundError) as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 2
        except (BaseWeightsError, WorkerLostError) as error:
            print(f"train.py: error: {error}", file=sys.stderr)
            return 1
        if trained is None:  # a worker other than the chief: the chief writes and publishes
            return 0
        folder = trained.path
        if args.output is None:
            point_latest(folder)
            print(f"{LATEST_LINK} now points to {folder}; serve it with: python app.py")
    if args.push_to_hub:
        return publish_to_hub(folder, args)
    return 0


def published_parent(args: argparse.Namespace) -> Parent | None:
    """The model on the target repo's main, to grade the new one against; training goes on without it."""
    if not args.push_to_hub:
        return None
    try:
        return find_parent(args.push_to_hub, token=args.token)
    except HubError as error:
        print(f"Warning: {error} The new model will not be compared with the published one.", file=sys.stderr)
        return None


def run_settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(
        output=args.output or new_run_folder(),
        base_weights=args.base_weights,
        image_size=args.image_size,
        validation_fraction=args.val_split,
        overwrite=args.overwrite,
        model_name=args.model_name,
        license=args.license,
        class_names_file=args.class_names_file,
        outlier_photos=args.outlier_photos,
        quantize=args.quantize,
        cache_dir=args.cache_dir or default_cache_dir(),
        resume=args.resume,
        training=TrainingOptions(
            epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs, batch_size=args.batch_size, seed=args.seed
        ),
    )


def publish_to_hub(folder: Path, args: argparse.Namespace) -> int:
    """Upload, or say why not and how to retry.

    Publishing records the repo and parent in the folder (printed) before it uploads the folder
    as it is; a failed upload changes nothing more, and the retry uploads the same folder.
    """
    try:
        published = publish(
            folder, args.push_to_hub, token=args.token, private=args.private, tag=args.tag,
            commit_message=args.commit_message, force=args.force,
        )
    except (HubError, ModelFolderError) as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        print(f"The model folder is kept at {folder}. Retry the upload with:\n  {retry_command(folder, args)}",
              file=sys.stderr)
        return 1
    print(f"Published {published.repo_id} commit {published.commit}" + (f" (tag {published.tag})" if published.tag else ""))
    print(published.commit_url)
    if published.branch != "main":
        print(
            f"WARNING: this model is worse than the one on main on the photos that validated it, so main was NOT "
            f"moved: it is published only as tag {published.tag} (branch {published.branch}). Serve it with "
            f"BIRD_MODEL_REVISION={published.tag}; publish it to main with --force.",
            file=sys.stderr,
        )
    return 0


def retry_command(folder: Path, args: argparse.Namespace) -> str:
    """The command that uploads the same folder again, without the token (it never goes to output)."""
    words = ["python", "train.py", "--push-only", str(folder), "--push-to-hub", args.push_to_hub]
    words += ["--private"] * args.private + ["--force"] * args.force
    for option, value in (("--tag", args.tag), ("--commit-message", args.commit_message)):
        if value:
            words += [option, value]
    return shlex.join(words)


if __name__ == "__main__":
    sys.exit(main())
