"""Run a command with a terminal as its stdout and stderr (a pseudo-terminal), as a person at a
shell would, and read everything it drew."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import termios
from collections.abc import Sequence

# A carriage return not followed by a newline: a bar redrawing its line (the terminal itself
# turns each "\n" into "\r\n").
REDRAW = re.compile(r"\r(?!\n)")


def run_in_terminal(argv: Sequence[str], *, env: dict[str, str], cwd: str,
                    timeout: float = 300) -> tuple[int, str]:
    """(exit status, what it wrote to the terminal)."""
    env = {k: v for k, v in env.items() if k != "TQDM_DISABLE"}
    env.update(COLUMNS="120", LINES="40", TERM="xterm")
    master, slave = pty.openpty()
    # 40 rows of 120 columns: a new pseudo-terminal is 0 x 0, where a bar has no room to draw.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(list(argv), stdin=slave, stdout=slave, stderr=slave, env=env,
                               cwd=cwd, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        code = process.wait(timeout=timeout)
    finally:
        os.close(master)
        if process.poll() is None:
            process.kill()
    return code, b"".join(chunks).decode(errors="replace")
