"""What identifies the program an ``external`` method runs: its files' digests, its version text.

By default the program is the command's first word, and its script when that word is an
interpreter (:data:`INTERPRETERS`); a bare name is looked up on ``PATH``. Its files' SHA-256
and the output of an optional version command enter the method's parameters, hence the
runner's resume key: results of another build of the program are never reused.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from pathlib import Path

from cref_bench.errors import UnavailableError

VERSION_TIMEOUT = 120.0
"""Seconds ``version_command`` may take."""

INTERPRETERS = ("python", "python3", "bash", "sh", "perl", "Rscript", "julia", "node")
"""Commands whose script (their first argument that is a file) identifies the program too."""

SHELL_WORDS = {"cd", "export", "source", ".", "exec", "set", "if", "for", "while", "(", "{",
               "env", "eval"}
"""First words that do not name the program; such commands need ``program`` or
``version_command``."""


def program_words(command: str) -> list[str] | None:
    """The words of a command that name the files identifying its program.

    Args:
        command: a shell command (placeholders filled in).

    Returns:
        Its first word (after ``VAR=value`` assignments) and, for an interpreter, its script;
        ``None`` when the first word is a shell word (``cd``, ...) or the command does not
        split into words.
    """
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    while words and "=" in words[0] and words[0].split("=")[0].isidentifier():
        words.pop(0)  # VAR=value before the program
    if not words or words[0] in SHELL_WORDS:
        return None
    found = [words[0]]
    if Path(words[0]).name in INTERPRETERS:
        script = next((w for w in words[1:] if not w.startswith("-")), None)
        if script is not None and Path(script).expanduser().is_file():
            found.append(script)
    return found


def locate(word: str, hint: str = "") -> Path:
    """The file a program word names.

    Args:
        word: a name looked up on ``PATH`` (no slash), else a path.
        hint: added to the message (how to install the program).

    Returns:
        The resolved file.

    Raises:
        UnavailableError: not found on ``PATH``, or no such file.
    """
    if "/" not in word:
        found = shutil.which(word)
        if found is None:
            raise UnavailableError(f"program {word!r}", f"not found on PATH{hint}")
        return Path(found).resolve()
    path = Path(word).expanduser()
    if not path.is_file():
        raise UnavailableError(f"program {word!r}", f"no such file{hint}")
    return path.resolve()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, in hexadecimal."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def version_text(command: str, env: dict[str, str], hint: str = "") -> str:
    """What a version command prints (standard output, then error; at most 2000 characters).

    Args:
        command: the shell command.
        env: its environment.
        hint: added to the messages (how to install the program).

    Returns:
        The text, stripped.

    Raises:
        UnavailableError: it took more than :data:`VERSION_TIMEOUT` seconds or exited with a
            non-zero status (the message quotes its last output).
    """
    try:
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True,
                              timeout=VERSION_TIMEOUT, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise UnavailableError(f"version_command {command!r}",
                               f"took more than {VERSION_TIMEOUT:g} s{hint}") from None
    text = (done.stdout + done.stderr).decode("utf-8", "replace").strip()
    if done.returncode != 0:
        raise UnavailableError(f"version_command {command!r}",
                               f"exited with status {done.returncode}: {text[-500:]}{hint}")
    return text[:2000]


__all__ = ["INTERPRETERS", "SHELL_WORDS", "VERSION_TIMEOUT", "file_sha256", "locate",
           "program_words", "version_text"]
