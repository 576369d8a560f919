"""One home per fact: README.md's option tables agree with the defaults train.py and app.py use."""

from __future__ import annotations

import re

import app
import train
from bird_model import evaluate, predict
from bird_model.settings import DEFAULT_DATA, RunSettings, ServingSettings, TrainingOptions
from bird_model.sources import HF_FORM, KAGGLE_FORM
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `(--[a-z-]+)[^|]*\| ([^|]*) \|", re.MULTILINE)


def readme_defaults() -> dict[str, str]:
    """``--option`` -> the default column, for every table row that starts with an option."""
    return {option: cell.strip().replace("`", "") for option, cell in ROW.findall(README)}


def shown(default: object) -> str | None:
    """How README.md writes an argparse default; None where it describes it in words."""
    if default is None:
        return None
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default)


def test_readme_tables_show_the_argparse_defaults() -> None:
    documented = readme_defaults()
    parsers = [train.build_parser(), app.build_parser({}), evaluate.build_parser(), predict.build_parser()]
    actions = {option: action for parser in parsers for action in parser._actions for option in action.option_strings}
    checked = 0
    for option, cell in documented.items():
        assert option in actions, f"README.md documents {option}, which no command has"
        default = DEFAULT_DATA if option == "--data" else actions[option].default
        expected = shown(default)
        if expected is not None:
            assert cell.startswith(expected), f"README.md says {option} defaults to {cell!r}; the code says {expected!r}"
            checked += 1
    assert checked >= 10


def test_the_defaults_come_from_the_settings_dataclasses() -> None:
    args = train.parse_args([])
    training, run, serving = TrainingOptions(), RunSettings(output=ROOT), ServingSettings()
    assert (args.epochs, args.fine_tune_epochs, args.batch_size, args.seed) == (
        training.epochs, training.fine_tune_epochs, training.batch_size, training.seed)
    assert (args.base_weights, args.image_size, args.val_split) == (
        run.base_weights, run.image_size, run.validation_fraction)
    assert app.build_parser({}).parse_args([]).top_k == serving.top_k
    assert readme_defaults()["--top-k"] == str(serving.top_k)
    assert predict.build_parser().parse_args(["--model", "m", "p"]).top_k == serving.top_k


def test_readme_and_help_name_every_data_form() -> None:
    help_text = train.build_parser().format_help().replace("\n", " ")
    for form in (KAGGLE_FORM, HF_FORM):
        assert form in README
        assert form in help_text.replace(" ", "") or form in help_text


def test_the_maps_name_every_module() -> None:
    """README.md's Layout and the package docstring list every module, so a newcomer finds each."""
    import bird_model

    layout = README[README.index("## Layout") : README.index("## Performance")]
    package = ROOT / "bird_model"
    for module in package.rglob("*.py"):
        if module.name != "__init__.py":
            assert module.name in layout, f"README.md's Layout does not name {module.relative_to(ROOT)}"
    for module in package.glob("*.py"):
        if module.name != "__init__.py":
            assert f"``{module.stem}``" in bird_model.__doc__, f"bird_model/__init__.py does not name {module.stem}"
    assert "``monitoring``" in bird_model.__doc__


def test_readme_shows_the_feedback_settings_defaults() -> None:
    from bird_model.settings import FeedbackSettings

    defaults = FeedbackSettings()
    for variable, value in (("BIRD_FEEDBACK_PER_HOUR", defaults.per_hour), ("BIRD_FEEDBACK_MAX_MB", defaults.max_mb)):
        assert f"| `{variable}` | {value:g} |" in README, variable
