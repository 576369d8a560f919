"""The Hub's documented metadata, as checks: what a model card's and a Space card's front matter may hold.

Transcribed from the Hub's own documents, so a card that passes is one the Hub reads as meant:

- model cards: https://github.com/huggingface/hub-docs/blob/main/modelcard.md (``model-index``:
  ``task.type``, ``dataset.type`` (a Hub dataset id), ``dataset.name``, ``metrics[].type`` and
  ``metrics[].value`` required) and https://huggingface.co/docs/hub/repositories-licenses (license ids);
- Spaces: https://huggingface.co/docs/hub/spaces-config-reference (every accepted key; colours;
  ``short_description`` at most 60 characters; ``preload_from_hub`` entries
  ``"REPO"``, ``"REPO FILE1,FILE2"`` or ``"REPO FILE1,FILE2 COMMIT"``).

Each check returns the list of problems, empty for a card that follows the spec.
"""

from __future__ import annotations

import re
from typing import Any

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

LICENSES = frozenset({
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl",
    "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "lgpl-lr", "deepfloyd-if-license", "llama2", "gemma", "unknown", "other",
})
"""https://huggingface.co/docs/hub/repositories-licenses"""

SPACE_KEYS = frozenset({
    "title", "short_description", "emoji", "colorFrom", "colorTo", "sdk", "python_version", "sdk_version",
    "suggested_hardware", "suggested_storage", "app_file", "app_port", "base_path", "fullWidth", "header",
    "models", "datasets", "tags", "thumbnail", "pinned", "hf_oauth", "hf_oauth_scopes", "hf_oauth_expiration_minutes",
    "hf_oauth_authorized_org", "disable_embedding", "startup_duration_timeout", "custom_headers", "preload_from_hub",
    "license",
})
"""The keys of https://huggingface.co/docs/hub/spaces-config-reference (``license`` as on every repo card)."""
COLOURS = frozenset({"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"})
SDKS = frozenset({"gradio", "docker", "static", "streamlit"})
SHORT_DESCRIPTION_MAX = 60


def is_hub_id(text: Any, *, owner_required: bool = True) -> bool:
    """A Hub repo id (``OWNER/NAME``; legacy dataset ids may be one word)."""
    if not isinstance(text, str) or (owner_required and text.count("/") != 1):
        return False
    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def _string_list(card: dict[str, Any], key: str, check: Any, problems: list[str]) -> None:
    value = card.get(key)
    if value is None:
        return
    if not isinstance(value, list) or not value:
        problems.append(f"{key} must be a non-empty list")
        return
    problems.extend(f"{key}: {item!r} is not valid" for item in value if not check(item))


def model_card_problems(card: dict[str, Any]) -> list[str]:
    """What in a model card's metadata the Hub would not read as meant (modelcard.md)."""
    problems: list[str] = []
    if card.get("license") not in LICENSES:
        problems.append(f"license {card.get('license')!r} is not a Hub license id")
    _string_list(card, "datasets", lambda item: is_hub_id(item, owner_required=False), problems)
    _string_list(card, "tags", lambda item: isinstance(item, str) and item, problems)
    for index in card.get("model-index") or []:
        if not isinstance(index.get("name"), str):
            problems.append("model-index entry without a name")
        for result in index.get("results") or []:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if not isinstance(task.get("type"), str):
                problems.append("result without task.type")
            if not is_hub_id(dataset.get("type"), owner_required=False):
                problems.append(f"dataset.type {dataset.get('type')!r} is not a Hub dataset id")
            elif dataset.get("type") not in (card.get("datasets") or []):
                problems.append(f"dataset.type {dataset.get('type')!r} is not among the card's datasets")
            if not isinstance(dataset.get("name"), str):
                problems.append("result without dataset.name")
            revision = dataset.get("revision")
            if revision is not None and not re.fullmatch(r"[0-9a-f]{40}", str(revision)):
                problems.append(f"dataset.revision {revision!r} is not a commit")
            for metric in result.get("metrics") or []:
                if not isinstance(metric.get("type"), str) or not isinstance(metric.get("value"), (int, float)):
                    problems.append(f"metric without type and numeric value: {metric}")
            if not result.get("metrics"):
                problems.append("result without metrics")
    return problems


def space_card_problems(card: dict[str, Any]) -> list[str]:
    """What in a Space card's metadata the Hub would refuse or misread (spaces-config-reference)."""
    problems = [f"unknown key {key!r}" for key in card if key not in SPACE_KEYS]
    if card.get("sdk") not in SDKS:
        problems.append(f"sdk {card.get('sdk')!r}")
    problems.extend(f"{key} {card.get(key)!r} is no Space colour" for key in ("colorFrom", "colorTo")
                    if key in card and card[key] not in COLOURS)
    description = card.get("short_description")
    if description is not None and not (isinstance(description, str) and 0 < len(description) <= SHORT_DESCRIPTION_MAX):
        problems.append(f"short_description must be 1-{SHORT_DESCRIPTION_MAX} characters: {description!r}")
    if "license" in card and card["license"] not in LICENSES:
        problems.append(f"license {card['license']!r} is not a Hub license id")
    _string_list(card, "models", is_hub_id, problems)
    _string_list(card, "datasets", lambda item: is_hub_id(item, owner_required=False), problems)
    _string_list(card, "tags", lambda item: isinstance(item, str) and item, problems)
    _string_list(card, "preload_from_hub", _is_preload_entry, problems)
    return problems


def _is_preload_entry(entry: Any) -> bool:
    """``REPO``, ``REPO FILE1,FILE2`` or ``REPO FILE1,FILE2 COMMIT``."""
    if not isinstance(entry, str):
        return False
    words = entry.split(" ")
    if not 1 <= len(words) <= 3 or not is_hub_id(words[0], owner_required=False):
        return False
    if len(words) >= 2 and not all(words[1].split(",")):
        return False
    return len(words) < 3 or bool(re.fullmatch(r"[0-9a-f]{40}", words[2]))
