"""Serve a trained bird classifier as a Gradio web demo and API.

    python app.py                        # serves runs/latest, the newest run of train.py
    BIRD_MODEL=OWNER/NAME python app.py  # a model published on the Hugging Face Hub

Settings (options override environment variables):
  --model / BIRD_MODEL    model folder, or Hugging Face Hub repo id OWNER/NAME (default: runs/latest)
  --revision / BIRD_MODEL_REVISION   branch, tag or commit of a Hub model (default main)
  HF_TOKEN                token for a private Hub model
  HF_HUB_OFFLINE=1        serve the cached copy of a Hub model without network
  --top-k / BIRD_TOP_K    classes shown per prediction (default 3)
  --share / GRADIO_SHARE  also ask Gradio for a public share link
  BIRD_LOG_DIR            prediction log folder (default logs/predictions)
  BIRD_LOG_IMAGES=1       also keep every uploaded photo in the log folder
  BIRD_LOG_REPO, BIRD_LOG_EVERY  mirror the log to this Hub dataset repo every N minutes (default 5)
Visitors' corrections (the page's feedback buttons, the /feedback API) are kept in the log
folder as BIRD_LOG_DIR/feedback/CLASS/ photos (bird_model/feedback.py) and mirrored with it.
  --monitoring / BIRD_MONITORING=1  add the Monitoring tab (off by default: it is for the operator)
  GRADIO_SERVER_NAME, GRADIO_SERVER_PORT  where to listen (Gradio's own settings)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping

from bird_model.artifacts import LATEST_LINK, ModelFolderError
from bird_model.feedback import FeedbackStore
from bird_model.hub import HubError, fetch_model
from bird_model.images import release_large_buffers_promptly
from bird_model.monitoring import LogSettings, ModelIdentity, open_log
from bird_model.settings import ServedModel, ServingSettings

MAX_UPLOAD = "25mb"

CONCURRENCY_LIMIT: int | None = 2
"""Predictions Gradio runs at once: with 2, one photo decodes while another is in the
interpreter (decoding runs outside its lock); 4 was no faster per CPU second it got, and every
running prediction may hold a large photo's decode in memory, so the limit also bounds memory.
Measured with benchmarks/load.py: README.md, "Performance", Load."""

QUEUE_MAX_SIZE: int | None = 200
"""Requests waiting beyond it are refused at once with "Queue is full" instead of waiting
(a few seconds of work at the rate README.md, "Performance", Load measured); queued requests
hold no decoded pixels (their uploads are on disk), so the bound is on waiting, not memory."""

UPLOAD_CACHE_SWEEP = (3600, 3600)
"""Gradio's ``delete_cache`` (every, older than; seconds). Gradio keeps every distinct upload
in its cache folder until the server restarts, which grows without end on a public demo; the
photo is needed only while it is classified (the prediction log keeps its own copy when asked)."""


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    defaults, served = ServingSettings(), ServedModel.from_environment(environ)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=served.source,
                        help=f"model folder or Hub repo id OWNER/NAME (default: $BIRD_MODEL, else {ServedModel.source})")
    parser.add_argument("--revision", default=served.revision,
                        help=f"branch, tag or commit of a Hub model (default: $BIRD_MODEL_REVISION or {defaults.revision})")
    parser.add_argument("--top-k", type=int, default=int(environ.get("BIRD_TOP_K", defaults.top_k)),
                        help=f"classes to show per prediction (default: $BIRD_TOP_K or {defaults.top_k})")
    # GRADIO_SHARE is read here, not left to Gradio: Gradio takes only "true", and when the link
    # fails it resets demo.share, so the app could no longer tell that one was asked for.
    parser.add_argument("--share", action="store_true",
                        default=environ.get("GRADIO_SHARE", "").lower() in {"1", "true", "yes"},
                        help="request a public gradio.live share link (default: $GRADIO_SHARE)")
    parser.add_argument("--monitoring", action="store_true",
                        default=environ.get("BIRD_MONITORING", "").lower() in {"1", "true", "yes"},
                        help="add the Monitoring tab for the operator; every visitor can see it, so leave it "
                             "off on a public demo (default: $BIRD_MONITORING)")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser(os.environ).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        log_settings = LogSettings.from_environment(os.environ)
    except ValueError as error:
        print(f"app.py: error: {error}", file=sys.stderr)
        return 2
    if ServedModel(args.model).is_default_and_missing():
        print(
            f"app.py: error: no model to serve. Either train one locally: `python train.py` (or with "
            f"--data YOUR_PHOTOS) writes {LATEST_LINK}, which app.py serves by default; or serve a published "
            "model: BIRD_MODEL=OWNER/NAME python app.py.",
            file=sys.stderr,
        )
        return 2
    try:
        fetched = fetch_model(args.model, args.revision, token=os.environ.get("HF_TOKEN") or None)
        from bird_model.inference import Classifier
        from bird_model.web import Dashboard, build_demo, with_monitoring

        classifier = Classifier(fetched.folder)
    except (HubError, ModelFolderError) as error:
        print(f"app.py: error: {error}", file=sys.stderr)
        return 2

    release_large_buffers_promptly()
    print(f"Serving {fetched.origin()}")
    folder = fetched.folder
    model = ModelIdentity.of(fetched)
    log = open_log(log_settings, model, classifier.classes, token=os.environ.get("HF_TOKEN") or None)
    # SIGTERM (a Space or container stop, Popen.terminate) would end the process at once,
    # skipping atexit and the log's last second; as KeyboardInterrupt it ends like Ctrl+C,
    # through Gradio's shutdown in block_thread and then log.close().
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    demo = build_demo(
        classifier, args.top_k, version=fetched.version(), on_prediction=log.record, delete_cache=UPLOAD_CACHE_SWEEP,
        feedback=FeedbackStore(log_settings.folder, model, classifier),
    )
    if args.monitoring:
        demo = with_monitoring(demo, Dashboard(log_settings.folder, model, folder, fetched.version()))
    # Nothing is allowed beyond Gradio's own upload and example caches (the example photos are
    # copied there when the page is built); the model and log folders are also blocked, so no
    # later allowed_paths can expose the weights or visitors' photos.
    demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT).launch(
        share=args.share,
        max_file_size=MAX_UPLOAD,
        blocked_paths=[str(folder.path.resolve()), str(log_settings.folder.resolve())],
        prevent_thread_lock=True,
    )
    if args.share and not demo.share_url:
        print(f"Share link unavailable (no route to the share server); still serving locally at {demo.local_url}")
    demo.block_thread()
    log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
