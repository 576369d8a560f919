"""Serve a trained bird classifier as a Gradio web demo and API.

    python app.py                        # serves runs/latest, the newest run of train.py
    BIRD_MODEL=OWNER/NAME python app.py  # a model published on the Hugging Face Hub

Every option and environment variable, with its default (options override variables):
docs/settings.md, "app.py". Visitors' corrections wait in BIRD_LOG_DIR/feedback/pending/ for the
operator's review (python -m bird_model.feedback list | accept | reject).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bird_model.artifacts import LATEST_LINK, ModelFolderError
from bird_model.feedback import FeedbackStore
from bird_model.hub import HubError, fetch_model
from bird_model.images import release_large_buffers_promptly
from bird_model.monitoring import LogSettings, ModelIdentity, PredictionLog, open_log
from bird_model.settings import FeedbackSettings, ServedModel, ServingSettings

if TYPE_CHECKING:
    import gradio as gr

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""Largest upload Gradio accepts (a phone photo is 2-8 MB; the decoder's pixel cap is the real bound)."""

CONCURRENCY_LIMIT: int | None = 2
"""Predictions Gradio runs at once: with 2, one photo decodes while another is in the
interpreter (decoding runs outside its lock); 4 was no faster per CPU second it got, and every
running prediction may hold a large photo's decode in memory, so the limit also bounds memory.
Measured with benchmarks/load.py: benchmarks/README.md, "Load"."""

QUEUE_MAX_SIZE: int | None = 200
"""Requests waiting beyond it are refused at once with "Queue is full" instead of waiting
(a few seconds of work at the rate benchmarks/README.md, "Load", measured); queued requests
hold no decoded pixels (their uploads are on disk), so the bound is on waiting, not memory."""

UPLOAD_CACHE_SWEEP = (3600, 3600)
"""Gradio's ``delete_cache`` (every, older than; seconds). Gradio keeps every distinct upload
in its cache folder until the server restarts, which grows without end on a public demo; the
photo is needed only while it is classified (the prediction log keeps its own copy when asked)."""
UPLOAD_CACHE_BYTES = 500_000_000
UPLOAD_CACHE_FILES = 2000
"""What the upload cache may hold at once, however fast uploads come (:mod:`bird_model.web.uploads`):
the sweep above bounds only age, and one client looping 25 MB uploads filled 1 GB in 25 s."""
UPLOAD_MIN_AGE = 120
"""Seconds an upload is safe from eviction: time for it to wait in the queue and be classified."""


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


@dataclass
class ServedApp:
    """What :func:`build` makes: the page with its API, and the log its answers go to."""

    demo: gr.Blocks
    log: PredictionLog
    blocked: list[str]
    """The model and log folders: never served as files, whatever else is allowed later."""
    origin: str
    i18n: gr.I18n
    """The page's words in every language it speaks (:mod:`bird_model.web.text`)."""

    def launch(self, share: bool = False, **options: Any) -> None:
        """Start serving (in a thread): through the queue only, with the upload cache's budget."""
        from starlette.middleware import Middleware

        from bird_model.web.page import CSS as PAGE_CSS
        from bird_model.web.uploads import UploadBudget

        budget = Middleware(UploadBudget, uploads=lambda: self.demo.upload_file_set, max_bytes=UPLOAD_CACHE_BYTES,
                            max_files=UPLOAD_CACHE_FILES, min_age=UPLOAD_MIN_AGE, max_incoming=MAX_UPLOAD_BYTES)
        # api_open=False: Gradio leaves its REST routes (/gradio_api/run/...) open off Spaces, and a
        # call there skips the queue, its slots and its size limit; every client goes through the queue.
        self.demo.queue(max_size=QUEUE_MAX_SIZE, default_concurrency_limit=CONCURRENCY_LIMIT, api_open=False).launch(
            share=share,
            max_file_size=MAX_UPLOAD_BYTES,
            blocked_paths=self.blocked,
            prevent_thread_lock=True,
            app_kwargs={"middleware": [budget]},
            i18n=self.i18n,
            css=PAGE_CSS,
            **options,
        )


class StartError(Exception):
    """A reason app.py cannot serve, in one line."""


def build(args: argparse.Namespace, environ: Mapping[str, str]) -> ServedApp:
    """Fetch the model, open the log and the feedback store, and build the page; raises :class:`StartError`."""
    try:
        log_settings = LogSettings.from_environment(environ)
        feedback_settings = FeedbackSettings.from_environment(environ)
    except ValueError as error:
        raise StartError(str(error)) from error
    if ServedModel(args.model).is_default_and_missing():
        raise StartError(
            f"no model to serve. Either train one locally: `python train.py` (or with "
            f"--data YOUR_PHOTOS) writes {LATEST_LINK}, which app.py serves by default; or serve a published "
            "model: BIRD_MODEL=OWNER/NAME python app.py."
        )
    token = environ.get("HF_TOKEN") or None
    try:
        fetched = fetch_model(args.model, args.revision, token=token)
        from bird_model.inference import Classifier

        classifier = Classifier(fetched.folder)
    except (HubError, ModelFolderError) as error:
        raise StartError(str(error)) from error
    from bird_model.web import About, Dashboard, Words, build_demo, with_monitoring

    folder, model = fetched.folder, ModelIdentity.of(fetched)
    log = open_log(log_settings, model, classifier.classes, token=token)
    about = About(model=fetched.repo_id or folder.facts.model_name, revision=fetched.commit,
                  tag=fetched.tag, version=fetched.version())
    words = Words()
    try:
        demo = build_demo(
            classifier, args.top_k, about, on_prediction=log.record, delete_cache=UPLOAD_CACHE_SWEEP,
            feedback=FeedbackStore(log_settings.folder, model, classifier.classes, feedback_settings), words=words,
        )
    except ModelFolderError as error:
        log.close()
        raise StartError(str(error)) from error
    if args.monitoring:
        demo = with_monitoring(demo, Dashboard(log_settings.folder, model, folder, fetched.version()))
    # Nothing is allowed beyond Gradio's own upload and example caches (the example photos are
    # copied there when the page is built); the model and log folders are also blocked, so no
    # later allowed_paths can expose the weights or visitors' photos.
    blocked = [str(folder.path.resolve()), str(log_settings.folder.resolve())]
    return ServedApp(demo, log, blocked, fetched.origin(), words.i18n())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        served = build(args, os.environ)
    except StartError as error:
        print(f"app.py: error: {error}", file=sys.stderr)
        return 2
    release_large_buffers_promptly()
    print(f"Serving {served.origin}")
    # SIGTERM (a Space or container stop, Popen.terminate) would end the process at once,
    # skipping atexit and the log's last second; as KeyboardInterrupt it ends like Ctrl+C,
    # through Gradio's shutdown in block_thread and then log.close().
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    served.launch(share=args.share)
    demo = served.demo
    if args.share and not demo.share_url:
        print(f"Share link unavailable (no route to the share server); still serving locally at {demo.local_url}")
    demo.block_thread()
    served.log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
