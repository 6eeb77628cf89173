"""Marker grammar, file checks, notebooks and the public surface of mcp_server.touchpoints."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

import mcp_server.touchpoints as touchpoints
from mcp_server.touchpoints.languages import EXTENSIONS, FILENAMES, KERNEL_LANGUAGES, LANGUAGES, NOTEBOOK
from mcp_server.touchpoints import (
    MAX_FILE_BYTES,
    MAX_NOTEBOOK_BYTES,
    Extraction,
    Touchpoint,
    extract,
    extract_text,
    language_for_path,
)


def _extract_file(root: Path, relative: str, content: str | bytes) -> Extraction:
    """Write ``content`` under ``root`` and extract it back from disk."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return extract(relative, path.read_bytes())


def _names(extraction: Extraction) -> list[str]:
    return [touchpoint.name for touchpoint in extraction.touchpoints]


def test_public_names() -> None:
    assert sorted(touchpoints.__all__) == sorted(
        [
            "EXTRACTOR_VERSION",
            "MAX_FILE_BYTES",
            "MAX_NOTEBOOK_BYTES",
            "Extraction",
            "Extractor",
            "Touchpoint",
            "extract",
            "extract_text",
            "language_for_path",
        ]
    )
    for name in touchpoints.__all__:
        assert hasattr(touchpoints, name), name


def test_touchpoint_fields(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "src/a.ts", "let a = 1;\n  /* @touchpoint pay.flow:v2/step Charges the card */\n")

    assert extraction.touchpoints == (
        Touchpoint(
            name="pay.flow:v2/step",
            line=2,
            column=6,
            description="Charges the card",
            language="typescript",
            cell=None,
        ),
    )


def test_marker_after_word_ignored(tmp_path: Path) -> None:
    source = (
        "// mail ops@touchpoint.example\n"
        "// x.@touchpoint dotted\n"
        "// @@touchpoint doubled\n"
        "// a@touchpoint glued\n"
        "// @touchpoints plural\n"
        "// @touchpoint:colon\n"
        "//@touchpoint tight\n"
    )
    extraction = _extract_file(tmp_path, "a.js", source)

    assert _names(extraction) == ["tight"]


def test_marker_prefix_punctuation(tmp_path: Path) -> None:
    source = (
        "/**\n * @touchpoint in-javadoc\n */\n"
        "/*@touchpoint after-opener*/\n"
        "//!@touchpoint after-bang\n"
        "{/*@touchpoint after-brace*/}\n"
    )
    extraction = _extract_file(tmp_path, "a.jsx", source)

    assert _names(extraction) == ["in-javadoc", "after-opener", "after-bang", "after-brace"]


def test_name_trailing_punctuation(tmp_path: Path) -> None:
    source = (
        "# @touchpoint end-of-sentence.\n"
        "# @touchpoint with-colon: does a thing\n"
        "# @touchpoint slash/ then text\n"
        "# @touchpoint dashes-- and text\n"
    )
    extraction = _extract_file(tmp_path, "a.py", source)

    assert _names(extraction) == ["end-of-sentence", "with-colon", "slash", "dashes"]
    assert [touchpoint.description for touchpoint in extraction.touchpoints] == [
        "",
        "does a thing",
        "then text",
        "and text",
    ]


def test_description_closers_removed(tmp_path: Path) -> None:
    source = (
        "<div>\n"
        "  <!-- @touchpoint html-one Renders the header -->\n"
        "  <!--@touchpoint html-tight-->\n"
        "</div>\n"
    )
    jsx = "x = <a>{/* @touchpoint jsx-one - Renders the cart */}</a>;\n/* @touchpoint c-one: Sums */\n"
    html = _extract_file(tmp_path, "a.html", source)
    script = _extract_file(tmp_path, "a.jsx", jsx)

    assert [(t.name, t.description) for t in html.touchpoints] == [
        ("html-one", "Renders the header"),
        ("html-tight", ""),
    ]
    assert [(t.name, t.description) for t in script.touchpoints] == [
        ("jsx-one", "Renders the cart"),
        ("c-one", "Sums"),
    ]


def test_description_stops_at_line_end(tmp_path: Path) -> None:
    source = "/*\n * @touchpoint multi First line\n * Second line\n */\n"
    extraction = _extract_file(tmp_path, "a.c", source)

    assert extraction.touchpoints[0].description == "First line"


def test_nameless_marker_warning(tmp_path: Path) -> None:
    source = "x = 1\n# @touchpoint\n# @touchpoint   \n# @touchpoint -bad\n# @touchpoint good\n"
    extraction = _extract_file(tmp_path, "a.py", source)

    assert _names(extraction) == ["good"]
    assert extraction.warnings == (
        "line 2: @touchpoint without a name",
        "line 3: @touchpoint without a name",
        "line 4: @touchpoint without a name",
    )


def test_nameless_warnings_capped(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "a.py", "# @touchpoint\n" * 25)

    assert len(extraction.warnings) == 11
    assert extraction.warnings[-1] == "15 more @touchpoint markers without a name"


def test_several_markers_in_one_comment(tmp_path: Path) -> None:
    source = "/*\n  @touchpoint first one\n\n  @touchpoint second two @touchpoint third\n*/\n"
    extraction = _extract_file(tmp_path, "a.go", source)

    assert [(t.name, t.line, t.column) for t in extraction.touchpoints] == [
        ("first", 2, 3),
        ("second", 4, 3),
        ("third", 4, 26),
    ]


def test_marker_at_end_without_newline(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "a.rb", "x = 1 # @touchpoint last")

    assert _names(extraction) == ["last"]


def test_unterminated_string_ends_at_line(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "a.py", "s = 'never closed\n# @touchpoint after\n")

    assert _names(extraction) == ["after"]


def test_unterminated_block_runs_to_end(tmp_path: Path) -> None:
    source = "int x;\n/* open\n@touchpoint inside\n"
    python = 'x = """\n# @touchpoint no-string\n'
    c_file = _extract_file(tmp_path, "a.c", source)
    py_file = _extract_file(tmp_path, "b.py", python)

    assert _names(c_file) == ["inside"]
    assert _names(py_file) == []


def test_jsx_misread_not_duplicated(tmp_path: Path) -> None:
    # "<b c={...};" is not a JSX tag after all, so the comment inside it is
    # reported once, from the second pass over the same text.
    source = "a = <b c={/* @touchpoint once */ 1}; d\n"
    extraction = _extract_file(tmp_path, "a.js", source)

    assert _names(extraction) == ["once"]


def test_two_heredocs_on_one_line(tmp_path: Path) -> None:
    source = "cat <<A <<'B' # @touchpoint opener-line\n# @touchpoint no-1\nA\n# @touchpoint no-2\nB\n# @touchpoint after\n"
    extraction = _extract_file(tmp_path, "a.sh", source)

    assert _names(extraction) == ["opener-line", "after"]


def test_indented_heredoc_terminator(tmp_path: Path) -> None:
    source = "if x; then\n\tcat <<-EOF\n\t# @touchpoint no-1\n\tEOF\nfi # @touchpoint after\n"
    extraction = _extract_file(tmp_path, "a.bash", source)

    assert _names(extraction) == ["after"]


def test_unknown_extension_skipped(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "notes.xyz", "# @touchpoint nothing\n")

    assert extraction.skipped == "unknown-language"
    assert extraction.language is None
    assert extraction.touchpoints == ()


def test_size_limit_boundary(tmp_path: Path) -> None:
    marker = b"# @touchpoint edge\n"
    at_limit = marker + b"#" * (MAX_FILE_BYTES - len(marker))
    over_limit = at_limit + b"\n"

    assert len(at_limit) == MAX_FILE_BYTES
    assert _names(_extract_file(tmp_path, "at.py", at_limit)) == ["edge"]
    assert _extract_file(tmp_path, "over.py", over_limit).skipped == "size"


def test_notebook_limit_larger(tmp_path: Path) -> None:
    outputs = [{"output_type": "display_data", "data": {"image/png": "A" * (MAX_FILE_BYTES + 1)}}]
    notebook = {"cells": [{"cell_type": "code", "source": "# @touchpoint plotted\n", "outputs": outputs}]}
    extraction = _extract_file(tmp_path, "plots.ipynb", json.dumps(notebook))

    assert MAX_NOTEBOOK_BYTES > MAX_FILE_BYTES
    assert extraction.skipped is None
    assert _names(extraction) == ["plotted"]


def test_notebook_cell_languages(tmp_path: Path) -> None:
    notebook = {
        "metadata": {"kernelspec": {"language": "R"}},
        "cells": [
            {"cell_type": "code", "source": "x <- '#' # @touchpoint r-cell\n"},
            {"cell_type": "code", "metadata": {"vscode": {"languageId": "javascript"}}, "source": "// @touchpoint js-cell"},
            {"cell_type": "code", "source": 7},
        ],
    }
    extraction = _extract_file(tmp_path, "mixed.ipynb", json.dumps(notebook))

    assert [(t.name, t.language, t.cell) for t in extraction.touchpoints] == [
        ("r-cell", "r", 0),
        ("js-cell", "javascript", 1),
    ]
    assert extraction.warnings == ("cell 2: no 'source' string or list of strings; cell not scanned",)


def test_notebook_unsupported_kernel(tmp_path: Path) -> None:
    notebook = {
        "metadata": {"kernelspec": {"language": "cobol"}},
        "cells": [
            {"cell_type": "code", "source": "* @touchpoint no-code\n"},
            {"cell_type": "markdown", "source": "<!-- @touchpoint md-still-read -->\n"},
        ],
    }
    extraction = _extract_file(tmp_path, "old.ipynb", json.dumps(notebook))

    assert _names(extraction) == ["md-still-read"]
    assert extraction.warnings == ("kernel language 'cobol' is not supported; code cells not scanned",)


def test_notebook_without_cells(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "v3.ipynb", json.dumps({"worksheets": [], "note": "@touchpoint x"}))

    assert extraction.skipped == "invalid-notebook"
    assert extraction.warnings == ("notebook has no 'cells' list; only nbformat 4 notebooks are read",)


def test_notebook_deeply_nested_json(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "deep.ipynb", "[" * 100_000 + '"@touchpoint x"')

    assert extraction.skipped == "invalid-notebook"
    assert extraction.warnings[0].startswith("notebook is not valid JSON")


def test_notebook_crlf_sources(tmp_path: Path) -> None:
    notebook = {"cells": [{"cell_type": "code", "source": ["a = 1\r\n", "b = 2\r\n", "# @touchpoint third-line\r\n"]}]}
    extraction = _extract_file(tmp_path, "win.ipynb", json.dumps(notebook))

    assert [(t.name, t.line, t.cell) for t in extraction.touchpoints] == [("third-line", 3, 0)]


def test_extract_text_unknown_language() -> None:
    with pytest.raises(ValueError, match="'klingon'"):
        extract_text("# @touchpoint x", "klingon")


def test_extract_text_invalid_notebook() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        extract_text("@touchpoint {", "jupyter")


def test_extract_text_line_endings() -> None:
    found = extract_text("\ufeffa\r\rb // @touchpoint third\r", "go")

    assert [(t.name, t.line, t.column) for t in found] == [("third", 3, 6)]


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("src/app.py", "python"),
        ("web/App.TSX", "tsx"),
        ("lib\\win\\mod.rs", "rust"),
        ("include/x.h", "c"),
        ("Dockerfile", "dockerfile"),
        ("docker/Dockerfile.prod", "dockerfile"),
        ("build.dockerfile", "dockerfile"),
        ("Makefile", "makefile"),
        ("GNUmakefile", "makefile"),
        ("CMakeLists.txt", "cmake"),
        (".gitignore", "gitignore"),
        ("sub/.dockerignore", "gitignore"),
        (".bashrc", "shell"),
        ("infra/main.tf", "hcl"),
        ("analysis.ipynb", "jupyter"),
        ("README.md", "markdown"),
        ("Gemfile", "ruby"),
        ("notes.txt", None),
        ("LICENSE", None),
        (".hidden", None),
        ("archive.tar.gz", None),
    ],
)
def test_language_for_path(path: str, language: str | None) -> None:
    assert language_for_path(path) == language


def test_language_tables_consistent() -> None:
    mapped = set(EXTENSIONS.values()) | set(FILENAMES.values()) | set(KERNEL_LANGUAGES.values())
    embedded = {
        language
        for syntax in LANGUAGES.values()
        for block in syntax.embedded
        for language in [block.language, *(value for _, value in block.by_attribute)]
    }

    assert mapped - set(LANGUAGES) == {NOTEBOOK}
    assert embedded <= set(LANGUAGES)
    for name, syntax in LANGUAGES.items():
        assert syntax.name == name


_FUZZ_ALPHABET = list("ab_1 \t\n\\\"'`/*#-;%<>{}[]()=$@!?:|~,.") + ["@touchpoint ", "<!--", "-->", "${", "#{"]
_VALID_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:/-]*")


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_random_input_never_raises(language: str) -> None:
    generator = random.Random(f"touchpoints-{language}")
    for _ in range(30):
        text = "".join(generator.choice(_FUZZ_ALPHABET) for _ in range(400))
        found = extract_text(text, language)

        for touchpoint in found:
            assert _VALID_NAME.fullmatch(touchpoint.name), touchpoint
            assert not touchpoint.name.endswith((".", ":", "/", "-")), touchpoint
            assert touchpoint.line >= 1, touchpoint
            assert touchpoint.column >= 1, touchpoint
            line_text = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[touchpoint.line - 1]
            assert line_text[touchpoint.column - 1 :].startswith("@touchpoint"), touchpoint
