"""The package's layer order (see STYLE.md): a module imports only its own layer or lower ones.

Heavy libraries are only imported where their layer allows it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "pixelwise"

LAYERS: dict[str, int] = {
    "core": 0,
    "data": 1,
    "transforms": 2,
    "postprocess": 2,
    "viz": 2,
    "models": 3,
    "losses": 3,
    "metrics": 3,
    "runtime": 4,
    "video": 4,
    "storage": 4,
    "training": 5,
    "evaluation": 5,
    "service": 6,
    "web": 6,
    "cli": 7,
}

#: Modules allowed to import torch at top level (others import it inside functions).
TORCH_FREE = ("core", "data/formats", "data/synth")


def _package_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).parts
    return rel[0] if len(rel) > 1 else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if _package_of(p) in LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_respect_layers(path: Path):
    own = LAYERS[_package_of(path)]
    for name in _imports(path):
        parts = name.split(".")
        if parts[0] != "pixelwise" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        assert LAYERS[parts[1]] <= own, f"{path.relative_to(PACKAGE)} (layer {own}) imports {name} (layer {LAYERS[parts[1]]})"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if any(str(p.relative_to(PACKAGE)).startswith(prefix) for prefix in TORCH_FREE)],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_low_layers_do_not_import_torch(path: Path):
    heavy = {n.split(".")[0] for n in _imports(path)} & {"torch", "torchvision", "onnxruntime", "fastapi", "ray"}
    assert not heavy, f"{path.relative_to(PACKAGE)} imports {heavy}"
