"""Nothing the pipeline reads back can execute code: no unpickling, no unsafe YAML, no shell, no eval.

The check parses the code (Python's `ast`) and resolves import aliases, so `from pickle import loads`,
`import torch as t; t.load(p)` or `from torch import load` are caught, while a multi-line
`torch.load(..., weights_only=True)`, a comment or a string that mentions `pickle` are not.
"""

from __future__ import annotations

import ast

import pytest

from conftest import REPO_ROOT

PICKLING_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "shelve", "marshal"}
UNSAFE_YAML = {f"yaml.{name}" for name in ("load", "load_all", "unsafe_load", "unsafe_load_all", "full_load",
                                           "full_load_all")}
SHELL_CALLS = {"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"}
CODE_FROM_DATA = {"eval", "exec"}
SOURCES = sorted(p for d in ("src", "stages", "bench", "studies", "vendor") for p in (REPO_ROOT / d).rglob("*.py"))


def _is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


class Scanner(ast.NodeVisitor):
    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}  # local name -> qualified name, from the imports
        self.findings: list[tuple[int, str]] = []

    def flag(self, node: ast.AST, rule: str) -> None:
        self.findings.append((node.lineno, rule))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in PICKLING_MODULES:
                self.flag(node, f"imports {alias.name}")
            self.aliases[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module.split(".")[0] in PICKLING_MODULES:
            self.flag(node, f"imports from {module}")
        for alias in node.names:
            self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"

    def qualified(self, node: ast.expr) -> str | None:
        """`t.load` -> `torch.load` when `import torch as t`; None for anything not a dotted name."""
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        return ".".join([self.aliases.get(node.id, node.id), *reversed(parts)])

    def visit_Call(self, node: ast.Call) -> None:
        name = self.qualified(node.func)
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if name == "torch.load" and not _is_true(keywords.get("weights_only", ast.Constant(False))):
            self.flag(node, "torch.load without weights_only=True")
        if name in UNSAFE_YAML:
            self.flag(node, f"{name} (use yaml.safe_load)")
        if name in SHELL_CALLS or _is_true(keywords.get("shell", ast.Constant(False))):
            self.flag(node, "a shell command")
        if name in CODE_FROM_DATA:
            self.flag(node, f"{name}()")
        if _is_true(keywords.get("allow_pickle", ast.Constant(False))):
            self.flag(node, "allow_pickle=True")
        self.generic_visit(node)


def findings(source: str) -> list[tuple[int, str]]:
    scanner = Scanner()
    scanner.visit(ast.parse(source))
    return scanner.findings


def test_no_source_unpickles_runs_a_shell_or_evaluates_code():
    assert SOURCES
    offenders = [f"{p.relative_to(REPO_ROOT)}:{line}: {rule}" for p in SOURCES
                 for line, rule in findings(p.read_text())]
    assert offenders == []


@pytest.mark.parametrize("source", [
    "import pickle",
    "from pickle import loads",
    "import dill as d",
    "import torch\ntorch.load(path)",
    "import torch as t\nt.load(path)",
    "from torch import load\nload(path)",
    "from torch import load as restore\nrestore(path, map_location='cpu')",
    "import torch\ntorch.load(path, weights_only=False)",
    "import yaml\nyaml.load(text)",
    "from yaml import unsafe_load\nunsafe_load(text)",
    "import subprocess\nsubprocess.run(command, shell=True)",
    "import os\nos.system('ls')",
    "from os import popen\npopen('ls')",
    "eval(text)",
    "import numpy as np\nnp.load(path, allow_pickle=True)",
])
def test_flags_what_it_must(source):
    assert findings(source), source


@pytest.mark.parametrize("source", [
    "import torch\ntorch.load(\n    path,\n    map_location='cpu',\n    weights_only=True,\n)",
    "from torch import load\nload(path, weights_only=True)",
    "import yaml\nyaml.safe_load(text)",
    "import subprocess\nsubprocess.run(['npm', 'pack', name], check=True)",
    "model.load_state_dict(state)",
    "loader.load(path)",
    "# torch.load(path) would unpickle; we use safetensors\nx = 'import pickle; pickle.loads(data)'",
    "import numpy as np\nnp.load(path)",
])
def test_leaves_alone_what_is_safe(source):
    assert findings(source) == [], source
