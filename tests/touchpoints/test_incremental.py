"""Incremental extraction: re-extracting an edited file gives exactly what extraction from scratch gives."""

from __future__ import annotations

import ast
import logging
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Project
from mcp_server.events import make_event
from mcp_server.modules.touchpoints import TouchpointIndex
from mcp_server.touchpoints import Extractor, extract
from mcp_server.touchpoints.edits import common_prefix_length, common_suffix_length
from mcp_server.touchpoints.scanner import rescan_comments, scan_comments
from mcp_server.touchpoints.symbols import SymbolCache, associate, tree_sitter_available

ROOT = Path(__file__).resolve().parents[2]
# Real modules of this project, including long classes (Runtime, _Scanner, TouchpointIndex).
PYTHON_FILES = ("mcp_server/touchpoints/scanner.py", "mcp_server/runtime.py", "mcp_server/modules/touchpoints.py")
TSX_FILE = Path(__file__).parent / "fixtures" / "dashboard.tsx"

needs_tree_sitter = pytest.mark.skipif(not tree_sitter_available(), reason="tree-sitter-language-pack not installed")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


class _PythonEdits:
    """Random line edits of Python source: most keep it valid, some break it, as an agent's saves do."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.open_string: int | None = None

    def __call__(self, lines: list[str]) -> None:
        rng = self.rng
        if self.open_string is not None:
            # Close the triple-quoted string opened by an earlier edit, a few lines further down.
            at = min(len(lines), self.open_string + rng.randrange(1, 8))
            lines.insert(at, _indent(lines[min(at, len(lines) - 1)]) + '"""')
            self.open_string = None
            return
        at = rng.randrange(len(lines))
        indent = _indent(lines[at])
        kind = rng.randrange(11)
        if kind == 0:
            lines.insert(at, f"{indent}# @touchpoint added-{rng.randrange(40)} a marker added by an edit")
        elif kind == 1:
            marked = [index for index, line in enumerate(lines) if "# @touchpoint" in line]
            if marked:
                moved = lines.pop(rng.choice(marked)).strip()
                target = rng.randrange(len(lines))
                lines.insert(target, _indent(lines[target]) + moved)
        elif kind == 2:
            definitions = [index for index, line in enumerate(lines) if line.lstrip().startswith(("def ", "class "))]
            if definitions:
                index = rng.choice(definitions)
                lines[index] = lines[index].replace("def ", f"def renamed{rng.randrange(9)}_", 1)
                lines[index] = lines[index].replace("class ", f"class Renamed{rng.randrange(9)}", 1)
        elif kind == 3:
            lines.insert(at, indent + '"""')
            self.open_string = at
        elif kind == 4:
            del lines[at : at + rng.randrange(1, 4)]
        elif kind == 5:
            lines.insert(at, "")
        elif kind == 6:
            lines.insert(at, f"{indent}value = compute({rng.randrange(99)})  # an edited statement")
        elif kind == 7:
            lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
        elif kind == 8:
            tops = [index for index, line in enumerate(lines) if line.startswith(("def ", "class ", "@"))]
            if tops:
                index = rng.choice(tops)
                lines[index:index] = ["# @touchpoint inserted-function", "def inserted(value):", "    return value", "", ""]
        elif kind == 9:
            start = rng.randrange(len(lines))
            block = lines[start : start + rng.randrange(1, 20)]
            del lines[start : start + len(block)]
            target = rng.randrange(len(lines) + 1)
            lines[target:target] = block
        else:
            lines.insert(at, indent + rng.choice(["if ready:", "else:", "items = [", "call(first,", ")", "\\"]))


class _TsxEdits:
    """Random line edits of TSX source: markers, renames, JSX, generics, regular expressions and broken syntax."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def __call__(self, lines: list[str]) -> None:
        rng = self.rng
        at = rng.randrange(len(lines))
        indent = _indent(lines[at])
        kind = rng.randrange(9)
        if kind == 0:
            marker = rng.choice(["// @touchpoint t{} added", "/* @touchpoint b{} added */", "{{/* @touchpoint j{} */}}"])
            lines.insert(at, indent + marker.format(rng.randrange(30)))
        elif kind == 1:
            marked = [index for index, line in enumerate(lines) if "@touchpoint" in line]
            if marked:
                moved = lines.pop(rng.choice(marked))
                lines.insert(rng.randrange(len(lines)), moved)
        elif kind == 2:
            functions = [index for index, line in enumerate(lines) if "function " in line]
            if functions:
                index = rng.choice(functions)
                lines[index] = lines[index].replace("function ", f"function Renamed{rng.randrange(9)}", 1)
        elif kind == 3:
            lines.insert(at, indent + rng.choice([
                "const identity = <T,>(value: T) => value;",
                "if (low < high) { ratio = part / whole / 2; }",
                "const pattern = /a+b\\/c/g; const label = `x ${pattern} y`;",
                "return <p className=\"note\">{label}</p>;",
            ]))
        elif kind == 4:
            lines.insert(at, indent + rng.choice(["/*", "*/", "`", "<div>", "</div>", "'", "{", "}", "${", "<T>"]))
        elif kind == 5:
            del lines[at : at + rng.randrange(1, 4)]
        elif kind == 6:
            lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
        elif kind == 7:
            start = rng.randrange(len(lines))
            block = lines[start : start + rng.randrange(1, 20)]
            del lines[start : start + len(block)]
            target = rng.randrange(len(lines) + 1)
            lines[target:target] = block
        elif rng.random() < 0.5:
            closers = [index for index, line in enumerate(lines) if line.strip() in ("}", "};", ");")] or [at]
            index = rng.choice(closers)
            lines[index] += f" // @touchpoint trailing-{rng.randrange(20)}"
        else:
            lines.insert(at, indent + "<span>{item.label}</span>")


def _python_parses(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False
    return True


def _check_edits(
    path: str,
    text: str,
    edit: Callable[[list[str]], None],
    parses: Callable[[str], bool],
    rng: random.Random,
    steps: int,
) -> None:
    """Apply ``steps`` edits and compare each re-extraction with extraction from scratch.

    A version that does not parse is usually followed by the last one that did,
    so the file is broken now and then, as while an agent edits it, but not for good.
    """
    extractor = Extractor()
    lines = text.split("\n")
    last_good = list(lines)
    for step in range(steps):
        edit(lines)
        if parses("\n".join(lines)):
            last_good = list(lines)
        newline = "\r\n" if rng.random() < 0.05 else "\n"
        data = newline.join(lines).encode()

        incremental = extractor.extract(path, data)

        assert incremental == extract(path, data), f"{path}: step {step} differs from extraction from scratch"
        if lines != last_good and rng.random() < 0.6:
            lines[:] = last_good


def _with_markers(text: str, count: int, rng: random.Random) -> str:
    lines = text.split("\n")
    for index in sorted(rng.sample(range(len(lines)), count), reverse=True):
        lines.insert(index, f"{_indent(lines[index])}# @touchpoint sprinkled-{index} placed at random")
    return "\n".join(lines)


@pytest.mark.parametrize("relative", PYTHON_FILES)
@pytest.mark.parametrize("markers", [6, 40])
def test_python_edits_match_extraction(relative: str, markers: int, caplog: pytest.LogCaptureFixture) -> None:
    rng = random.Random(f"{relative}:{markers}")
    text = _with_markers((ROOT / relative).read_text(encoding="utf-8"), markers, rng)

    with caplog.at_level(logging.WARNING, logger="mcp_server.touchpoints"):
        _check_edits("module.py", text, _PythonEdits(rng), _python_parses, rng, steps=60)

    assert not caplog.records, "incremental extraction fell back to extraction from scratch"


@needs_tree_sitter
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tsx_edits_match_extraction(seed: int, caplog: pytest.LogCaptureFixture) -> None:
    from mcp_server.touchpoints.symbols import _parser

    rng = random.Random(seed)
    tsx = _parser("tsx")

    def parses(text: str) -> bool:
        return not tsx.parse(text.encode()).root_node.has_error

    with caplog.at_level(logging.WARNING, logger="mcp_server.touchpoints"):
        _check_edits("dashboard.tsx", TSX_FILE.read_text(encoding="utf-8"), _TsxEdits(rng), parses, rng, steps=80)

    assert not caplog.records


@pytest.mark.parametrize("language", ["python", "tsx", "html"])
def test_rescan_matches_scan(language: str) -> None:
    rng = random.Random(language)
    source = {"python": (ROOT / PYTHON_FILES[0]).read_text(encoding="utf-8"), "tsx": TSX_FILE.read_text(encoding="utf-8"),
              "html": '<p>x</p>\n<script type="module">\n' + TSX_FILE.read_text(encoding="utf-8") + "\n</script>\n"}[language]
    pieces = ["/*", "*/", "//", "#", "`", "${", "}", "<div>", "</div>", "<T,>", "x < y", " / 2 / ", "/re/g", "'", '"',
              '"""', "\n", "<!--", "-->", "<script>", "</script>", "@touchpoint"]
    scan = rescan_comments(source, language)
    for step in range(150):
        text = scan.text
        start = rng.randrange(len(text) + 1)
        end = min(len(text), start + rng.choice([0, 0, 1, 5, 40, 400]))
        edited = text[:start] + rng.choice(pieces) + text[end:]

        scan = rescan_comments(edited, language, scan)

        fresh = rescan_comments(edited, language)
        assert scan.spans == fresh.spans, f"step {step}"
        assert [(start, end) for start, end, _, _ in scan.spans] == [
            (span.start, span.end) for span in scan_comments(edited, language)
        ]


@pytest.mark.parametrize("language", ["python", "tsx"])
def test_rescan_checkpoints_match_scan(language: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint kept from an earlier scan must be a state the scanner really has
    # at that offset of the new text, or a later rescan that resumes there goes wrong.
    from mcp_server.touchpoints import scanner

    def states(text: str) -> dict[int, tuple[int, int]]:
        with monkeypatch.context() as patch:
            patch.setattr(scanner, "_CHECKPOINT_SPACING", 1)
            every: list[tuple[int, int, int, int]] = []
            scanner._Scanner(text).run_recording(language, 0, len(text), every)
        return {offset: (count, budget) for offset, count, budget, _ in every}

    rng = random.Random(language)
    source = (ROOT / PYTHON_FILES[1]).read_text(encoding="utf-8") if language == "python" else TSX_FILE.read_text(encoding="utf-8")
    lines = source.split("\n")
    scan = rescan_comments(source, language)
    for step in range(40):
        at = rng.randrange(len(lines))
        if rng.random() < 0.5:
            lines.insert(at, rng.choice(["// @touchpoint x", "# @touchpoint y", "x = a < b", "`", "/*", "*/", ""]))
        else:
            del lines[at : at + rng.randrange(1, 4)]
        text = "\n".join(lines)

        scan = rescan_comments(text, language, scan)

        truth = states(text)
        assert [point for point in scan.checkpoints if truth.get(point[0]) != (point[1], point[2])] == [], f"step {step}"


def _rescan_spans(old: str, new: str, language: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Return the comment spans of ``new`` rescanned from a scan of ``old``, and scanned from scratch."""
    rescanned = rescan_comments(new, language, rescan_comments(old, language))
    return [(start, end) for start, end, _, _ in rescanned.spans], [(span.start, span.end) for span in scan_comments(new, language)]


def test_rescan_rereads_code_before_comment() -> None:
    # After "a" the "/" on the third line divides and "//" opens a comment; after "("
    # it opens a regular expression. The long comment puts a checkpoint right before
    # that line, so only the code before the comment distinguishes the two.
    old = "let x = a\n// " + "c" * 600 + "\n/ 2 // @touchpoint m\n"
    new = old.replace("let x = a", "let x = (", 1)

    rescanned, scanned = _rescan_spans(old, new, "tsx")

    assert rescanned == scanned
    assert len(scanned) == 1


def test_rescan_after_undone_jsx_tag() -> None:
    # "<b" is read as a JSX tag until "(" shows it is not one. The checkpoint after the
    # long attribute value depends on that "(", which the edit turns into ">".
    old = 'x = <b c="' + "q" * 600 + '" d\n' + " " * 100 + "(1)\n// @touchpoint m\n"
    new = old.replace("(1)", ">1)", 1)

    rescanned, scanned = _rescan_spans(old, new, "tsx")

    assert rescanned == scanned
    assert scanned == []


def test_long_class_method_rename() -> None:
    methods = [f"    # @touchpoint step-{n}\n    def step_{n}(self):\n" + "        total = 1\n" * 30 for n in range(6)]
    text = "class Service:\n" + "\n".join(methods)
    extractor = Extractor()
    extractor.extract("service.py", text.encode())

    edited = text.replace("def step_3(", "def handle_3(")
    found = extractor.extract("service.py", edited.encode())

    assert found == extract("service.py", edited.encode())
    symbols = {touchpoint.name: touchpoint.symbol for touchpoint in found.touchpoints}
    assert symbols["step-3"] == "Service.handle_3"
    assert symbols["step-4"] == "Service.step_4"


def test_long_class_edit_keeps_kinds() -> None:
    body = "".join(f"    def method_{n}(self):\n        return {n}\n\n" for n in range(40))
    text = "@decorated\nclass Big(Base):\n    # @touchpoint head\n    '''Doc.'''\n" + body + "    # @touchpoint tail\n"
    text = text.replace("    def method_20(", "    # @touchpoint middle\n    def method_20(")
    extractor = Extractor()
    extractor.extract("big.py", text.encode())

    edited = text.replace("return 7\n", "return 7 + 1\n")
    found = extractor.extract("big.py", edited.encode())

    assert found == extract("big.py", edited.encode())
    by_name = {touchpoint.name: touchpoint for touchpoint in found.touchpoints}
    assert (by_name["middle"].symbol, by_name["middle"].symbol_kind) == ("Big.method_20", "method")
    assert (by_name["head"].symbol, by_name["head"].symbol_kind, by_name["head"].symbol_start) == ("Big", "class", 1)
    assert by_name["tail"].symbol is None  # after the class's last statement, as in a whole-module parse


def test_statement_after_long_class() -> None:
    # The lines after a long class belong to its piece until the next top-level
    # statement. A statement added there at column 0 is not part of the class.
    body = "".join(f"    # @touchpoint method-{n}\n    def method_{n}(self):\n        return {n}\n\n" for n in range(40))
    text = "class Big:\n" + body + "# @touchpoint next\n# a comment\ndef after():\n    pass\n"
    extractor = Extractor()
    extractor.extract("big.py", text.encode())

    edited = text.replace("# a comment\n", "flag = True\n# a comment\n")
    found = extractor.extract("big.py", edited.encode())

    assert found == extract("big.py", edited.encode())
    assert found.touchpoints[-1].name == "next"
    assert found.touchpoints[-1].symbol is None


PANEL = """export function Panel(props: { items: string[] }): JSX.Element {
  return (
    <div className="panel">
    </div>
  );
}
"""


@needs_tree_sitter
def test_comments_after_closing_brace() -> None:
    # Found by the random edits above: after these two edits, tree-sitter 0.26 parsing
    # incrementally attaches the two comments above "ins1" to the function before
    # them, while parsing from scratch attaches them to the module.
    first = (
        PANEL + "export function Ins(): JSX.Element {\n  const r = /a+b/g; const t = `x ${r}`;\n}\n"
        + PANEL + "// @touchpoint t24 added\n// @touchpoint ins6\n  <span>{item}</span>\n" + PANEL
    )
    second = first.replace("  const r = /a+b/g; const t = `x ${r}`;\n", "\n", 1)
    block = "// @touchpoint ins1\nexport function Ins(): JSX.Element {\n  const r = /a+b/g;\n  return <p>{r}</p>;\n}\n"
    third = second.replace("// @touchpoint ins6", block + "// @touchpoint ins6", 1)
    extractor = Extractor()

    found = [extractor.extract("panels.tsx", version.encode()) for version in (first, second, third)]

    assert found[-1] == extract("panels.tsx", third.encode())
    symbols = {touchpoint.name: (touchpoint.symbol, touchpoint.symbol_start) for touchpoint in found[-1].touchpoints}
    assert symbols["t24"] == ("Ins", 18)


@needs_tree_sitter
def test_tree_with_errors_not_kept() -> None:
    # Error recovery can build a different tree incrementally than from scratch, so
    # such a tree must not be the base of the next parse.
    cache = SymbolCache()
    associate("// @touchpoint a\nfunction f() {}\n", "tsx", [(1, 4)], cache)
    assert cache.tree is not None

    associate("// @touchpoint a\nfunction f() {\n", "tsx", [(1, 4)], cache)

    assert cache.tree is None
    assert cache.data is None


def test_extractor_state_bounded() -> None:
    extractor = Extractor(max_files=2)

    for name in ("a.py", "b.py", "c.py"):
        extractor.extract(name, b"# @touchpoint x\ndef f():\n    pass\n")

    assert list(extractor._states) == ["b.py", "c.py"]


def test_extractor_keeps_nothing_without_markers() -> None:
    extractor = Extractor()

    extractor.extract("a.py", b"def f():\n    pass\n")
    extractor.extract("b.py", b"# @touchpoint x\n")
    extractor.forget("b.py")

    assert not extractor._states


def test_extractor_rejects_zero_files() -> None:
    with pytest.raises(ValueError, match="max_files must be at least 1"):
        Extractor(max_files=0)


@pytest.mark.parametrize(
    ("old", "new", "prefix", "suffix"),
    [
        ("", "", 0, 0),
        ("abc", "abc", 3, 0),
        ("abc", "abxc", 2, 1),
        ("aaaa", "aa", 2, 0),
        ("x" * 9000 + "a" + "y" * 5000, "x" * 9000 + "b" + "y" * 5000, 9000, 5000),
    ],
)
def test_common_prefix_and_suffix(old: str, new: str, prefix: int, suffix: int) -> None:
    found = common_prefix_length(old, new)

    assert found == prefix
    assert common_suffix_length(old, new, min(len(old), len(new)) - found) == suffix
    assert common_prefix_length(old.encode(), new.encode()) == prefix


def test_index_follows_edited_file(project: Project) -> None:
    runtime = project.runtime()
    try:
        project.write("src/shop.py", "# @touchpoint cart-total\ndef total(cart):\n    return sum(cart)\n")
        runtime.log.append([make_event("file.saved", {"path": "src/shop.py"}, source="test")])
        runtime.catch_up()
        project.write("src/shop.py", "# @touchpoint cart-total\ndef cart_total(cart):\n    return sum(cart)\n")
        runtime.log.append([make_event("file.saved", {"path": "src/shop.py"}, source="test")])
        runtime.catch_up()

        rows = TouchpointIndex.query(runtime.log.connection, name="cart-total")
    finally:
        runtime.close()

    assert [(row.line, row.symbol) for row in rows] == [(1, "cart_total")]
