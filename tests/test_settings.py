"""One home per fact: docs/settings.md documents every option and variable the code reads, with
the defaults train.py and app.py use; ARCHITECTURE.md is the one module map."""

from __future__ import annotations

import argparse
import re

import app
import train
from bird_model import evaluate, predict
from bird_model.feedback import __main__ as feedback_command
from bird_model.monitoring import __main__ as monitor_command
from bird_model.settings import DEFAULT_DATA, FeedbackSettings, RunSettings, ServingSettings, TrainingOptions
from bird_model.kaggle import KAGGLE_FORM
from bird_model.sources import HF_FORM
from tests.conftest import ROOT

SETTINGS = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(--[a-z-]+)[^|]*\| ([^|]*) \|", re.MULTILINE)
OPTION = re.compile(r"add_argument\(\s*\"(--[a-z-]+)\"")
VARIABLE = re.compile(r"environ(?:\.get\(|\[)\s*\"([A-Z][A-Z0-9_]+)\"|_ENV = \"([A-Z][A-Z0-9_]+)\"")

COMMANDS = {
    "train.py": ("train.py", train.build_parser),
    "app.py": ("app.py", lambda: app.build_parser({})),
    "python -m bird_model.evaluate": ("bird_model/evaluate.py", evaluate.build_parser),
    "python -m bird_model.predict": ("bird_model/predict.py", predict.build_parser),
    "python -m bird_model.monitor": ("bird_model/monitoring/__main__.py", lambda: monitor_command.build_parser({})),
    "python -m bird_model.feedback": ("bird_model/feedback/__main__.py", lambda: feedback_command.build_parser({})),
    "python -m bird_model.space": ("bird_model/space.py", None),
}
"""Each section of docs/settings.md: the file whose options it documents, and its parser where one can be built."""

SHARED_OPTIONS = {"bird_model/evaluate.py": "bird_model/batch.py", "bird_model/predict.py": "bird_model/batch.py"}
"""``--model`` and ``--revision`` of evaluate and predict are added by batch.add_model_options."""


def section(heading: str) -> str:
    """The text under ``## heading`` up to the next ``## ``."""
    start = SETTINGS.index(f"\n## {heading}\n")
    end = SETTINGS.find("\n## ", start + 1)
    return SETTINGS[start : end if end > 0 else None]


def documented_defaults(heading: str) -> dict[str, str]:
    """``--option`` -> the default column, for every table row of the section that starts with an option."""
    return {option: cell.strip().replace("`", "") for option, cell in ROW.findall(section(heading))}


def shown(default: object) -> str | None:
    """How the page writes an argparse default; None where it describes it in words."""
    if default is None:
        return None
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def parser_actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_settings_tables_show_the_argparse_defaults() -> None:
    checked = 0
    for heading, (_, build) in COMMANDS.items():
        if build is None:
            continue
        actions = parser_actions(build())
        for option, cell in documented_defaults(heading).items():
            assert option in actions, f"docs/settings.md documents {option} under {heading}, which has no such option"
            default = DEFAULT_DATA if option == "--data" else actions[option].default
            expected = shown(default)
            if expected is not None:
                assert cell.startswith(expected), f"{heading} {option}: the page says {cell!r}, the code {expected!r}"
                checked += 1
    assert checked >= 15


def test_every_option_is_documented_under_its_command() -> None:
    for heading, (path, _) in COMMANDS.items():
        sources = [path] + ([SHARED_OPTIONS[path]] if path in SHARED_OPTIONS else [])
        options = {option for source in sources for option in OPTION.findall((ROOT / source).read_text())}
        assert options, path
        text = section(heading)
        for option in options:
            assert f"`{option}" in text, f"docs/settings.md does not document {path}'s {option} under {heading}"


def test_every_environment_variable_the_code_reads_is_documented() -> None:
    files = [ROOT / "app.py", ROOT / "train.py", *sorted((ROOT / "bird_model").rglob("*.py"))]
    variables = {name for file in files for pair in VARIABLE.findall(file.read_text()) for name in pair if name}
    assert {"BIRD_MODEL", "BIRD_LOG_DIR", "BIRD_CACHE_DIR", "TF_CONFIG", "HF_TOKEN"} <= variables
    for variable in sorted(variables):
        assert f"`{variable}" in SETTINGS, f"docs/settings.md does not document {variable}"


def test_the_defaults_come_from_the_settings_dataclasses() -> None:
    args = train.parse_args([])
    training, run, serving = TrainingOptions(), RunSettings(output=ROOT), ServingSettings()
    assert (args.epochs, args.fine_tune_epochs, args.batch_size, args.seed) == (
        training.epochs, training.fine_tune_epochs, training.batch_size, training.seed)
    assert (args.base_weights, args.image_size, args.val_split) == (
        run.base_weights, run.image_size, run.validation_fraction)
    assert app.build_parser({}).parse_args([]).top_k == serving.top_k
    assert documented_defaults("app.py")["--top-k"] == str(serving.top_k)
    assert predict.build_parser().parse_args(["--model", "m", "p"]).top_k == serving.top_k


def test_settings_and_help_name_every_data_form() -> None:
    help_text = train.build_parser().format_help().replace("\n", " ")
    for form in (KAGGLE_FORM, HF_FORM):
        assert form in section("train.py")
        assert form in help_text.replace(" ", "") or form in help_text


def test_settings_show_the_feedback_settings_defaults() -> None:
    defaults = FeedbackSettings()
    for variable, value in (("BIRD_FEEDBACK_PER_HOUR", defaults.per_hour), ("BIRD_FEEDBACK_PER_MINUTE", defaults.per_minute),
                            ("BIRD_FEEDBACK_MAX_MB", defaults.max_mb)):
        assert f"| `{variable}` | {value:g} |" in section("app.py"), variable


def test_architecture_is_the_one_module_map() -> None:
    """ARCHITECTURE.md's Modules table names every module, so a newcomer finds each; nothing else restates it."""
    import bird_model

    architecture = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    start = architecture.index("## Modules")
    modules = architecture[start : architecture.index("\n## ", start + 1)]
    package = ROOT / "bird_model"
    for module in package.rglob("*.py"):
        if module.name == "__init__.py" and module.parent != package:
            continue
        relative = module.relative_to(package).as_posix()
        assert f"`bird_model/{relative}`" in modules or f"`{relative}`" in modules, (
            f"ARCHITECTURE.md's Modules table does not name bird_model/{relative}")
    assert "ARCHITECTURE.md" in bird_model.__doc__
    assert "``data``" not in bird_model.__doc__, "bird_model/__init__.py restates the module map"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(ARCHITECTURE.md)" in readme and "bird_model/pipeline.py" not in readme
