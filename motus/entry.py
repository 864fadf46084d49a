"""Entry point of the `motus` command.

`motus agent ...` runs on small boards in cars: it loads only the agent, not the network's
server side (web framework, database driver), which would triple its memory."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "agent":
        from device_agent.cli import app as agent_app

        agent_app(args=sys.argv[2:], prog_name="motus agent")
        return
    from motus.cli import main as full

    full()
