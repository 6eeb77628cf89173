"""Touchpoint extraction from real files: comments found, strings and markup text ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_server.touchpoints import Extraction, extract, extract_text


def _extract_file(root: Path, relative: str, content: str | bytes) -> Extraction:
    """Write ``content`` under ``root`` and extract it back from disk."""
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes(content)
    return extract(relative, path.read_bytes())


def _names_and_lines(extraction: Extraction) -> list[tuple[str, int]]:
    return [(touchpoint.name, touchpoint.line) for touchpoint in extraction.touchpoints]


LABELS_JS = (
    "const labels = {\n"
    '  "@touchpoint checkout": "not a comment",\n'
    "};\n"
    'const msg = "see @touchpoint payments";\n'
    "// @touchpoint auth-flow\n"
    "const t = `@touchpoint tmpl`; /* @touchpoint inline-block */\n"
    "const n = 1; // mail ops@touchpoint.example for access\n"
)

FMT_PY = (
    'PATTERN = "# @touchpoint not-me"\n'
    "x = 1  # @touchpoint real-one\n"
    "TEMPLATE = '''\n"
    "# @touchpoint inside-string\n"
    "'''\n"
    'y = f"{x} # @touchpoint f-string"\n'
)

CART_TSX = (
    "export function Cart() {\n"
    "  return (\n"
    "    <div>\n"
    "      {/* @touchpoint cart-render */}\n"
    "      {/*\n"
    "        @touchpoint cart-empty-state\n"
    "      */}\n"
    "      <p>Use @touchpoint tags in docs</p>\n"
    "      <span>// @touchpoint jsx-text</span>\n"
    "    </div>\n"
    "  );\n"
    "}\n"
    "// @touchpoint cart-module\n"
)


def test_strings_not_comments_js(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "src/labels.js", LABELS_JS)

    assert _names_and_lines(extraction) == [("auth-flow", 5), ("inline-block", 6)]
    assert extraction.skipped is None
    assert extraction.warnings == ()


def test_strings_not_comments_python(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "tools/fmt.py", FMT_PY)

    assert _names_and_lines(extraction) == [("real-one", 2)]
    assert extraction.warnings == ()


def test_docstrings_are_scanned(tmp_path: Path) -> None:
    source = (
        '"""Module docstring.\n'
        "\n"
        "@touchpoint doc-module Module level\n"
        '"""\n'
        "\n"
        "class Cart:\n"
        "    r'''@touchpoint doc-class'''\n"
        "\n"
        "    def total(self) -> int:\n"
        "        # a comment between the header and the docstring\n"
        '        """Return the total.\n'
        "\n"
        "        @touchpoint doc-name Sums the lines\n"
        '        """\n'
        "        return 0\n"
        "\n"
        "LIMIT = 3\n"
        '"""Attribute docstring: @touchpoint doc-attribute"""\n'
    )
    extraction = _extract_file(tmp_path, "pkg/cart.py", source)

    assert _names_and_lines(extraction) == [
        ("doc-module", 3),
        ("doc-class", 7),
        ("doc-name", 13),
        ("doc-attribute", 18),
    ]
    assert extraction.touchpoints[2].description == "Sums the lines"


def test_non_docstring_triple_quotes_ignored(tmp_path: Path) -> None:
    source = (
        'QUERY = """\n# @touchpoint no-assignment\n"""\n'
        'call(\n    """@touchpoint no-argument""",\n)\n'
        "def f():\n"
        '    return """\n    @touchpoint no-return\n    """\n'
        'data = b"""\n@touchpoint no-bytes\n"""\n'
        'f"""@touchpoint no-fstring"""\n'
        'x = 1 + \\\n    """@touchpoint no-continuation"""\n'
        "# @touchpoint after-strings\n"
    )
    extraction = _extract_file(tmp_path, "pkg/strings.py", source)

    assert [touchpoint.name for touchpoint in extraction.touchpoints] == ["after-strings"]


def test_jsx_comments_and_text(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "src/Cart.tsx", CART_TSX)

    assert _names_and_lines(extraction) == [
        ("cart-render", 4),
        ("cart-empty-state", 6),
        ("cart-module", 13),
    ]
    assert [touchpoint.column for touchpoint in extraction.touchpoints] == [11, 9, 4]
    assert {touchpoint.language for touchpoint in extraction.touchpoints} == {"tsx"}


def test_jsx_nested_elements(tmp_path: Path) -> None:
    source = (
        "const list = items.map((item) => (\n"
        '  <li key={item.id /* @touchpoint jsx-attribute */} title="// @touchpoint no-attr">\n'
        "    <>it's // @touchpoint no-fragment-text</>\n"
        "    {cond && <b>{`${item.name}`} // @touchpoint no-inner-text</b>}\n"
        "    <img src={src} />\n"
        "  </li>\n"
        "));\n"
        "const ratio = a < b ? 1 : 2; // @touchpoint after-jsx\n"
    )
    extraction = _extract_file(tmp_path, "src/List.jsx", source)

    assert _names_and_lines(extraction) == [("jsx-attribute", 2), ("after-jsx", 8)]


def test_non_utf8_decoded_as_latin1(tmp_path: Path) -> None:
    data = b"/* Auteur : Fran\xe7ois */\n/* @touchpoint legacy-io */\nint x;\n"
    extraction = _extract_file(tmp_path, "src/legacy.c", data)

    assert _names_and_lines(extraction) == [("legacy-io", 2)]
    assert len(extraction.warnings) == 1
    assert "UTF-8" in extraction.warnings[0]
    assert extraction.skipped is None


def test_png_skipped_as_binary(tmp_path: Path) -> None:
    data = b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" + b"# @touchpoint zzz\n" + b"\x00\xff\x00\xff"
    extraction = _extract_file(tmp_path, "assets/logo.png", data)

    assert extraction.skipped == "binary"
    assert extraction.touchpoints == ()
    assert extraction.language is None


def test_python_with_nul_skipped(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "src/blob.py", b"# @touchpoint hidden\nx = '\x00'\n")

    assert extraction.skipped == "binary"
    assert extraction.touchpoints == ()
    assert extraction.language == "python"


def test_unclosed_openers_no_touchpoints(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "dist/broken.min.js", "/*" * 500_000)

    assert extraction.touchpoints == ()
    assert extraction.skipped is None


def test_unclosed_openers_scanned_in_full(tmp_path: Path) -> None:
    # The marker at the end defeats the no-marker shortcut, so the scanner walks
    # all 500,000 openers. In JavaScript "/*/*/" closes, so the pairs close in turn.
    js = _extract_file(tmp_path, "dist/broken.js", "/*" * 500_000 + "\n// @touchpoint tail")
    rust = _extract_file(tmp_path, "dist/broken.rs", "/*" * 500_000 + "\n@touchpoint inside")

    assert _names_and_lines(js) == [("tail", 2)]
    assert _names_and_lines(rust) == [("inside", 2)]


def test_generated_file_touchpoints(tmp_path: Path) -> None:
    lines = [
        f"# @touchpoint t{(n - 1) // 2000}\n" if (n - 1) % 2000 == 0 else f"x_{n} = {n}\n"
        for n in range(1, 200_001)
    ]
    extraction = _extract_file(tmp_path, "gen/big.py", "".join(lines))

    assert len(extraction.touchpoints) == 100
    assert _names_and_lines(extraction) == [(f"t{k}", 1 + 2000 * k) for k in range(100)]


def test_huge_minified_file_skipped(tmp_path: Path) -> None:
    chunk = 'var s="/*"+\'*/\'+"//";'
    content = chunk * (5_000_000 // len(chunk)) + "/* @touchpoint vendor-shim */"
    extraction = _extract_file(tmp_path, "dist/vendor.min.js", content)

    assert extraction.skipped == "size"
    assert extraction.touchpoints == ()
    assert extraction.language == "javascript"


# Each row: file name, source, names expected in order. Every source hides
# markers in strings or other non-comment text (names starting "no-") and then
# has at least one real comment, which shows that the literal before it closed.
LANGUAGE_CASES = [
    ("a.py", "# @touchpoint py-line\n", ["py-line"]),
    (
        "b.py",
        "s = \"# @touchpoint no-1\"\nt = '@touchpoint no-2'\nu = r'\\'# @touchpoint no-3'\n# @touchpoint after\n",
        ["after"],
    ),
    ("a.js", "// @touchpoint js-line\n/** @touchpoint js-block */\n", ["js-line", "js-block"]),
    (
        "b.js",
        "const a = \"// @touchpoint no-1\";\nconst b = '/* @touchpoint no-2 */';\n"
        'const c = `${x} // @touchpoint no-3 ${"}"} ${`/* ${y} */`}`;\n'
        "const e = `${ a /* ` */ } // @touchpoint no-5`;\n"
        "const d = /x\\/* @touchpoint no-4/g.test(s) / 2;\n// @touchpoint after\n",
        ["after"],
    ),
    ("a.jsx", "const el = <div>{/* @touchpoint jsx-block */}</div>;\n", ["jsx-block"]),
    ("b.jsx", "const el = <p>// @touchpoint no-1 it's</p>;\nconst s = \"@touchpoint no-2\"; // @touchpoint after\n", ["after"]),
    ("a.ts", "let x: Array<string> = []; /* @touchpoint ts-block */\n// @touchpoint ts-line\n", ["ts-block", "ts-line"]),
    ("b.ts", 'const a = <any>"// @touchpoint no-1";\nconst t = `@touchpoint no-2`;\n// @touchpoint after\n', ["after"]),
    (
        "a.tsx",
        "const f = <T,>(x: T) => x; // @touchpoint tsx-generic\n"
        "const g = <T extends object>(x: T) => x; // @touchpoint tsx-extends\n"
        "type H = <T>(x: T) => T; // @touchpoint tsx-type\n"
        "const e = <b>{/* @touchpoint tsx-block */}</b>;\n",
        ["tsx-generic", "tsx-extends", "tsx-type", "tsx-block"],
    ),
    (
        "b.tsx",
        "const e = <b title=\"// @touchpoint no-1\">// @touchpoint no-2</b>;\nconst s = '@touchpoint no-3';\n"
        "// @touchpoint after\n",
        ["after"],
    ),
    ("a.go", "// @touchpoint go-line\n/* @touchpoint go-block */\n", ["go-line", "go-block"]),
    ("b.go", "s := `\n// @touchpoint no-1\n`\nr := '\"'\nq := \"// @touchpoint no-2\"\n// @touchpoint after\n", ["after"]),
    ("a.rs", "/* outer /* inner */ @touchpoint rs-nested */\n/// @touchpoint rs-doc\n", ["rs-nested", "rs-doc"]),
    (
        "b.rs",
        'let a = r#"a " // @touchpoint no-1 "#;\n'
        "fn f<'a>(x: &'a str) -> char { '\"' } // @touchpoint after-1\n"
        'let b = "multi\n// @touchpoint no-2\n";\n// @touchpoint after-2\n',
        ["after-1", "after-2"],
    ),
    ("a.java", "// @touchpoint java-line\n/** @touchpoint java-doc */\n", ["java-line", "java-doc"]),
    (
        "b.java",
        'String t = """\n  // @touchpoint no-1\n  """;\nchar q = \'"\';\nString s = "/* @touchpoint no-2";\n'
        "// @touchpoint after\n",
        ["after"],
    ),
    ("a.kt", "/* a /* b */ @touchpoint kt-nested */\n// @touchpoint kt-line\n", ["kt-nested", "kt-line"]),
    (
        "b.kt",
        'val s = "${"\\"" + x} // @touchpoint no-1"\nval t = """\n// @touchpoint no-2 ${"}"}\n"""\n// @touchpoint after\n',
        ["after"],
    ),
    ("a.c", "/* @touchpoint c-block */\n// @touchpoint c-line\n", ["c-block", "c-line"]),
    (
        "b.c",
        'char *s = "/* @touchpoint no-1 */";\nchar *m = "line \\\n// @touchpoint no-2";\n'
        "char q = '\"'; // @touchpoint after\n",
        ["after"],
    ),
    ("a.cpp", "int n = 1'000; // @touchpoint cpp-line\n", ["cpp-line"]),
    ("b.cpp", 'auto r = R"x(\n// @touchpoint no-1 )" still\n)x";\n// @touchpoint after\n', ["after"]),
    ("a.cs", "/// @touchpoint cs-doc\n/* @touchpoint cs-block */\n", ["cs-doc", "cs-block"]),
    (
        "b.cs",
        'var v = @"C:\\path\\"" // @touchpoint no-1";\nvar r = """\n  // @touchpoint no-2 "" \n  """;\n'
        "// @touchpoint after\n",
        ["after"],
    ),
    ("a.swift", "/* a /* b */ @touchpoint swift-nested */\n", ["swift-nested"]),
    (
        "b.swift",
        'let s = #"raw "// @touchpoint no-1" "#\nlet m = """\n// @touchpoint no-2\n"""\n// @touchpoint after\n',
        ["after"],
    ),
    ("a.scala", "/* a /* b */ @touchpoint scala-nested */\n", ["scala-nested"]),
    ("b.scala", "val s = \"\"\"// @touchpoint no-1\"\"\"\nval c = '\"'\nval sym = 'foo // @touchpoint after\n", ["after"]),
    ("a.dart", "/// @touchpoint dart-doc\n", ["dart-doc"]),
    (
        "b.dart",
        "var s = r'// @touchpoint no-1';\nvar t = '${a[\"k\"]} // @touchpoint no-2';\n// @touchpoint after\n",
        ["after"],
    ),
    ("a.groovy", "// @touchpoint groovy-line\n", ["groovy-line"]),
    ("b.gradle", "def s = \"\"\"\n// @touchpoint no-1 ${x}\n\"\"\"\ndef t = '/* @touchpoint no-2 */'\n// @touchpoint after\n", ["after"]),
    ("a.rb", "# @touchpoint rb-line\n=begin\n@touchpoint rb-block\n=end\n", ["rb-line", "rb-block"]),
    (
        "b.rb",
        's = "#{x} # @touchpoint no-1"\ntext = <<~EOS # @touchpoint after-opener\n  # @touchpoint no-2\n  EOS\n'
        "# @touchpoint after\n",
        ["after-opener", "after"],
    ),
    (
        "a.php",
        "<?php\n// @touchpoint php-line\n# @touchpoint php-hash\n/* @touchpoint php-block */\n",
        ["php-line", "php-hash", "php-block"],
    ),
    (
        "b.php",
        "<p>Don't</p>\n<?php\n$s = \"// @touchpoint no-1\";\n$h = <<<EOT\n# @touchpoint no-2\nEOT;\n"
        "#[Attribute] // @touchpoint after\n?>\n<!-- @touchpoint php-html -->\n",
        ["after", "php-html"],
    ),
    ("a.sh", "# @touchpoint sh-line\necho hi # @touchpoint sh-trailing\n", ["sh-line", "sh-trailing"]),
    (
        "b.sh",
        "echo \"# @touchpoint no-1\" '# @touchpoint no-2' a#b ${#arr} @touchpoint no-3\n"
        "cat <<'EOF'\n# @touchpoint no-4\nEOF\n# @touchpoint after\n",
        ["after"],
    ),
    ("a.ps1", "# @touchpoint ps-line\n<#\n@touchpoint ps-block\n#>\n", ["ps-line", "ps-block"]),
    ("b.ps1", '$s = "# @touchpoint no-1 `" still"\n$h = @"\n# @touchpoint no-2\n"@\n# @touchpoint after\n', ["after"]),
    ("a.sql", "-- @touchpoint sql-line\n/* @touchpoint sql-block */\n", ["sql-line", "sql-block"]),
    (
        "b.sql",
        "SELECT 'it''s -- @touchpoint no-1' AS a, \"col -- @touchpoint no-2\";\n"
        "CREATE FUNCTION f() AS $body$\n-- @touchpoint no-3\n$body$;\n-- @touchpoint after\n",
        ["after"],
    ),
    (
        "a.html",
        "<!-- @touchpoint html-comment -->\n<script>\n// @touchpoint html-script\n</script>\n"
        "<style>/* @touchpoint html-style */</style>\n",
        ["html-comment", "html-script", "html-style"],
    ),
    (
        "b.html",
        "<p>// @touchpoint no-1 it's</p>\n<script>const s = \"<!-- @touchpoint no-2 -->\";</script>\n"
        '<script type="text/x-template">// @touchpoint no-3</script>\n<!-- @touchpoint after -->\n',
        ["after"],
    ),
    ("a.xml", "<?xml version=\"1.0\"?>\n<!-- @touchpoint xml-comment -->\n", ["xml-comment"]),
    ("b.xml", "<a><![CDATA[<!-- @touchpoint no-1 -->]]></a>\n<!-- @touchpoint after -->\n", ["after"]),
    (
        "a.vue",
        "<template>\n  <!-- @touchpoint vue-template -->\n</template>\n<script setup lang=\"ts\">\n"
        "const x = <number>y; // @touchpoint vue-script\n</script>\n<style lang=\"scss\">\n// @touchpoint vue-style\n</style>\n",
        ["vue-template", "vue-script", "vue-style"],
    ),
    (
        "b.vue",
        "<template><p>// @touchpoint no-1</p></template>\n<script>\nconst s = '<!-- @touchpoint no-2 -->';\n"
        "</script>\n<!-- @touchpoint after -->\n",
        ["after"],
    ),
    ("a.svelte", "<script>\n  /* @touchpoint svelte-script */\n</script>\n<!-- @touchpoint svelte-markup -->\n", ["svelte-script", "svelte-markup"]),
    ("b.svelte", '<h1>"// @touchpoint no-1"</h1>\n<script>let s = "/* @touchpoint no-2 */";</script>\n<!-- @touchpoint after -->\n', ["after"]),
    ("a.css", "/* @touchpoint css-block */\n", ["css-block"]),
    (
        "b.css",
        'a { background: url(http://x.test/a.png); content: "/* @touchpoint no-1 */"; }\n'
        "// @touchpoint no-2\n/* @touchpoint after */\n",
        ["after"],
    ),
    ("a.scss", "// @touchpoint scss-line\n/* @touchpoint scss-block */\n", ["scss-line", "scss-block"]),
    ("b.scss", 'a { b: url(//cdn.test/x.png); content: "// @touchpoint no-1"; } // @touchpoint after\n', ["after"]),
    ("a.less", "// @touchpoint less-line\n", ["less-line"]),
    ("b.less", '@s: "// @touchpoint no-1"; // @touchpoint after\n', ["after"]),
    ("a.yaml", "# @touchpoint yaml-line\nkey: value # @touchpoint yaml-trailing\n", ["yaml-line", "yaml-trailing"]),
    (
        "b.yml",
        "a: \"# @touchpoint no-1\"\nb: 'it''s # @touchpoint no-2'\nc: it's # @touchpoint after-apostrophe\n"
        "d: |\n  # @touchpoint no-3\n  more\ne: x#@touchpoint no-4\n"
        "steps:\n  - run: >-  # @touchpoint after-indicator\n      echo # @touchpoint no-5\n    name: x\n"
        "# @touchpoint after\n",
        ["after-apostrophe", "after-indicator", "after"],
    ),
    ("a.toml", "# @touchpoint toml-line\n", ["toml-line"]),
    ("b.toml", "a = \"# @touchpoint no-1\"\nb = '''\n# @touchpoint no-2\n'''\n# @touchpoint after\n", ["after"]),
    ("a.ini", "; @touchpoint ini-semicolon\n# @touchpoint ini-hash\n", ["ini-semicolon", "ini-hash"]),
    ("b.ini", "url = http://x.test/#@touchpoint no-1\nkey = value ; @touchpoint no-2\n; @touchpoint after\n", ["after"]),
    ("Dockerfile", "# @touchpoint docker-line\nFROM alpine\n", ["docker-line"]),
    ("Dockerfile.dev", 'RUN echo "# @touchpoint no-1" # @touchpoint no-2\n# @touchpoint after\n', ["after"]),
    ("Makefile", "# @touchpoint make-line\nall: # @touchpoint make-trailing\n", ["make-line", "make-trailing"]),
    ("rules.mk", '\techo "# @touchpoint no-1"\nX = a\\#b @touchpoint no-2\n# @touchpoint after\n', ["after"]),
    ("CMakeLists.txt", "# @touchpoint cmake-line\n#[[\n@touchpoint cmake-block\n]]\n", ["cmake-line", "cmake-block"]),
    ("b.cmake", 'message("# @touchpoint no-1")\nset(x [=[\n# @touchpoint no-2\n]=])\n# @touchpoint after\n', ["after"]),
    ("a.lua", "-- @touchpoint lua-line\n--[==[\n@touchpoint lua-block\n]==]\n", ["lua-line", "lua-block"]),
    ("b.lua", 'local s = "-- @touchpoint no-1"\nlocal t = [[\n-- @touchpoint no-2\n]]\n-- @touchpoint after\n', ["after"]),
    ("a.hs", "{- a {- b -} @touchpoint hs-nested -}\n-- @touchpoint hs-line\n", ["hs-nested", "hs-line"]),
    ("b.hs", "x = \"-- @touchpoint no-1\"\ny = '\"'\nf' = a --> b -- @touchpoint after\n", ["after"]),
    ("a.ex", "# @touchpoint ex-line\n", ["ex-line"]),
    (
        "b.exs",
        's = "#{x} # @touchpoint no-1"\nc = ?# <> " @touchpoint no-2"\nd = """\n# @touchpoint no-3\n"""\n'
        "# @touchpoint after\n",
        ["after"],
    ),
    ("a.erl", "% @touchpoint erl-line\n", ["erl-line"]),
    ("b.erl", 'S = "% @touchpoint no-1",\nC = $", % @touchpoint after\n', ["after"]),
    ("a.R", "# @touchpoint r-line\n", ["r-line"]),
    ("b.r", 's <- "# @touchpoint no-1"\nr <- r"(# @touchpoint no-2 " still)"\n# @touchpoint after\n', ["after"]),
    ("a.jl", "#= a #= b =# @touchpoint jl-nested =#\n# @touchpoint jl-line\n", ["jl-nested", "jl-line"]),
    (
        "b.jl",
        "s = \"# @touchpoint no-1\"\nt = a'#' @touchpoint after-transpose\nc = '\"'\n# @touchpoint after\n",
        ["after-transpose", "after"],
    ),
    ("main.tf", "# @touchpoint hcl-hash\n// @touchpoint hcl-slash\n/* @touchpoint hcl-block */\n", ["hcl-hash", "hcl-slash", "hcl-block"]),
    (
        "b.hcl",
        'name = "${lookup(var.m, "k")} # @touchpoint no-1"\npolicy = <<EOT\n# @touchpoint no-2\nEOT\n# @touchpoint after\n',
        ["after"],
    ),
    ("a.md", "# Title\n<!-- @touchpoint md-comment -->\n", ["md-comment"]),
    (
        "b.md",
        "# @touchpoint no-1 heading\n`<!-- @touchpoint no-2 -->`\n```html\n<!-- @touchpoint no-3 -->\n```\n"
        "~~~~\n<!-- @touchpoint no-4 -->\n~~~\n~~~~\n<!-- @touchpoint after -->\n",
        ["after"],
    ),
    ("a.json", '{\n  // @touchpoint json-line\n  "a": 1 /* @touchpoint json-block */\n}\n', ["json-line", "json-block"]),
    ("b.json", '{"a": "// @touchpoint no-1", "b": "/* @touchpoint no-2 */"} // @touchpoint after\n', ["after"]),
    ("a.proto", "// @touchpoint proto-line\n", ["proto-line"]),
    ("b.proto", 'option x = "// @touchpoint no-1"; // @touchpoint after\n', ["after"]),
    ("a.graphql", "# @touchpoint gql-line\n", ["gql-line"]),
    (
        "b.graphql",
        '"""\n# @touchpoint no-1\n"""\ntype A { b: String @deprecated(reason: "# @touchpoint no-2") } # @touchpoint after\n',
        ["after"],
    ),
    (".gitignore", "# @touchpoint ignore-line\n*.log\n", ["ignore-line"]),
    (".dockerignore", "foo\\#bar @touchpoint no-1\nbuild/ # @touchpoint no-2\n# @touchpoint after\n", ["after"]),
]


@pytest.mark.parametrize(("filename", "source", "expected"), LANGUAGE_CASES, ids=[row[0] for row in LANGUAGE_CASES])
def test_language_table(tmp_path: Path, filename: str, source: str, expected: list[str]) -> None:
    extraction = _extract_file(tmp_path, filename, source)

    assert extraction.skipped is None
    assert [touchpoint.name for touchpoint in extraction.touchpoints] == expected


def test_crlf_line_numbers(tmp_path: Path) -> None:
    source = "x = 1\r\n# @touchpoint first\r\n\r\ny = 2  # @touchpoint second desc\r\n"
    extraction = _extract_file(tmp_path, "crlf.py", source)

    assert _names_and_lines(extraction) == [("first", 2), ("second", 4)]
    assert extraction.touchpoints[1].column == 10
    assert extraction.touchpoints[1].description == "desc"


def test_lone_cr_line_numbers(tmp_path: Path) -> None:
    source = "/* a\r * @touchpoint in-block\r */\rint x; // @touchpoint trailing\r"
    extraction = _extract_file(tmp_path, "cr.c", source)

    assert _names_and_lines(extraction) == [("in-block", 2), ("trailing", 4)]
    assert extraction.touchpoints[0].column == 4


def test_bom_keeps_columns(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf// @touchpoint first\n"
    extraction = _extract_file(tmp_path, "bom.ts", data)

    assert _names_and_lines(extraction) == [("first", 1)]
    assert extraction.touchpoints[0].column == 4
    assert extraction.warnings == ()


def test_notebook_cells(tmp_path: Path) -> None:
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Title\n", "<!-- @touchpoint nb-markdown -->\n"]},
            {
                "cell_type": "code",
                "metadata": {},
                "outputs": [],
                "source": ["x = '# @touchpoint no-string'\n", "\n", "# @touchpoint nb-code Loads data"],
            },
            {"cell_type": "raw", "metadata": {}, "source": "# @touchpoint no-raw\n"},
            {"cell_type": "markdown", "metadata": {}, "source": "# @touchpoint no-heading\n"},
            {"cell_type": "code", "metadata": {}, "outputs": [], "source": "%%bash\necho '#x' # @touchpoint nb-bash\n"},
        ],
    }
    extraction = _extract_file(tmp_path, "notebooks/analysis.ipynb", json.dumps(notebook, indent=1))

    assert extraction.language == "jupyter"
    assert extraction.skipped is None
    assert [(touchpoint.name, touchpoint.cell, touchpoint.line) for touchpoint in extraction.touchpoints] == [
        ("nb-markdown", 0, 2),
        ("nb-code", 1, 3),
        ("nb-bash", 4, 2),
    ]
    assert [touchpoint.language for touchpoint in extraction.touchpoints] == ["markdown", "python", "shell"]
    assert extraction.touchpoints[1].description == "Loads data"
    assert extraction.touchpoints[1].column == 3


def test_notebook_invalid_json(tmp_path: Path) -> None:
    extraction = _extract_file(tmp_path, "broken.ipynb", '{"cells": [ # @touchpoint x')

    assert extraction.skipped == "invalid-notebook"
    assert extraction.touchpoints == ()
    assert len(extraction.warnings) == 1
    assert "JSON" in extraction.warnings[0]


def test_extract_text_matches_extract(tmp_path: Path) -> None:
    from_file = _extract_file(tmp_path, "src/labels.js", LABELS_JS)

    assert extract_text(LABELS_JS, "javascript") == from_file.touchpoints
