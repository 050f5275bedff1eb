"""The package's shape, as docs/architecture.md promises it: short functions, and a docstring on everything public."""

import ast

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
