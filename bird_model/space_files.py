"""What a Space is made of: the files ``python -m bird_model.space deploy`` uploads, and its variables.

app.py, the ``bird_model`` package, the serving requirements (``requirements.txt`` without
TensorFlow and Keras) and a card linked to the model. Which model it serves lives in the
Space variables named here, which app.py reads.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import SpaceCardData
from huggingface_hub.repocard import metadata_load

from bird_model.artifacts import SERVING_PATTERNS

if TYPE_CHECKING:
    from bird_model.space import ModelRevision

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(__file__).resolve().parent
APP_FILE = "app.py"
REQUIREMENTS_FILE = "requirements.txt"
CARD_FILE = "README.md"
SDK = "gradio"

MODEL_VARIABLE = "BIRD_MODEL"
REVISION_VARIABLE = "BIRD_MODEL_REVISION"
PREVIOUS_VARIABLE = "BIRD_MODEL_PREVIOUS_REVISION"

TRAINING_ONLY = frozenset({"tensorflow", "keras"})
"""Requirements the Space leaves out: it serves ``model.tflite`` on LiteRT, which imports neither."""

SERVING_HEADER = (
    "# The Space's requirements: written by `python -m bird_model.space deploy` from the project's",
    "# requirements.txt, without tensorflow and keras. The app serves model.tflite on LiteRT, which",
    "# imports neither; a model without model.tflite needs the full requirements.txt.",
)

SHORT_DESCRIPTION = "Names the bird species in a photo"
"""The Hub shows it on the Space's tile; it allows 60 characters."""
SPACE_TAGS = ("image-classification", "birds", "gradio", "litert")
"""What the Space does and runs on, for the Hub's Space search."""


def serving_requirements(full: str) -> str:
    """``requirements.txt`` without what only training needs.

    Derived rather than kept as a second file, so every pin has one home and the Space runs
    the versions the tests ran. The leading comment block describes the full file, so the
    generated one gets its own.
    """
    lines = full.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), len(lines))
    kept = [line for line in lines[start:] if requirement_name(line) not in TRAINING_ONLY]
    return "\n".join([*SERVING_HEADER, *kept]) + "\n"


def requirement_name(line: str) -> str | None:
    """The normalised project name a requirements line installs; None for comments and options."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def pinned_version(requirements: str, name: str) -> str | None:
    for line in requirements.splitlines():
        if requirement_name(line) == name and "==" in line:
            return line.split("#", 1)[0].split("==", 1)[1].strip()
    return None


def space_card(model: ModelRevision, requirements: str) -> str:
    """The Space's README: the project README's front matter, linked to the model.

    The project README's front matter stays the one home of the Space's look (title, emoji,
    colours, Python version); the SDK version is the gradio pin, so the Space's Gradio is
    the one the tests ran; ``models`` and ``datasets`` make the Hub link the Space with the model
    and its training data both ways; ``license`` is the model's, the terms of what the Space
    serves; ``preload_from_hub`` lets the Space's build fetch the served files
    (:func:`preload_entry`) so it starts without downloading them. Each key is in the Spaces
    configuration reference (https://huggingface.co/docs/hub/spaces-config-reference).
    """
    model_id = model.repo_id
    base = metadata_load(ROOT / CARD_FILE) or {}
    sdk_version = pinned_version(requirements, SDK) or base.get("sdk_version")
    preload = preload_entry(model)
    data = SpaceCardData(**{**base, "sdk": SDK, "sdk_version": sdk_version, "app_file": APP_FILE,
                            "license": model.license, "models": [model_id], "datasets": list(model.datasets) or None,
                            "tags": list(SPACE_TAGS), "short_description": SHORT_DESCRIPTION,
                            "preload_from_hub": [preload] if preload else None})
    title = data.title or "Bird species classifier"
    return (
        f"---\n{data.to_yaml()}\n---\n\n# {title}\n\nUpload, paste or take a photo of a bird: the app names its "
        f"most likely species with their confidences, or says it looks like none of the species it knows. It serves "
        f"the model [{model_id}](/{model_id}).\n\nThe revision it serves is the Space variable `{REVISION_VARIABLE}` "
        f"(the model is `{MODEL_VARIABLE}`). Change it with `python -m bird_model.space promote` or `rollback` from "
        "the project that deployed this Space (its README, \"Go live\"), not by editing these files.\n"
    )


def preload_entry(model: ModelRevision) -> str | None:
    """``OWNER/NAME FILE,FILE COMMIT``: the files app.py downloads of the served revision, pinned.

    The Hub preloads into the default huggingface_hub cache, where app.py's download then finds
    them. It does not preload private repos, so a private model gets none; a file name with a
    space or comma cannot be listed in that format (ours never have one) and is left to app.py.
    A later ``promote`` changes only a variable, so the Space then downloads the new revision at
    start, as before.
    """
    if model.private:
        return None
    wanted = sorted(name for name in model.files
                    if any(fnmatch.fnmatchcase(name, pattern) for pattern in SERVING_PATTERNS)
                    and not re.search(r"[\s,]", name))
    return f"{model.repo_id} {','.join(wanted)} {model.commit}" if wanted else None


def stage_serving_files(folder: Path, model: ModelRevision) -> None:
    """Write exactly what the Space needs to serve into ``folder``.

    Only the package's modules go: no tests, benchmarks, notes or model files, which the
    Space would never use and a visitor could read.
    """
    shutil.copy2(ROOT / APP_FILE, folder / APP_FILE)
    for module in sorted(PACKAGE.rglob("*.py")):
        target = folder / PACKAGE.name / module.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module, target)
    requirements = (ROOT / REQUIREMENTS_FILE).read_text()
    (folder / REQUIREMENTS_FILE).write_text(serving_requirements(requirements))
    (folder / CARD_FILE).write_text(space_card(model, requirements))
