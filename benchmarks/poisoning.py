"""Replay of issue #20's poisoning: does a flood of wrong reports, accepted by mistake, go live?

Run by hand from the repository root (two short trainings on the stand-in backbone):

    python benchmarks/poisoning.py                       # the replay: 96 px, 3 + 1 epochs
    python benchmarks/poisoning.py --image-size 32 --epochs 1 --fine-tune-epochs 0 --base-weights none   # plumbing only

1. A parent is trained on the reference parrots and published to the stand-in Hub
   (``tests/fakehub.py``, on 127.0.0.1) as ``main``.
2. 200 reports say "gray parrot" of macaw photos: each of the 50 macaws re-encoded four ways
   (JPEG at quality 90, 80 and 70, and 97% of its size), as the issue's caller sent them.
   They go through :class:`bird_model.feedback.FeedbackStore`: one caller is stopped at
   ``BIRD_FEEDBACK_PER_HOUR`` (20), so the rest come from more callers, as a flood from many
   addresses would. The exact files are not sent: the same file under two classes is skipped
   by training anyway.
3. The operator accepts every report by mistake (``python -m bird_model.feedback accept --all``).
4. ``train.py --data parrots --data LOG/feedback --push-to-hub`` retrains; the release guard
   should refuse to move ``main``, naming macaw.

Prints each step's figures and exits 0 when the guard refused naming macaw, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bird_model.artifacts import RUN_CONFIG_FILE  # noqa: E402
from bird_model.feedback import FeedbackError, FeedbackStore  # noqa: E402
from bird_model.formats import SUPPORTED_EXTENSIONS  # noqa: E402
from bird_model.inference import Prediction  # noqa: E402
from bird_model.monitoring import ModelIdentity  # noqa: E402
from bird_model.settings import FeedbackSettings  # noqa: E402
from tests.fakehub import FakeHub  # noqa: E402

PARROTS = ROOT.parent / "shared" / "datasets" / "parrots"
PROXY_WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenet_v2_1.0_notop.proxy.weights.h5"
REPO = "bench/parrots"
VICTIM, LIE = "macaw", "gray parrot"


def reencodings(path: Path) -> list[bytes]:
    """Four files of the same photo that are not the same bytes: what a caller flooding the store sends."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    copies = []
    for quality in (90, 80, 70):
        buffer = io.BytesIO()
        rgb.save(buffer, format="JPEG", quality=quality)
        copies.append(buffer.getvalue())
    buffer = io.BytesIO()
    rgb.resize((max(8, rgb.width * 97 // 100), max(8, rgb.height * 97 // 100))).save(buffer, format="JPEG", quality=90)
    copies.append(buffer.getvalue())
    return copies


def flood(log: Path, classes: list[str], reports: int) -> tuple[int, int, int]:
    """Store ``reports`` lies; (stored by the first caller, refused to it, callers needed in all)."""
    store = FeedbackStore(log, ModelIdentity(repo=REPO), classes, FeedbackSettings.from_environment(os.environ))
    answer = Prediction({VICTIM: 0.9, **{name: 0.1 / (len(classes) - 1) for name in classes if name != VICTIM}},
                        outlier_score=None, unknown=False)  # the demo's answer: right, as it was
    photos = sorted(path for path in (PARROTS / VICTIM).iterdir() if path.suffix.lower() in SUPPORTED_EXTENSIONS)
    uploads = [copy for path in photos for copy in reencodings(path)][:reports]
    first_stored = first_refused = 0
    for upload in uploads:  # one caller first
        try:
            first_stored += store.report(upload, LIE, answer=answer, caller="caller-0", via="api").new
        except FeedbackError:
            first_refused += 1
    callers = 1
    for start in range(first_stored, len(uploads), store.settings.per_hour):  # then as many callers as it takes
        for upload in uploads[start : start + store.settings.per_hour]:
            store.report(upload, LIE, answer=answer, caller=f"caller-{callers}", via="api")
        callers += 1
    return first_stored, first_refused, callers


def run(command: list[str | Path], env: dict[str, str], label: str) -> subprocess.CompletedProcess:
    started = time.monotonic()
    result = subprocess.run([sys.executable, *map(str, command)], cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    print(f"\n$ {' '.join(map(str, command))}\n  ({label}: exit {result.returncode}, {took:.0f} s)")
    return result


def tail(text: str, lines: int = 6) -> str:
    return "\n".join("  | " + line for line in text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--base-weights", default=str(PROXY_WEIGHTS))
    parser.add_argument("--epochs", default="3")
    parser.add_argument("--fine-tune-epochs", default="1")
    parser.add_argument("--image-size", default="96")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="poisoning-"))
    training = ["--base-weights", args.base_weights, "--epochs", args.epochs,
                "--fine-tune-epochs", args.fine_tune_epochs, "--image-size", args.image_size]
    log = work / "log"
    with FakeHub() as hub:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HOME": str(work / "hf-home"), "HF_TOKEN": "hf_write",
               "NO_PROXY": "127.0.0.1,localhost", "HF_HUB_DISABLE_TELEMETRY": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
               "BIRD_CACHE_DIR": str(work / "photo-cache"), "BIRD_LOG_DIR": str(log)}
        parent = run(["train.py", "--data", PARROTS, "--output", work / "parent", *training, "--push-to-hub", REPO,
                      "--tag", "v1"], env, "the parent, published as main")
        if parent.returncode != 0:
            print(tail(parent.stderr, 20))
            return 1
        parent_metrics = json.loads((work / "parent" / "metrics.json").read_text())["validation"]
        classes = json.loads((work / "parent" / RUN_CONFIG_FILE).read_text())["classes"]
        victim = parent_metrics["per_class"][VICTIM]
        print(f"  parent: validation accuracy {parent_metrics['accuracy']:.2%}, {VICTIM} {victim['recall']:.2%} "
              f"on {victim['support']}")

        first_stored, first_refused, callers = flood(log, classes, args.reports)
        print(f"\nFlood: {args.reports} reports '{LIE}' on {VICTIM} re-encodes; one caller stored {first_stored} "
              f"and was refused {first_refused}; storing them all took {callers} callers.")
        listed = run(["-m", "bird_model.feedback", "list"], env, "the review queue")
        print(tail(listed.stdout, 3))
        accepted = run(["-m", "bird_model.feedback", "accept", "--all"], env, "every report accepted by mistake")
        print(tail(accepted.stdout, 1))

        child = run(["train.py", "--data", PARROTS, "--data", log / "feedback", "--output", work / "child", *training,
                     "--push-to-hub", REPO], env, "the retraining on the flood, pushed to main")
        print(tail(child.stdout, 4))
        print(tail(child.stderr, 3))
        main_moved = hub.commits(REPO)[-1].sha != hub.tags(REPO)["v1"]
    comparison = json.loads((work / "child" / "metrics.json").read_text()).get("parent_comparison", {})
    victim = comparison.get("per_class", {}).get(VICTIM, {})
    refused = child.returncode != 0 and f"on {VICTIM}" in child.stderr and not main_moved
    nan = float("nan")
    verdict = f"refused, naming {VICTIM}" if refused else "did NOT refuse"
    print(f"\nResult: {VICTIM} on the parent's validation photos {victim.get('parent_accuracy', nan):.0%} -> "
          f"{victim.get('new_accuracy', nan):.0%} ({victim.get('photos')} photos); overall "
          f"{comparison.get('parent_accuracy', nan):.2%} -> {comparison.get('new_accuracy', nan):.2%}; "
          f"main {'moved' if main_moved else 'kept'}; the guard {verdict}.")
    print(f"Work folder: {work}")
    return 0 if refused else 1


if __name__ == "__main__":
    sys.exit(main())
