"""Serve a trained bird classifier as a Gradio web demo and API.

    BIRD_MODEL=runs/birds python app.py

Settings (options override environment variables):
  --model / BIRD_MODEL    model folder, or Hugging Face Hub repo id OWNER/NAME (default: runs/latest)
  --revision / BIRD_MODEL_REVISION   branch, tag or commit of a Hub model (default main)
  HF_TOKEN                token for a private Hub model
  HF_HUB_OFFLINE=1        serve the cached copy of a Hub model without network
  --top-k / BIRD_TOP_K    classes shown per prediction (default 3)
  --share / GRADIO_SHARE  also ask Gradio for a public share link
  GRADIO_SERVER_NAME, GRADIO_SERVER_PORT  where to listen (Gradio's own settings)
"""

from __future__ import annotations

import argparse
import os
import sys

from bird_model.artifacts import LATEST_LINK, ModelFolderError
from bird_model.hub import HubError, fetch_model

MAX_UPLOAD = "25mb"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("BIRD_MODEL"),
                        help=f"model folder or Hub repo id OWNER/NAME (default: $BIRD_MODEL, else {LATEST_LINK})")
    parser.add_argument("--revision", default=os.environ.get("BIRD_MODEL_REVISION") or None,
                        help="branch, tag or commit of a Hub model (default: $BIRD_MODEL_REVISION or main)")
    parser.add_argument("--top-k", type=int, default=int(os.environ.get("BIRD_TOP_K", "3")),
                        help="classes to show per prediction (default: $BIRD_TOP_K or 3)")
    parser.add_argument("--share", action="store_true",
                        default=os.environ.get("GRADIO_SHARE", "").lower() in {"1", "true", "yes"},
                        help="request a public gradio.live share link (default: $GRADIO_SHARE)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.model and not LATEST_LINK.exists():
        print(
            f"app.py: error: no model to serve. Either train one locally: `python train.py` (or with "
            f"--data YOUR_PHOTOS) writes {LATEST_LINK}, which app.py serves by default; or serve a published "
            "model: BIRD_MODEL=OWNER/NAME python app.py.",
            file=sys.stderr,
        )
        return 2
    try:
        fetched = fetch_model(args.model or str(LATEST_LINK), args.revision, token=os.environ.get("HF_TOKEN"))
        from bird_model.inference import Classifier
        from bird_model.web import build_demo

        classifier = Classifier(fetched.folder)
    except (HubError, ModelFolderError) as error:
        print(f"app.py: error: {error}", file=sys.stderr)
        return 2

    print(f"Serving {fetched.version()}")
    folder = fetched.folder
    demo = build_demo(classifier, args.top_k, version=fetched.version())
    demo.queue().launch(
        share=args.share, max_file_size=MAX_UPLOAD, allowed_paths=[str(folder.path)], prevent_thread_lock=True
    )
    if args.share and not demo.share_url:
        print(f"Share link unavailable (no route to the share server); still serving locally at {demo.local_url}")
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
