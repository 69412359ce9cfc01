"""The package layout tells the flow: each stage imports only from earlier stages and from the
root helpers, so the folders read EDF -> epochs -> models -> artifacts -> device -> report."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "host_tools"
#: Stage order; a module may import its own stage or an earlier one.
STAGES = ["data", "learn", "deploy", "cloud", "device", "bench"]
ROOT_HELPERS = {"constants", "errors", "evaluation", "plotting"}
#: Root modules that drive or expose every stage.
ROOT_DRIVERS = {"cli", "pipeline", "__main__", "demo", "bench_device", "adapt"}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every ``host_tools...`` module a file imports (module-level or inside functions)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("host_tools"):
            if node.module == "host_tools":
                found += [(node.lineno, f"host_tools.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("host_tools")]
    return found


def _rank(module: str) -> int | None:
    """-1 for the root helpers, the stage's position for a stage module, None for the rest."""
    parts = module.split(".")
    if len(parts) < 2:
        return -1  # the package itself: __version__, REPO_ROOT, shown_path
    if parts[1] in STAGES:
        return STAGES.index(parts[1])
    if parts[1] in ROOT_HELPERS or parts[1] in {"REPO_ROOT", "SHARED_DIR", "shown_path", "__version__"}:
        return -1
    return None


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_sits_in_a_stage_or_is_a_root_helper_or_driver() -> None:
    for path in _modules():
        rel = path.relative_to(PKG)
        if len(rel.parts) == 1:
            assert rel.stem in ROOT_HELPERS | ROOT_DRIVERS | {"__init__"}, f"{rel}: put it in a stage folder"
        else:
            assert rel.parts[0] in STAGES, f"{rel}: unknown stage folder {rel.parts[0]}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_imports_run_from_later_stages_to_earlier_ones(path: Path) -> None:
    rel = path.relative_to(PKG)
    if len(rel.parts) == 1 and rel.stem in ROOT_DRIVERS:
        return
    own = -1 if len(rel.parts) == 1 else STAGES.index(rel.parts[0])
    for line, module in _imported_modules(path):
        rank = _rank(module)
        assert rank is not None, f"{rel}:{line} imports {module}, a driver; stages must not"
        assert rank <= own, f"{rel}:{line} imports {module}: a stage may only import earlier stages"
