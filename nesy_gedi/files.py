"""Files written atomically (a temporary file in the same folder renamed over the target), so a reader never
sees half a file, with the permissions an ordinary file gets (mode 0666 less the umask; a temporary file
alone would keep 0600, unreadable by the group on a shared file system)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(target: Path, write: Callable[[str], object]) -> Path:
    """Call `write` on a temporary path beside `target`, then rename it over `target`."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, _mode())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target
