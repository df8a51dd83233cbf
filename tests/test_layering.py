"""Imports point down: the layers of synthlens, read from the source with ``ast``.

Neutral modules (the data layer, ``nets``, ``stats``, ``hashing``, ``device``) import no
stage; feature extractors import neither the utility stage nor the generator harness (the
networks they share live in ``synthlens.nets``); and no module imports another module's
private (underscore) names.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "synthlens"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in a file, nested ones too."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:  # relative import
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join([*base, target] if target else base)
            out.append((node.lineno, target, [alias.name for alias in node.names]))
    return out


def _files(*under: str) -> list[Path]:
    return sorted(p for folder in under for p in (PACKAGE / folder).rglob("*.py")) \
        if under else sorted(PACKAGE.rglob("*.py"))


def _violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    return [f"{path.relative_to(SRC)}:{line} imports {target}"
            for path in files for line, target, _ in _imports(path)
            if any(target == f or target.startswith(f + ".") for f in forbidden)]


def test_the_ast_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    files = _files()
    found = {target for path in files for _, target, _ in _imports(path)}
    # absolute, nested (inside a function) and package-relative imports all resolve
    assert {"synthlens.features.base", "synthlens.utility", "numpy"} <= found
    assert len(files) > 50


def test_features_import_neither_utility_nor_the_generator_harness() -> None:
    # any synthlens.generators module runs generators/__init__, which imports the harness
    assert _violations(_files("features"), ("synthlens.utility", "synthlens.generators")) == []


@pytest.mark.parametrize("neutral", ["data", "nets", "stats.py", "hashing.py", "device.py",
                                     "errors.py", "io.py"])
def test_neutral_modules_import_no_stage(neutral: str) -> None:
    files = [PACKAGE / neutral] if neutral.endswith(".py") else _files(neutral)
    stages = ("synthlens.features", "synthlens.generators", "synthlens.utility",
              "synthlens.metrics", "synthlens.analysis", "synthlens.report",
              "synthlens.pipeline", "synthlens.config", "synthlens.cli", "synthlens.runfolder")
    assert _violations(files, stages) == []


def test_no_module_imports_a_private_name_from_another() -> None:
    private = [f"{path.relative_to(SRC)}:{line} imports {name} from {target}"
               for path in _files() for line, target, names in _imports(path)
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert private == []


def test_importing_every_extractor_loads_no_utility_or_generator_module() -> None:
    """The transitive check: what Python actually loads for the feature package."""
    code = ("import sys, synthlens.features as f\n"
            "for name in f.available_extractors():\n"
            "    f.extractor_class(name)\n"
            "import synthlens.features.cache, synthlens.features.user\n"
            "print(sorted(m for m in sys.modules if m.startswith(('synthlens.utility', "
            "'synthlens.generators'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(SRC)})
    assert out.stdout.strip() == "[]", out.stdout
