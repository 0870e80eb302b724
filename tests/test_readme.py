"""Every shell command in README.md that needs no weights runs, exactly as written (parsed at test time).

Commands are the lines of fenced code blocks and of indented (4-space) blocks that start with a command word.
Each runs through bash in a scratch folder that links to the repository's top-level entries (so `out/`, `runs/`,
`x/` land there, not in the checkout), with HF_HUB_OFFLINE=1 (no weights are cached here). Its trailing comment
decides how:

- `# needs ...` (weights, a GPU, the AIHub zips, network, a Hub token): skipped with that reason;
- `# long: ...`: only `<command's program> --help` runs (the program starts, its imports resolve), unless
  KORDIFF_README_LONG=1, which runs the command itself;
- `# serves ...`: started with GRADIO_SERVER_PORT set to a free port, checked to answer HTTP 200, then stopped;
- `python -m pytest` is this test run itself: checked to be what `.ci/run` runs, not started again;
- anything else: must exit 0 without a traceback.

Inline code spans in prose that look like commands carry no marker; they are reported as skipped (so they stay
visible) unless the same command is in a block.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
COMMAND_WORDS = ("python", "pip", "accelerate", "hf", "bash", "git")
LONG = os.environ.get("KORDIFF_README_LONG") == "1"


@dataclass(frozen=True)
class Command:
    line: int
    text: str  # the line as written (comment included: bash ignores it)
    command: str  # without the trailing comment
    comment: str
    inline: bool = False

    @property
    def id(self) -> str:
        return f"L{self.line}:{self.command[:70]}"


def _split_comment(text: str) -> tuple[str, str]:
    """Command and trailing comment (a `#` after whitespace, outside quotes)."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def readme_commands(text: str) -> list[Command]:
    """Commands of README `text`: fenced and indented code blocks, then command-like inline spans."""
    found: list[Command] = []
    lines = text.splitlines()
    fenced, prev_blank, in_indented = False, True, False
    for n, raw in enumerate(lines, 1):
        if raw.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            body = raw.strip()
            if body and not body.startswith("#"):
                found.append(Command(n, body, *_split_comment(body)))
            continue
        indented = raw.startswith("    ") and raw.strip().split(" ")[0] in COMMAND_WORDS
        if indented and (prev_blank or in_indented):
            body = raw.strip()
            found.append(Command(n, body, *_split_comment(body)))
            in_indented = True
        else:
            in_indented = False
        prev_blank = not raw.strip()
    in_blocks = {c.command for c in found}
    fenced = False
    for n, raw in enumerate(lines, 1):
        if raw.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or raw.startswith("    "):
            continue
        for span in re.findall(r"`([^`]+)`", raw):
            if span.split(" ")[0] in COMMAND_WORDS and " " in span and span not in in_blocks:
                found.append(Command(n, span, span, "", inline=True))
    return found


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_commands_and_markers_are_understood():
    assert len([c for c in COMMANDS if not c.inline]) >= 10
    runnable = [c for c in COMMANDS if not c.inline and not c.comment.startswith(("needs", "long"))]
    assert any(c.command.startswith("python -m kordiff plan") for c in runnable)
    assert any("--mode typeset" in c.command for c in runnable)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder that looks like the checkout (links to its top-level entries) but collects the outputs."""
    work = tmp_path_factory.mktemp("readme")
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "out", "runs", "data", "x"):
            (work / entry.name).symlink_to(entry)
    return work


def _env(**extra) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("KORDIFF_README_LONG", None)  # a README `python -m pytest` run inside this one must not recurse long
    return env


def _run(command: str, cwd: Path, timeout: float = 900) -> None:
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback (most recent call last)" not in done.stderr, done.stderr[-3000:]


def _help_of(command: str) -> str:
    """`<program> --help` for a command: `python -m mod ...` / `python script.py ...` / `accelerate launch ...`."""
    words = shlex.split(command)
    if words[:2] == ["python", "-m"]:
        return shlex.join(words[:3] + ["--help"])
    if words[0] == "python":
        return shlex.join(words[:2] + ["--help"])
    return shlex.join(words[:1] + ["--help"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(command: str, cwd: Path, timeout: float = 300) -> None:
    port = _free_port()
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=_env(GRADIO_SERVER_PORT=str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, f"{command!r} exited {proc.returncode}:\n{proc.stdout.read()[-3000:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, f"{command!r} did not answer on port {port} in {timeout} s"
                time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert "Traceback (most recent call last)" not in out, out[-3000:]


@pytest.mark.parametrize("cmd", COMMANDS, ids=[c.id for c in COMMANDS])
def test_readme_command(cmd: Command, scratch: Path):
    if cmd.inline:
        pytest.skip(f"inline mention in prose, no marker (put it in a code block to have it run): {cmd.command}")
    if cmd.comment.startswith("needs"):
        pytest.skip(cmd.comment)
    if cmd.command.startswith("python -m pytest"):
        assert cmd.command in (ROOT / ".ci" / "run").read_text(encoding="utf-8"), "CI must run the README's tests"
        return
    if cmd.comment.startswith("serves"):
        return _serve(cmd.text, scratch)
    if cmd.comment.startswith("long") and not LONG:
        _run(_help_of(cmd.command), scratch, timeout=300)
        pytest.skip(f"{cmd.comment} (ran `{_help_of(cmd.command)}` only; KORDIFF_README_LONG=1 runs it)")
    _run(cmd.text, scratch)


def test_parser_reads_markers_and_inline_spans():
    text = "\n".join([
        "Intro `python bench/x.py --fast` and `python a.py`.", "", "```bash",
        'python -m kordiff plan "a # b"   # layout JSON', "hf download x/y   # needs network", "```", "",
        "    python -m kordiff.evaluate --out runs/t   # long: ~1 min", "    python a.py",
        "   3-space list continuation: not a block", ""])
    got = [(c.command, c.comment, c.inline) for c in readme_commands(text)]
    assert got == [
        ('python -m kordiff plan "a # b"', "layout JSON", False), ("hf download x/y", "needs network", False),
        ("python -m kordiff.evaluate --out runs/t", "long: ~1 min", False), ("python a.py", "", False),
        ("python bench/x.py --fast", "", True),
    ]
    assert _help_of("python -m kordiff.evaluate --out runs/t") == "python -m kordiff.evaluate --help"
    assert _help_of("python bench/ocr.py") == "python bench/ocr.py --help"


if __name__ == "__main__":  # list what the test would do
    for c in COMMANDS:
        print(("inline " if c.inline else "") + f"{c.line}: {c.command}  [{c.comment}]", file=sys.stdout)
