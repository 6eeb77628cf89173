"""Symbol association: the declaration each marker annotates, in Python and tree-sitter languages."""

from __future__ import annotations

import pytest

from mcp_server.touchpoints import extract
from mcp_server.touchpoints.symbols import associate, followed_by_code, tree_sitter_available

PYTHON = '''import os
# @touchpoint above-function
@decorator
async def total(x):
    """@touchpoint in-docstring"""
    y = 1  # @touchpoint trailing
    return y

class Cart:
    # @touchpoint above-method
    def render(self):
        pass

    class Inner:
        # @touchpoint in-class-body
        x = 1
# @touchpoint at-end
'''


def _symbols(text: str, language: str) -> dict[str, tuple[str | None, str | None, int | None, int | None]]:
    found = extract(f"f.{_EXTENSIONS[language]}", text.encode())
    return {tp.name: (tp.symbol, tp.symbol_kind, tp.symbol_start, tp.symbol_end) for tp in found.touchpoints}


_EXTENSIONS = {"python": "py", "typescript": "ts", "go": "go", "rust": "rs", "ruby": "rb", "c": "c", "java": "java",
               "tsx": "tsx", "terraform": "tf"}


def test_python_symbols() -> None:
    symbols = _symbols(PYTHON, "python")

    assert symbols["above-function"] == ("total", "function", 3, 7)
    assert symbols["in-docstring"] == ("total", "function", 3, 7)
    assert symbols["trailing"] == ("total", "function", 3, 7)
    assert symbols["above-method"] == ("Cart.render", "method", 11, 12)
    assert symbols["in-class-body"] == ("Cart.Inner", "class", 14, 16)
    assert symbols["at-end"] == (None, None, None, None)


def test_python_syntax_error_uses_heuristic() -> None:
    symbols = _symbols("# @touchpoint broken\ndef f(:\n    pass\n", "python")

    assert symbols["broken"] == ("f", "function", 2, 2)


needs_tree_sitter = pytest.mark.skipif(not tree_sitter_available(), reason="tree-sitter-language-pack not installed")


@needs_tree_sitter
@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("typescript", "// @touchpoint t\nexport function total(a: number) {\n  return a;\n}\n", ("total", "function", 2, 4)),
        ("typescript", "class Cart {\n  /* @touchpoint t */\n  render() { return 1; }\n}\n",
         ("Cart.render", "method", 3, 3)),
        ("typescript", "// @touchpoint t\nexport const go = () => 1;\n", ("go", "function", 2, 2)),
        ("tsx", "export function Cart() {\n  return <div>{/* @touchpoint t */}</div>;\n}\n", ("Cart", "function", 1, 3)),
        ("go", "package x\n// @touchpoint t\nfunc (c *Cart) Total() int {\n\treturn 1\n}\n", ("Total", "method", 3, 5)),
        ("go", "package x\n// @touchpoint t\ntype Cart struct{}\n", ("Cart", "type", 3, 3)),
        ("rust", "impl Cart {\n    /// @touchpoint t\n    pub fn total(&self) -> i32 { 1 }\n}\n",
         ("Cart.total", "method", 3, 3)),
        ("ruby", "class Cart\n  # @touchpoint t\n  def total\n  end\nend\n", ("Cart.total", "method", 3, 4)),
        ("c", "/* @touchpoint t */\nstatic int *total(int x) {\n  return 0;\n}\n", ("total", "function", 2, 4)),
        ("java", "class Cart {\n  // @touchpoint t\n  @Override\n  public int total() { return 1; }\n}\n",
         ("Cart.total", "method", 3, 4)),
    ],
)
def test_tree_sitter_symbols(language: str, text: str, expected: tuple[str, str, int, int]) -> None:
    assert _symbols(text, language)["t"] == expected


@needs_tree_sitter
def test_marker_after_last_statement_takes_enclosing() -> None:
    text = "function outer() {\n  work();\n  // @touchpoint t\n}\nfunction next() {}\n"

    assert _symbols(text, "typescript")["t"] == ("outer", "function", 1, 4)


def test_heuristic_for_language_without_parser() -> None:
    symbols = _symbols('# @touchpoint t\nresource "aws_s3_bucket" "logs" {\n}\n', "terraform")

    assert symbols["t"] == ("aws_s3_bucket", "resource", 2, 2)


def test_heuristic_rejects_plain_code() -> None:
    assert associate("-- @touchpoint t\nx = 1\n", "sql", [(1, 4)]) == [None]


def test_followed_by_code() -> None:
    assert followed_by_code("# @touchpoint a\nx = 1\n", "python", 1, 3)
    assert not followed_by_code("x = 1\n# @touchpoint a\n# more words\n", "python", 2, 3)
    assert not followed_by_code("/* @touchpoint a */ }\n", "c", 1, 4)
