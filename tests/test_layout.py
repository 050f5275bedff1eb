"""The package's shape, as docs/architecture.md promises it: short functions, and a docstring on everything public."""

import ast
import importlib
import re

from tests.conftest import REPO

#: the longest function the package allows (docs/architecture.md: "no function over about 60 lines")
MAX_FUNCTION_LINES = 60


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``name (N lines)`` for each function or method of ``source`` longer than ``limit`` lines, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                found.append(f"{node.name} ({lines} lines)")
    return found


def undocumented(source: str) -> list[str]:
    """Public module-level functions and classes, and public methods of those classes, that have no docstring."""
    found = []
    for node in ast.parse(source).body:
        members = [m for m in node.body if isinstance(m, ast.FunctionDef)] if isinstance(node, ast.ClassDef) else []
        for item in [node, *members]:
            if isinstance(item, (ast.FunctionDef, ast.ClassDef)) and not item.name.startswith("_"):
                if ast.get_docstring(item) is None:
                    found.append(item.name)
    return found


#: a Sphinx-style reference to a dotted name of the package, as docstrings write them
REFERENCE = re.compile(r":(?:func|class|mod|data|meth|attr):`~?(nlp_transfer(?:\.\w+)+)`")


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` (``package.module.name.attribute``) names a module or an attribute that exists."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def package_sources() -> dict[str, str]:
    return {str(path.relative_to(REPO)): path.read_text(encoding="utf-8") for path in (REPO / "nlp_transfer").rglob("*.py")}


def test_the_checks_catch_a_planted_fault():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    planted = f"def public():\n{body}\n\n\nclass Thing:\n    def method(self):\n        return 1\n"
    assert long_functions(planted) == [f"public ({MAX_FUNCTION_LINES + 1} lines)"]
    assert undocumented(planted) == ["public", "Thing", "method"]
    assert long_functions("def short():\n    return 1\n") == [] and undocumented('def f():\n    """Doc."""\n') == []


def test_no_package_function_is_longer_than_the_limit():
    offenders = {name: found for name, source in package_sources().items() if (found := long_functions(source))}
    assert offenders == {}, offenders


def test_everything_public_in_the_package_has_a_docstring():
    offenders = {name: found for name, source in package_sources().items() if (found := undocumented(source))}
    assert offenders == {}, offenders


def test_the_package_layout_is_the_one_the_architecture_page_describes():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    folders = sorted(p.name for p in (REPO / "nlp_transfer").iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    missing = [name for name in folders if f"{name}/" not in page]
    assert missing == [], f"docs/architecture.md does not describe nlp_transfer/{missing}"


def test_every_dotted_reference_in_a_docstring_names_something_that_exists():
    """A module split or a rename leaves no docstring pointing at a name that is gone."""
    assert resolves("nlp_transfer.inference.loading.load_run") and resolves("nlp_transfer.config.schema")
    assert not resolves("nlp_transfer.inference.mean_pooled_logits")  # once named in contrastive.py, never defined
    assert not resolves("nlp_transfer.no_such_module.thing")
    stale = [
        f"{name}: {dotted}"
        for name, source in package_sources().items()
        for dotted in REFERENCE.findall(source)
        if not resolves(dotted)
    ]
    assert stale == [], stale
