"""Where the verbs write: one check shared by every verb that writes files.

- No output may be an input (the same file, by resolved path or by inode, so links count), lie inside an
  input folder, or be another output: a run must never destroy what it reads.
- Every output's folder exists (or is made) and takes a new file before the first frame, so a full,
  read-only or missing folder fails at once, not after a long run.
- A write that fails later is one line naming the path and the OS error (`writing_failed`).
- Files written by C libraries that report no errors (OpenCV's mp4 writer, librealsense's recorder) go to a
  temporary file beside the output and are renamed over it once verified (`temporary_beside`), so a failed
  run leaves an existing output untouched and never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .errors import InputError

PathLike = str | os.PathLike


def input_paths(specs: Iterable[PathLike | None]) -> list[Path]:
    """The specs that name existing files or folders (a `--source synthetic` or `realsense` names none)."""
    return [Path(s) for s in specs if s is not None and str(s).strip() and os.path.exists(s)]


def _real(p: PathLike) -> Path:
    return Path(os.path.realpath(p))


def _same_file(a: PathLike, b: PathLike) -> bool:
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def _inside(out: PathLike, folder: PathLike) -> bool:
    """`out` would be written inside `folder`: by resolved path, or as a hard link to a file in it."""
    if _real(out).is_relative_to(_real(folder)):
        return True
    try:
        st = os.stat(out)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_nlink < 2:
        return False
    try:
        dev = os.stat(folder).st_dev
        with os.scandir(folder) as it:
            return dev == st.st_dev and any(e.inode() == st.st_ino for e in it)
    except OSError:
        return False


def check_outputs(outputs: Sequence[tuple[str, PathLike | None]], inputs: Iterable[PathLike | None]) -> None:
    """Refuse (one-line InputError) an output that is an input, lies in an input folder, or is another
    output. `outputs` are (what, path) pairs, e.g. ("--jsonl", "out.jsonl"); None entries are unused."""
    ins = input_paths(inputs)
    seen: list[tuple[str, Path]] = []
    for what, path in outputs:
        if path is None or not str(path).strip():
            continue
        out = Path(path)
        for src in ins:
            if _same_file(out, src):
                raise InputError(f"{what} {out} is the input {src}; writing it would destroy the input")
            if src.is_dir() and _inside(out, src):
                raise InputError(f"{what} {out} is inside the input folder {src}; write it elsewhere")
        for other_what, other in seen:
            if _same_file(out, other):
                raise InputError(f"{what} and {other_what} are the same file {out}; give each its own")
        seen.append((what, out))


def writing_failed(path: PathLike, exc: BaseException | str) -> InputError:
    """The one line for a write that failed: 'writing PATH failed: No space left on device'."""
    why = exc if isinstance(exc, str) else (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
    return InputError(f"writing {path} failed: {why}")


def out_of_space(path: PathLike, margin_bytes: int = 0) -> bool:
    """The file system holding `path` has no more than `margin_bytes` left for us (root may use the
    reserved blocks). After a write that failed, a margin tells a full disk from other causes: the
    writer may already have given back the space of its unfinished blocks or journal."""
    try:
        st = os.statvfs(path if Path(path).is_dir() else Path(path).parent)
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        return False
    root = getattr(os, "geteuid", lambda: -1)() == 0
    free = st.f_bfree if root else st.f_bavail
    return free * st.f_frsize <= margin_bytes


FULL_AFTER_FAILURE_BYTES = 1 << 20  # under 1 MiB left after a failed write: call it a full disk


def prepare_file(path: PathLike, what: str) -> Path:
    """Make sure `path` can be written: not a folder, its folder exists (made if needed) and takes a
    new file. Does not create or touch `path` itself."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{what} {p} is a folder; give a file name")
    folder = p.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"cannot write {what} {p}: {folder} is not a folder") from None
    except OSError as exc:
        raise InputError(f"cannot create the folder for {what} {p}: {exc.strerror}") from None
    if p.exists():
        if not os.access(p, os.W_OK):
            raise InputError(f"cannot write {p}: {_access_error(p)}")
    else:
        _probe_folder(folder, p)
    return p


def prepare_folder(path: PathLike, what: str) -> Path:
    """Make sure files can be written into the folder `path` (made if needed)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{what} {p} exists and is not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"cannot create {what} {p}: a part of the path is a file") from None
    except OSError as exc:
        raise InputError(f"cannot create {what} {p}: {exc.strerror}") from None
    _probe_folder(p, p)
    return p


def _probe_folder(folder: Path, named: Path) -> None:
    """Create and remove a scratch file: the only check that tells EACCES, EROFS and a full disk apart."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".handstream-probe-")
    except OSError as exc:
        raise InputError(f"cannot write {named}: {exc.strerror}") from None
    os.close(fd)
    os.unlink(tmp)


def _access_error(p: Path) -> str:
    try:
        st = os.statvfs(p)
        if st.f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
    except (OSError, AttributeError):
        pass
    return os.strerror(errno.EACCES)


def regular_destination(path: PathLike, what: str) -> Path:
    """Where a renamed temporary file must land: the file a symlink points at (the link stays), which
    must be a regular file or not exist yet -- a device or a pipe cannot take a rename."""
    p = Path(path)
    dest = _real(p) if p.is_symlink() else p
    if dest.exists() and not dest.is_file():
        raise InputError(f"{what} {p} is not a regular file ({dest}); give a file name")
    return dest


def temporary_beside(dest: Path) -> Path:
    """A fresh, empty temporary file next to `dest`, with its suffix (libraries pick the format by it).
    The caller renames it over `dest` once its content is verified (`commit`) or removes it (`discard`)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=dest.suffix)
    except OSError as exc:
        raise InputError(f"cannot write {dest}: {exc.strerror}") from None
    os.close(fd)
    return Path(tmp)


def discard(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink()


def commit(tmp: Path, dest: Path, shown: PathLike | None = None) -> None:
    """Rename the verified temporary file over `dest` (atomic within one folder). It gets the mode of the
    file it replaces, or what a plainly created file would get (mkstemp makes it private, 0600)."""
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode) if dest.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except OSError as exc:
        discard(tmp)
        raise writing_failed(shown or dest, exc) from None


def _umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc), else by a set-and-restore."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def write_png(path: PathLike, img) -> Path:
    """Encode in memory, then write with Python's own file calls: cv2.imwrite reports a full or read-only
    disk as nothing at all, this raises the one-line error (and removes a partial file)."""
    import cv2

    p = Path(path)
    try:
        with captured_fd2():
            ok, buf = cv2.imencode(p.suffix or ".png", img)
    except cv2.error:
        ok = False
    if not ok:
        raise writing_failed(p, f"OpenCV cannot encode an image as {p.suffix or 'a file without a suffix'}")
    try:
        p.write_bytes(buf.tobytes())
    except OSError as exc:
        with contextlib.suppress(OSError):
            if p.is_file():
                p.unlink()
        raise writing_failed(p, exc) from None
    return p


_FD2_LOCK = threading.Lock()  # fd 2 is one per process: two captures at once would restore it wrongly


@contextlib.contextmanager
def captured_fd2() -> Iterator[list[str]]:
    """Capture what C code writes to file descriptor 2 (libpng's messages) while the body runs; the text
    lands in the yielded list. A dup, two dup2 calls and a temporary file: ~60 us."""
    lines: list[str] = []
    with _FD2_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield lines
            return
        with _redirected_fd2(saved) as captured:
            yield lines
        lines.extend(captured)


@contextlib.contextmanager
def _redirected_fd2(saved: int) -> Iterator[list[str]]:
    captured: list[str] = []
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.extend(sink.read().decode("utf-8", "replace").splitlines())
