"""Symbol association: the declaration each marker annotates, in Python and tree-sitter languages."""

from __future__ import annotations

import pytest

from mcp_server.touchpoints import extract
from mcp_server.touchpoints.symbols import Symbol, associate, followed_by_code, tree_sitter_available

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


def test_python_markers_in_handlers_and_cases() -> None:
    text = (
        "def work(x):\n"
        "    try:\n"
        "        pass\n"
        "    except KeyError:\n"
        "        pass\n"
        "    except ValueError:\n"
        "        # @touchpoint in-handler\n"
        "        def retry():\n"
        "            pass\n"
        "    match x:\n"
        "        case 1:\n"
        "            pass\n"
        "        case _:\n"
        "            # @touchpoint in-case\n"
        "            def fallback():\n"
        "                pass\n"
    )

    symbols = _symbols(text, "python")

    assert symbols["in-handler"] == ("work.retry", "function", 8, 9)
    assert symbols["in-case"] == ("work.fallback", "function", 15, 16)


def test_python_statement_reads_grow_linearly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Counting the statement positions read, not timing, shows whether each marker
    # scans the whole module body: 4,000 markers read 8 million of them that way.
    from mcp_server.touchpoints import symbols as module

    reads = 0

    def counted(function):  # type: ignore[no-untyped-def]
        def wrapper(node):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return function(node)

        return wrapper

    monkeypatch.setattr(module, "_python_start", counted(module._python_start))
    monkeypatch.setattr(module, "_python_end", counted(module._python_end))
    count = 4000
    text = "".join(f"# @touchpoint t{index}\ndef f{index}():\n    pass\n\n" for index in range(count))
    markers = [(4 * index + 1, 3) for index in range(count)]

    found = associate(text, "python", markers)

    assert [symbol.name if symbol else None for symbol in found[:2]] == ["f0", "f1"]
    assert found[-1] == Symbol(f"f{count - 1}", "function", 4 * count - 2, 4 * count - 1)
    assert reads < 40 * count
