"""Opening files a job could have touched, without following the job's symlinks.

A job can replace any file of its directory, lwr's own records included, with a symlink (to
``server.ini``, ``/etc/passwd``, ``/dev/zero``), a fifo or a device, and can flip a name between
a file and a symlink while lwr looks at it. So such a file is opened once, relative to a
directory descriptor, with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so that a fifo cannot block the
server); the opened descriptor is checked to be a regular file; reads are bounded; and nothing
is re-opened by name afterwards.

Outputs may legitimately be symlinks to other files of the same job (a tool linking an input as
its output): :func:`open_confined` follows such links itself, one component at a time, each
opened with ``O_NOFOLLOW`` below the job directory's descriptor, and refuses any step out of it.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from lwr.errors import BadRequest, NotFound

#: A directory held only to open names below it: O_PATH needs no read permission, so a
#: traverse-only (0711) directory of a job user's can be passed through as the kernel would.
_DIRECTORY_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LISTABLE_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

#: Symlinks followed while resolving one name, as the kernel's own limit.
MAXIMUM_SYMLINKS = 40


class NotRegularFile(OSError):
    """The name is a symlink, fifo, device, socket or directory where a regular file was expected."""


def open_directory(path: Path | str, dir_fd: int | None = None, listable: bool = False) -> int:
    """A descriptor of the directory ``path`` (its last component must not be a symlink), to open
    names below it, or also to list it (``listable``, which needs read permission)."""
    return os.open(path, _LISTABLE_FLAGS if listable else _DIRECTORY_FLAGS, dir_fd=dir_fd)


def open_regular(name: str, dir_fd: int) -> int:
    """A descriptor of the regular file ``name`` in ``dir_fd``; :class:`NotRegularFile` otherwise."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotRegularFile(errno.ELOOP, "a symlink, not a regular file", name) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file", name)
    os.set_blocking(fd, True)
    return fd


def open_in(directory: Path, name: str) -> int | None:
    """:func:`open_regular` of ``directory/name`` (neither may be a symlink); None if either is
    missing or is not what it should be."""
    try:
        dir_fd = open_directory(directory)
    except OSError:
        return None
    try:
        return open_regular(name, dir_fd)
    except OSError:
        return None
    finally:
        os.close(dir_fd)


def read_in(directory: Path, name: str, limit: int) -> bytes | None:
    """Up to ``limit`` bytes of the regular file ``directory/name``; None if there is none."""
    fd = open_in(directory, name)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit)


def open_confined(root: Path, relative: str) -> int:
    """A descriptor of the regular file ``relative`` below ``root``, following symlinks only while
    they stay inside ``root``; raises :class:`NotFound` or :class:`BadRequest` (outside)."""
    root_real = os.path.realpath(root)
    prefixes = {root_real.rstrip("/") + "/", os.path.normpath(os.path.abspath(root)).rstrip("/") + "/"}
    try:
        root_fd = open_directory(root_real)
    except OSError:
        raise NotFound("no such file", name=relative) from None
    stack = [root_fd]
    pending = _components(relative)
    followed = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) == 1:
                    raise BadRequest("file name leads outside its directory", name=relative) from None
                os.close(stack.pop())
                continue
            last = not pending
            try:
                fd = os.open(part, _FILE_FLAGS if last else _DIRECTORY_FLAGS, dir_fd=stack[-1])
            except OSError as error:
                if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise NotFound("no such file", name=relative) from None
                try:
                    target = os.readlink(part, dir_fd=stack[-1])
                except OSError:
                    if error.errno == errno.ENOTDIR:
                        raise NotFound("no such file", name=relative) from None
                    pending.insert(0, part)  # it stopped being a symlink meanwhile: open it again
                    followed += 1
                    if followed > MAXIMUM_SYMLINKS:
                        raise NotFound("no such file", name=relative) from None
                    continue
                followed += 1
                if followed > MAXIMUM_SYMLINKS:
                    raise BadRequest("too many levels of symlinks", name=relative) from None
                if target.startswith("/"):
                    inside = [prefix for prefix in prefixes if (target + "/").startswith(prefix)]
                    if not inside:
                        raise BadRequest("file name leads outside its directory", name=relative) from None
                    while len(stack) > 1:
                        os.close(stack.pop())
                    target = target[len(inside[0]) :]
                pending[:0] = _components(target, allow_parent=True)
                continue
            if last:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    raise NotFound("not a regular file", name=relative)
                os.set_blocking(fd, True)
                return fd
            stack.append(fd)
        raise NotFound("not a regular file", name=relative)
    finally:
        for fd in stack:
            os.close(fd)


def _components(name: str, allow_parent: bool = False) -> list[str]:
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not allow_parent and ".." in parts:
        raise BadRequest("file name must not contain '..'", name=name)
    return parts


def walk_files(top: Path) -> list[str]:
    """Relative names of every non-directory below ``top``, never entering a symlinked directory
    (each directory is opened with ``O_NOFOLLOW`` below its parent's descriptor; one descriptor
    is open a level)."""
    try:
        top_fd = open_directory(top, listable=True)
    except OSError:
        return []
    found: list[str] = []
    stack = [(top_fd, os.scandir(top_fd), "")]
    try:
        while stack:
            dir_fd, entries, prefix = stack[-1]
            entry = next(entries, None)
            if entry is None:
                entries.close()
                os.close(dir_fd)
                stack.pop()
                continue
            name = prefix + entry.name
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if not is_dir:
                if not _is_directory_link(entry):
                    found.append(name)
                continue
            try:
                child = open_directory(entry.name, dir_fd=dir_fd, listable=True)
            except OSError:
                continue
            stack.append((child, os.scandir(child), name + "/"))
    finally:
        for dir_fd, entries, _prefix in stack:
            entries.close()
            os.close(dir_fd)
    return sorted(found)


def _is_directory_link(entry: os.DirEntry[str]) -> bool:
    """A symlink to a directory is not listed as a file (as ``os.walk`` lists it)."""
    try:
        return entry.is_symlink() and entry.is_dir(follow_symlinks=True)
    except OSError:
        return False
