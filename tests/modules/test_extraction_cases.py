"""Touchpoint extraction end to end: files saved through the hook, answers from the index."""

from __future__ import annotations

from conftest import Project
from mcp_server.store.base import EventFilter


def _save_through_hook(project: Project, relative: str, content: str | bytes, index: int) -> None:
    project.write(relative, content)
    run = project.run_hook({"session_id": "s-x", "hook_event_name": "PostToolUse", "tool_name": "Write",
                            "tool_input": {"file_path": str(project.root / relative)},
                            "tool_response": {"type": "create"}, "tool_use_id": f"toolu_x_{index}"})
    assert run.returncode == 0
    assert run.stdout == b""


def _touchpoints(project: Project, path: str | None = None) -> list[tuple[str, str, int]]:
    runtime = project.runtime()
    try:
        rows, _ = runtime.list_touchpoints(path=path, limit=10_000)
    finally:
        runtime.close()
    return [(row.name, row.path, row.line) for row in rows]


def test_markers_in_strings_ignored(project: Project) -> None:
    _save_through_hook(project, "src/labels.js", (
        'const labels = {\n  "@touchpoint checkout": "not a comment",\n};\nconst msg = "see @touchpoint payments";\n'
        "// @touchpoint auth-flow\nconst t = `@touchpoint tmpl`; /* @touchpoint inline-block */\n"
        "const n = 1; // mail ops@touchpoint.example for access\n"), 1)
    _save_through_hook(project, "tools/fmt.py", (
        'PATTERN = "# @touchpoint not-me"\nx = 1  # @touchpoint real-one\nTEMPLATE = \'\'\'\n'
        "# @touchpoint inside-string\n'''\ny = f\"{x} # @touchpoint f-string\"\n"), 2)

    assert _touchpoints(project) == [
        ("auth-flow", "src/labels.js", 5), ("inline-block", "src/labels.js", 6), ("real-one", "tools/fmt.py", 2)
    ]


def test_jsx_comments(project: Project) -> None:
    _save_through_hook(project, "src/Cart.tsx", (
        "export function Cart() {\n  return (\n    <div>\n      {/* @touchpoint cart-render */}\n      {/*\n"
        "        @touchpoint cart-empty-state\n      */}\n      <p>Use @touchpoint tags in docs</p>\n"
        "      <span>// @touchpoint jsx-text</span>\n    </div>\n  );\n}\n// @touchpoint cart-module\n"), 1)

    assert sorted(_touchpoints(project, "src/Cart.tsx"), key=lambda row: row[2]) == [
        ("cart-render", "src/Cart.tsx", 4), ("cart-empty-state", "src/Cart.tsx", 6), ("cart-module", "src/Cart.tsx", 13)
    ]


def test_non_utf8_and_binary(project: Project) -> None:
    _save_through_hook(project, "src/a.py", "# @touchpoint alpha\n", 1)
    _save_through_hook(project, "src/legacy.c",
                       b"/* Auteur : Fran\xe7ois */\n/* @touchpoint legacy-io */\nint x;\n", 2)
    _save_through_hook(project, "src/b.js", "// @touchpoint beta\n", 3)
    _save_through_hook(project, "assets/logo.png",
                       b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe# @touchpoint zzz\n\x00\xff\x00\xff", 4)

    assert _touchpoints(project) == [
        ("alpha", "src/a.py", 1), ("beta", "src/b.js", 1), ("legacy-io", "src/legacy.c", 2)
    ]
    runtime = project.runtime()
    try:
        failures = runtime.query_events(EventFilter(types=("event.failed",))).total
        warnings = runtime.log.connection.execute(
            "SELECT path, warnings FROM touchpoint_files WHERE warnings != '' ORDER BY path").fetchall()
    finally:
        runtime.close()
    assert failures == 0
    assert [path for path, _ in warnings] == ["src/legacy.c"]


def test_huge_and_pathological_files(project: Project) -> None:
    chunk = 'var s="/*"+\'*/\'+"//";'
    _save_through_hook(project, "dist/vendor.min.js",
                       chunk * (5_000_000 // len(chunk)) + "/* @touchpoint vendor-shim */", 1)
    _save_through_hook(project, "dist/broken.min.js", "/*" * 500_000, 2)
    lines = [f"# @touchpoint t{(n - 1) // 2000}\n" if (n - 1) % 2000 == 0 else f"x_{n} = {n}\n"
             for n in range(1, 200_001)]
    _save_through_hook(project, "gen/big.py", "".join(lines), 3)

    big = _touchpoints(project, "gen/big.py")
    assert len(big) == 100
    assert sorted(big, key=lambda row: row[2]) == [(f"t{k}", "gen/big.py", 1 + 2000 * k) for k in range(100)]
    assert _touchpoints(project, "dist/broken.min.js") == []
    assert _touchpoints(project, "dist/vendor.min.js") == []
    runtime = project.runtime()
    try:
        skipped = runtime.query_events(EventFilter(types=("touchpoint.skipped",))).events
    finally:
        runtime.close()
    assert [(event.payload["path"], event.payload["reason"]) for event in skipped] == [("dist/vendor.min.js", "size")]
