"""Files written atomically (a temporary file in the same folder renamed over the target), so a reader never
sees half a file, with the permissions an ordinary file gets (mode 0666 less the umask; a temporary file
alone would keep 0600, unreadable by the group on a shared file system)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from nesy_gedi.errors import UserError


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


def check_can_create(folder: Path) -> None:
    """`--out` can be made: its missing folders are created and removed again (a read-only or virtual file
    system, a file in the way), so a run or a comparison is refused before it starts, not when it writes."""
    missing = []
    parent = folder
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"--out {folder}: {parent} is not a folder; give --out a folder you can write to")
    try:
        for made in reversed(missing):
            made.mkdir()
    except OSError as exc:
        raise UserError(
            f"--out {folder}: cannot create it ({exc.strerror}); give --out a folder you can write to"
        ) from None
    finally:
        for made in missing:
            if made.is_dir():
                made.rmdir()
    if not os.access(folder if folder.is_dir() else parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {folder}: not writable; give --out a folder you can write to")
