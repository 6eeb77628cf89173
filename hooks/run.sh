#!/bin/sh
# Launcher of the eventsync Claude Code plugin: picks a Python 3.11+ interpreter and runs one mode.
#
#   sh run.sh serve          the MCP server on stdio; installs the plugin's venv first if needed
#   sh run.sh session-start  SessionStart hook: starts the venv install in the background if the venv
#                            is missing or stale, then captures the payload
#   sh run.sh capture        capture hook used by hooks.json until the venv exists
#   sh run.sh bootstrap      installs or updates the venv in the foreground
#
# The capture hook needs only the standard library, so before the first install has finished it runs
# on whatever Python 3.11+ this script finds: no tool call waits for pip, and no event is lost.
#
# Interpreter order: EVENTSYNC_PLUGIN_PYTHON (an interpreter that already has eventsync and its
# dependencies; no venv is made), then $CLAUDE_PLUGIN_DATA/venv/bin/python, then the first of
# python3, python3.14 ... python3.11 on PATH that is 3.11 or newer.
#
# Nothing is written to stdout except, for session-start without any usable Python, the JSON
# {"systemMessage": ...} that Claude Code shows to the user. Hook modes always exit 0.
set -u

mode="${1:-}"
case "$mode" in
  serve|session-start|capture|bootstrap) ;;
  *)
    echo "eventsync: run.sh: unknown mode '$mode'; expected serve, session-start, capture or bootstrap" >&2
    exit 2
    ;;
esac

root="$(cd "${0%/*}/.." && pwd -P)"

# Exit status when no interpreter can run: hooks must not fail the agent's session.
case "$mode" in
  serve|bootstrap) failure_status=1 ;;
  *) failure_status=0 ;;
esac

fail() {
  echo "eventsync: error: $1" >&2
  if [ "$mode" = "session-start" ]; then
    # The message goes into a JSON string. A user-supplied path with a quote or backslash
    # would break that string, so such a message is replaced by a pointer to the debug log.
    case "$1" in
      *[\"\\]*) message="see the eventsync error in the Claude Code debug log" ;;
      *) message="$1" ;;
    esac
    printf '{"systemMessage": "eventsync is not running: %s"}\n' "$message"
  fi
  exit "$failure_status"
}

# Set $python to the first interpreter on PATH that is 3.11 or newer; record what was tried in $tried.
# $python is the interpreter's own sys.executable, so a version-manager shim (pyenv, asdf) runs once
# here and not again for the exec below.
find_python() {
  tried=""
  for candidate in python3 python3.14 python3.13 python3.12 python3.11; do
    if ! command -v "$candidate" >/dev/null 2>&1; then
      tried="$tried, $candidate (not found)"
    elif python="$("$candidate" -I -S -c 'import sys; sys.version_info >= (3, 11) or sys.exit(1); print(sys.executable)' 2>/dev/null)" \
      && [ -n "$python" ]; then
      return 0
    else
      version="$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
      tried="$tried, $candidate (${version:-does not run})"
    fi
  done
  tried="${tried#, }"
  return 1
}

if [ -n "${EVENTSYNC_PLUGIN_PYTHON:-}" ]; then
  python="$EVENTSYNC_PLUGIN_PYTHON"
  [ -x "$python" ] || fail "EVENTSYNC_PLUGIN_PYTHON is set to $python, which is not an executable file; point it at a Python 3.11+ interpreter that has eventsync installed, or unset it"
elif [ -n "${CLAUDE_PLUGIN_DATA:-}" ] && [ -x "$CLAUDE_PLUGIN_DATA/venv/bin/python" ]; then
  python="$CLAUDE_PLUGIN_DATA/venv/bin/python"
elif ! find_python; then
  fail "no Python 3.11 or newer found on PATH (tried $tried); install Python 3.11 or newer, then start a new Claude Code session"
fi

if [ "$mode" = "capture" ]; then
  exec "$python" -I -S "$root/mcp_server/hook_entry.py"
fi
exec "$python" -I -S "$root/mcp_server/plugin_entry.py" "$mode"
