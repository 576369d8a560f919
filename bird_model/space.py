"""Put the demo live as a Hugging Face Space, and switch the model revision it serves.

    python -m bird_model.space deploy OWNER/SPACE --model OWNER/birds [--revision v1] [--private]
    python -m bird_model.space promote OWNER/SPACE --revision v2
    python -m bird_model.space rollback OWNER/SPACE
    python -m bird_model.space status OWNER/SPACE
    python -m bird_model.space requirements        # prints the Space's requirements.txt

A Space runs what ``deploy`` uploads: app.py, the bird_model package, the serving requirements
and a card. Which model it serves is not in those files but in the Space variables BIRD_MODEL
and BIRD_MODEL_REVISION, which app.py reads; so promoting a revision or rolling back changes a
variable (the Hub restarts the Space on it) and uploads nothing. The revision served before is
kept in a third variable, BIRD_MODEL_PREVIOUS_REVISION, where rollback finds it.

The Hub token (write access to the Space) comes from --token, else HF_TOKEN, else the saved
`hf auth login`. A private model also needs a read token for the Space (--model-token, else
BIRD_MODEL_TOKEN), stored as its secret HF_TOKEN; the write token is never stored there. Tokens
are never printed, so a retry command relies on those environment variables.

Exit status: 0 done; 1 the Hub failed, and the last line printed is the command to retry;
2 bad input, and nothing was changed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi

from bird_model.artifacts import CARD_FILE, LITERT_FILE, METRICS_FILE
from bird_model.hub import (HubError, card_links, explained, is_repo_id, read_published_card, read_published_file,
                            require_token)
from bird_model.space_files import (
    MODEL_VARIABLE,
    PREVIOUS_VARIABLE,
    REQUIREMENTS_FILE,
    REVISION_VARIABLE,
    ROOT,
    SDK,
    serving_requirements,
    stage_serving_files,
)

COMMAND = ["python", "-m", "bird_model.space"]
TOKEN_SECRET = "HF_TOKEN"
"""app.py downloads a private model with the token in HF_TOKEN; on the Space that is a secret."""


class SpaceInputError(ValueError):
    """A request that cannot be carried out as given (exit status 2); nothing was changed."""


@dataclass(frozen=True)
class ModelRevision:
    """One revision of a published model, with what a Space needs to know before serving it."""

    repo_id: str
    revision: str
    commit: str
    private: bool
    has_litert: bool
    accuracy: float | None
    files: frozenset[str] = frozenset()
    license: str | None = None
    """The model card's ``license``, when it is a Hub license id."""
    datasets: tuple[str, ...] = ()
    """The model card's ``datasets`` that are Hub dataset ids."""

    def describe(self) -> str:
        accuracy = "unknown" if self.accuracy is None else f"{self.accuracy:.2%}"
        return f"{self.repo_id} at {self.revision!r} (commit {self.commit[:7]}, validation accuracy {accuracy})"


@dataclass(frozen=True)
class Serving:
    """What a Space's variables tell app.py to serve, and the revision it served before."""

    model: str | None
    revision: str | None
    previous: str | None

    @classmethod
    def of(cls, variables: Mapping[str, str]) -> Serving:
        return cls(variables.get(MODEL_VARIABLE), variables.get(REVISION_VARIABLE), variables.get(PREVIOUS_VARIABLE))


NOTHING_SERVED = Serving(None, None, None)


@dataclass(frozen=True)
class Deployed:
    space_id: str
    url: str
    commit: str
    commit_url: str
    model: ModelRevision

    def report(self) -> str:
        return (f"Deployed Space {self.space_id}: it serves {self.model.describe()}.\n{self.url}\n"
                f"Space commit {self.commit}: {self.commit_url}")


@dataclass(frozen=True)
class Switched:
    """A promotion or rollback; ``before`` is None when the Space already served that revision."""

    space_id: str
    url: str
    model: ModelRevision
    before: str | None

    def report(self) -> str:
        if self.before is None:
            return f"Space {self.space_id} already serves {self.model.describe()}; nothing changed.\n{self.url}"
        return (f"Space {self.space_id} now serves {self.model.describe()}; it served {self.before!r} before. "
                f"It restarts to load it.\n{self.url}\nRoll back with: {command_line('rollback', self.space_id)}")


@dataclass(frozen=True)
class SpaceStatus:
    space_id: str
    url: str
    stage: str
    hardware: str | None
    serving: Serving
    model: ModelRevision | None

    def report(self) -> str:
        served = (self.model.describe() if self.model is not None
                  else f"no model yet (no {MODEL_VARIABLE} variable); deploy one with "
                       f"{command_line('deploy', self.space_id, '--model', 'OWNER/NAME')}")
        lines = [f"Space {self.space_id}: {self.url}",
                 f"stage: {self.stage}" + (f" (hardware {self.hardware})" if self.hardware else ""),
                 f"serves: {served}"]
        if self.serving.previous:
            rollback = command_line("rollback", self.space_id)
            lines.append(f"previous: {self.serving.previous!r} ({rollback} returns to it)")
        return "\n".join(lines)


# -- reading the Hub -----------------------------------------------------------------------
def client(token: str | None, action: str) -> HfApi:
    """Every command reads or changes Space settings, which need a token: say so before any request."""
    require_token(token, action)
    return HfApi(token=token)


def read_model(api: HfApi, repo_id: str, revision: str, token: str | None = None) -> ModelRevision:
    """The revision as published; a HubError if the repo or revision does not exist."""
    with explained(f"reading {repo_id} at revision {revision!r}"):
        info = api.model_info(repo_id, revision=revision, token=token)
    files = frozenset(sibling.rfilename for sibling in info.siblings or [])
    accuracy = None
    if METRICS_FILE in files:
        metrics = read_published_file(repo_id, METRICS_FILE, info.sha, token=token or api.token)
        accuracy = metrics.get("validation", {}).get("accuracy")
    card = read_published_card(repo_id, info.sha, token=token or api.token) if CARD_FILE in files else {}
    return ModelRevision(repo_id, revision, info.sha, bool(info.private), LITERT_FILE in files,
                         None if accuracy is None else float(accuracy), files, *card_links(card))


def read_serving(api: HfApi, space_id: str) -> Serving:
    with explained(f"reading the variables of Space {space_id}"):
        variables = api.get_space_variables(space_id)
    return Serving.of({key: variable.value for key, variable in variables.items()})


def require_servable(model: ModelRevision) -> None:
    """The Space installs no TensorFlow, so it can only serve a revision that has ``model.tflite``."""
    if not model.has_litert:
        raise SpaceInputError(
            f"{model.repo_id} at {model.revision!r} has no {LITERT_FILE}, and the Space serves only that (it installs "
            "no TensorFlow). Retrain and publish it with the current train.py (it also writes model.tflite), or "
            f"serve this revision where the full requirements.txt is installed: BIRD_MODEL={model.repo_id} "
            f"BIRD_MODEL_REVISION={model.revision} python app.py"
        )


def require_space_ids(*ids: str) -> None:
    for repo_id in ids:
        if not is_repo_id(repo_id):
            raise SpaceInputError(f"{repo_id!r} is not a repo id; expected OWNER/NAME.")


# -- the commands ------------------------------------------------------------------------------
def deploy(space_id: str, model_id: str, *, revision: str | None = None, private: bool = False,
           token: str | None = None, model_token: str | None = None) -> Deployed:
    """Create or update the Space so that it serves ``model_id`` at ``revision``.

    Everything that could refuse the request is checked before the first change. Without
    ``revision``, a redeploy keeps the revision the Space serves (a code update must not undo a
    promotion); a new Space serves ``main``. The variables are set before the upload so that a
    new Space's first build already knows its model.
    """
    require_space_ids(space_id, model_id)
    api = client(token, f"deploying {space_id}")
    with explained(f"looking up Space {space_id}"):
        exists = api.repo_exists(space_id, repo_type="space")
        secrets = set(api.get_space_secrets(space_id)) if exists else set()
    current = read_serving(api, space_id) if exists else NOTHING_SERVED
    kept = current.revision if current.model == model_id else None
    model = read_model(api, model_id, revision or kept or "main")
    require_servable(model)
    if model_token is not None:
        check_read_token(api, model, model_token)
    elif model.private and TOKEN_SECRET not in secrets:
        raise SpaceInputError(
            f"{model_id} is private, so the Space needs a read token to download it: create one at "
            "https://huggingface.co/settings/tokens and pass it with --model-token (or BIRD_MODEL_TOKEN). "
            "The write token is never copied to the Space."
        )
    with explained(f"creating Space {space_id}"):
        url = api.create_repo(space_id, repo_type="space", space_sdk=SDK, private=private, exist_ok=True)
    if model_token is not None:
        with explained(f"storing the read token as the secret {TOKEN_SECRET} of Space {space_id}"):
            api.add_space_secret(space_id, TOKEN_SECRET, model_token, description=f"read token for {model_id}")
    point_at(api, space_id, current, model)
    with tempfile.TemporaryDirectory(prefix="space-") as folder, explained(f"uploading the app to Space {space_id}"):
        stage_serving_files(Path(folder), model)
        commit = api.upload_folder(
            repo_id=space_id, repo_type="space", folder_path=folder, delete_patterns=["*"],
            commit_message=f"Deploy the bird classifier app for {model_id}",
        )
    return Deployed(space_id, str(url), commit.oid, commit.commit_url, model)


def check_read_token(api: HfApi, model: ModelRevision, model_token: str) -> None:
    """The token the Space will keep must read the model and must not write: anyone who can run
    code on the Space can read its secrets."""
    with explained("checking the --model-token"):
        role = api.whoami(token=model_token).get("auth", {}).get("accessToken", {}).get("role")
    if role == "write":
        raise SpaceInputError(
            "--model-token is a write token; the Space only downloads the model, so give it a read token "
            "(https://huggingface.co/settings/tokens)."
        )
    with explained(f"reading {model.repo_id} with the --model-token"):
        api.model_info(model.repo_id, revision=model.commit, token=model_token)


def point_at(api: HfApi, space_id: str, current: Serving, model: ModelRevision) -> str | None:
    """Set the Space's variables so that app.py serves ``model``; returns the revision replaced.

    The replaced revision is saved before the new one is set, so a failure in between leaves a
    Space that serves what it served, and a retry records the same previous revision. A
    previous revision of another model is dropped: rolling back never changes the model.
    """
    with explained(f"setting the variables of Space {space_id}"):
        if current.model != model.repo_id:
            if current.previous is not None:
                api.delete_space_variable(space_id, PREVIOUS_VARIABLE)
            api.add_space_variable(space_id, REVISION_VARIABLE, model.revision, description="model revision served")
            api.add_space_variable(space_id, MODEL_VARIABLE, model.repo_id, description="model repo served")
            return None
        replaced = current.revision or "main"  # what app.py serves without the variable
        if replaced == model.revision:
            return None
        api.add_space_variable(space_id, PREVIOUS_VARIABLE, replaced, description="revision served before")
        api.add_space_variable(space_id, REVISION_VARIABLE, model.revision, description="model revision served")
        return replaced


def served_model(api: HfApi, space_id: str) -> Serving:
    """The Space's variables, for a Space that serves a model."""
    serving = read_serving(api, space_id)
    if serving.model is None:
        raise SpaceInputError(
            f"Space {space_id} serves no model (it has no {MODEL_VARIABLE} variable); deploy it first: "
            f"{command_line('deploy', space_id, '--model', 'OWNER/NAME')}"
        )
    return serving


def promote(space_id: str, revision: str, token: str | None = None) -> Switched:
    """Serve another revision of the Space's model, once it is known to exist and be servable."""
    require_space_ids(space_id)
    api = client(token, f"promoting {revision!r} on Space {space_id}")
    current = served_model(api, space_id)
    model = read_model(api, current.model, revision)
    require_servable(model)
    before = point_at(api, space_id, current, model)
    return Switched(space_id, space_url(api, space_id), model, before)


def rollback_target(space_id: str, token: str | None = None) -> str:
    """The revision the Space served before its last change: what ``rollback`` promotes."""
    require_space_ids(space_id)
    current = served_model(client(token, f"rolling back Space {space_id}"), space_id)
    if not current.previous or current.previous == current.revision:
        raise SpaceInputError(
            f"Space {space_id} has no earlier revision to roll back to ({PREVIOUS_VARIABLE} is not set: nothing was "
            f"promoted since it was deployed); serve another one with "
            f"{command_line('promote', space_id, '--revision', 'REVISION')}"
        )
    return current.previous


def status(space_id: str, token: str | None = None) -> SpaceStatus:
    require_space_ids(space_id)
    api = client(token, f"reading the status of Space {space_id}")
    with explained(f"reading the runtime of Space {space_id}"):
        runtime = api.get_space_runtime(space_id)
    serving = read_serving(api, space_id)
    model = read_model(api, serving.model, serving.revision or "main") if serving.model else None
    return SpaceStatus(space_id, space_url(api, space_id), str(runtime.stage), runtime.hardware, serving, model)


def space_url(api: HfApi, space_id: str) -> str:
    return f"{api.endpoint}/spaces/{space_id}"


# -- command line -------------------------------------------------------------------------------
def command_line(*words: str) -> str:
    return shlex.join([*COMMAND, *words])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=shlex.join(COMMAND), description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help, allow_abbrev=False)
        if name != "requirements":
            sub.add_argument("space", metavar="OWNER/SPACE", help="the Space")
            sub.add_argument("--token", help="Hub token with write access to the Space "
                                             "(default: HF_TOKEN or the saved login)")
        return sub

    deploy_ = command("deploy", "create or update the Space, serving --model at --revision")
    deploy_.add_argument("--model", required=True, metavar="OWNER/NAME", help="the published model to serve")
    deploy_.add_argument("--revision",
                         help="branch, tag or commit to serve (default: what the Space serves now, else main)")
    deploy_.add_argument("--private", action="store_true", help="create the Space as private")
    deploy_.add_argument("--model-token", default=os.environ.get("BIRD_MODEL_TOKEN") or None, metavar="READ_TOKEN",
                         help="read token for a private model, stored as the Space's secret HF_TOKEN "
                              "(default: $BIRD_MODEL_TOKEN)")
    command("promote", "serve another revision of the model").add_argument("--revision", required=True)
    command("rollback", "serve the revision served before the last change")
    command("status", "print the revision served, its validation accuracy and the Space's stage")
    command("requirements", "print the requirements.txt a Space gets")
    return parser.parse_args(argv)


def retry_command(args: argparse.Namespace) -> str:
    """The same command without its tokens (they never go to output; HF_TOKEN / BIRD_MODEL_TOKEN carry them)."""
    words = [args.command, args.space]
    if args.command == "deploy":
        words += ["--model", args.model] + ["--revision", args.revision] * bool(args.revision)
        words += ["--private"] * args.private
    elif args.command == "promote":
        words += ["--revision", args.revision]
    return command_line(*words)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "requirements":
        print(serving_requirements((ROOT / REQUIREMENTS_FILE).read_text()), end="")
        return 0
    retry = retry_command(args)
    try:
        if args.command == "deploy":
            report = deploy(args.space, args.model, revision=args.revision, private=args.private,
                            token=args.token, model_token=args.model_token).report()
        elif args.command == "promote":
            report = promote(args.space, args.revision, token=args.token).report()
        elif args.command == "rollback":
            target = rollback_target(args.space, token=args.token)
            # From here the rollback is a promotion, and retrying it must not depend on how far it got.
            retry = command_line("promote", args.space, "--revision", target)
            report = promote(args.space, target, token=args.token).report()
        else:
            report = status(args.space, token=args.token).report()
    except SpaceInputError as error:
        print(f"bird_model.space: error: {error}", file=sys.stderr)
        return 2
    except HubError as error:
        print(f"bird_model.space: error: {error} Retry with:\n  {retry}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
