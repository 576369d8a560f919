"""The architecture's promises that a newcomer relies on: serving stays apart from training."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import QUIET_ENV, ROOT, TINY_COLOURS, free_port, solid_photo

TRAINING_SIDE = {
    "bird_model.cache", "bird_model.checkpoints", "bird_model.curves", "bird_model.data", "bird_model.dataset_files",
    "bird_model.devices", "bird_model.inputs", "bird_model.model", "bird_model.pipeline", "bird_model.release",
    "bird_model.sources", "bird_model.training",
}
"""Modules that exist to make a model (ARCHITECTURE.md's training column); a Space never needs them."""

def test_serving_imports_no_training_module_and_no_tensorflow(tiny_model: Path, tmp_path: Path) -> None:
    # A Space installs requirements-space.txt only: an import of TensorFlow or of the dataset
    # scanner on the serving path would cost its start time and memory, or fail outright.
    photo = solid_photo(tmp_path / "bird.png", TINY_COLOURS["red bird"])
    script = """
import json, os, sys
import app
from gradio_client import Client, handle_file
served = app.build(app.build_parser(os.environ).parse_args(["--model", sys.argv[1]]), dict(os.environ))
served.launch(server_name="127.0.0.1", server_port=int(sys.argv[3]), quiet=True)
Client(f"http://127.0.0.1:{sys.argv[3]}/", verbose=False).predict(handle_file(sys.argv[2]), api_name="/predict")
print("MODULES", json.dumps(sorted(sys.modules)))
served.demo.close()
"""
    result = subprocess.run([sys.executable, "-c", script, str(tiny_model), str(photo), str(free_port())], cwd=ROOT,
                            env={**QUIET_ENV, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                 "BIRD_LOG_DIR": str(tmp_path / "logs")},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(next(line for line in result.stdout.splitlines() if line.startswith("MODULES "))[8:]))
    assert loaded & TRAINING_SIDE == set()
    assert {name.split(".")[0] for name in loaded} & {"tensorflow", "keras", "tf_keras"} == set()
    assert "bird_model.web.page" in loaded, "the closure covers the page, not only app's top level"


MAX_MODULE_LINES = 400
"""A module a newcomer reads in one sitting; past it, a second concern has usually moved in."""


def product_modules() -> dict[str, Path]:
    """Dotted name -> file, for the package and the two entry scripts."""
    modules = {path.stem: ROOT / path for path in (Path("app.py"), Path("train.py"))}
    for path in sorted((ROOT / "bird_model").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def top_level_imports(path: Path, known: set[str]) -> set[str]:
    """The product modules ``path`` imports when it is imported (not inside functions, not for typing only)."""
    found: set[str] = set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop(0)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.If, ast.Try)):
            body.extend(node.body + getattr(node, "orelse", []) + [n for h in getattr(node, "handlers", []) for n in h.body])
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & known
            found.update(submodules or ({node.module} & known))
    return found


def test_no_module_is_too_long_and_no_imports_go_round() -> None:
    modules = product_modules()
    long = {name: n for name, path in modules.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}, f"over {MAX_MODULE_LINES} lines: split by concern"

    graph = {name: top_level_imports(path, set(modules)) - {name} for name, path in modules.items()}
    cycles = []

    def visit(name: str, trail: list[str]) -> None:
        for imported in sorted(graph[name]):
            if imported in trail:
                cycles.append(trail[trail.index(imported):] + [imported])
            elif imported not in done:
                visit(imported, trail + [imported])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == [], "modules that import each other, directly or round a circle"
