"""Display names for the classes, per language, from a table the trainer writes (``--class-names-file``).

Class names are folder names (``gray parrot``); the page can show each in the visitor's language
(``Nuri abu-abu``). The trainer writes one CSV, the kind a spreadsheet saves::

    class,id,en
    gray parrot,Nuri abu-abu,Grey parrot
    macaw,Makau,Macaw

The first column names a class folder, each further column a language code (``id``, ``en``).
The model folder gets one ``labels.LANG.json`` per language (:func:`bird_model.artifacts.display_names_file`),
which the page reads (:func:`bird_model.web.text.display_names`). A class the table leaves out, or a
cell left empty, keeps its folder name. Every failure is a :class:`ClassNamesError` whose one line
says what to fix, raised before training starts.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from bird_model.artifacts import MAX_DISPLAY_NAME

LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")
"""An ISO 639 language code as browsers send it (``id``, ``en``); regional variants share it."""


class ClassNamesError(ValueError):
    """A class names table that cannot be used; the message says what to change."""


def read_class_names(path: Path, classes: list[str]) -> dict[str, list[str]]:
    """Language code -> one name per class, in the order of ``classes`` (that of ``labels.json``)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ClassNamesError(f"--class-names-file {path}: cannot read it as a UTF-8 CSV file ({error}).") from error
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "class":
        raise ClassNamesError(f"--class-names-file {path}: the first line must be 'class' and language codes, "
                              "for example: class,id,en")
    languages = [code.strip().lower() for code in rows[0][1:]]
    bad = [code for code in languages if not LANGUAGE_CODE.fullmatch(code)]
    if bad or len(set(languages)) != len(languages):
        raise ClassNamesError(f"--class-names-file {path}: the columns after 'class' must be distinct language "
                              f"codes such as id or en, not {', '.join(map(repr, bad or languages))}.")
    names = {code: {label: label for label in classes} for code in languages}
    listed: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        label = row[0]
        if label not in classes or label in listed:
            problem = "is listed twice" if label in listed else "is not a class of this dataset"
            raise ClassNamesError(f"--class-names-file {path}, line {line}: {label!r} {problem} "
                                  f"(classes: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''}).")
        listed.add(label)
        for code, cell in zip(languages, row[1:]):
            name = cell.strip()
            if len(name) > MAX_DISPLAY_NAME or not name.isprintable():
                raise ClassNamesError(f"--class-names-file {path}, line {line}: names must be printable and at "
                                      f"most {MAX_DISPLAY_NAME} characters.")
            if name:
                names[code][label] = name
    return {code: [shown[label] for label in classes] for code, shown in names.items()}
