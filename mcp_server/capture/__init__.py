"""Capture: turning Claude Code hook payloads, and changes on disk, into events.

``payloads`` translates one hook payload into event dictionaries, and ``hook``
is the process entry point that stores them in the inbox. ``redact`` keeps
secrets out of recorded shell commands. ``notices`` carries messages and watch
lists from the server to the hook. These import only the standard library,
because the hook imports this package on every tool call.
``worktree`` compares the working tree with the recorded file states for the
reconcile projection in the server and CLI; it loads gitpython only when it
first runs git, so importing it stays as cheap.
"""
