"""Every runnable command in README.md and docs/ runs here at least to its plan, so the manual cannot drift
from the code.

What counts as a command: a line of a fenced or indented code block, or an `inline` span, that starts with
`make `, `python -m mocobench...`, `.venv/bin/python -m mocobench...` or `torchrun ... -m mocobench...`
(after `$ ` and `VAR=value` prefixes). Continuation lines (`\\`) are joined, `# comments` dropped, and `&&`,
`;` and `|` split a line into commands (`make a | b`: alternatives, each checked).

How far each one runs:
- `make ...`: `make -n` (exit 0), and every mocobench command the recipe would run is checked as below.
- `python -m MODULE ...`: parsed by MODULE's own argparse parser, in this process (the module runs up to its
  `parse_args`, which stops it): an unknown flag, a bad choice or a bad type fails; `--help` prints.
- a command that has `--dry-run`: run here to its plan (exit 0), without a GPU or the real data sets.

Placeholders: `...` stands for more arguments (dropped; the command may then lack required ones), `[--x Y]` is
optional (kept), `[words]` is dropped, `a|b|c` takes `a`, a module named `<script>` is not runnable. A dry run
writes into a temporary folder (`--results`, `--output-dir`, and the session's tiny built-in data set for
`--synthetic-root`), and `--weights` placeholders that name no file here (W, RUN_DIR, SUP, my_ckpt.pth, ...)
plan as `random` (one row for all of them: there is nothing to convert). An `inline` mention such as
`python -m mocobench run NAME` names a command without its required arguments; that is accepted, a code block's
command is not. A failure names the doc file, its line and the command.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
START = re.compile(r"^(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"
                   r"(make\s|(?:\.venv/bin/)?python -m mocobench|torchrun\s.*?-m mocobench)")
PY_CALL = re.compile(r"(?:^|\s)(?:\S*/)?python3? -m (mocobench[\w.]*)(.*)$")


@dataclass
class DocCommand:
    where: str      # file:line
    text: str       # as written (joined, comment dropped)
    argv: list[str]  # make args, or [module, args...]
    kind: str       # "make" | "python"
    inline: bool
    ellipsis: bool  # had `...` (arguments left out)

    def __str__(self) -> str:
        return f"{self.where}: {self.text}"


def _spans(text: str):
    """(line number, text, inline) of every code line and inline code span."""
    fence = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            fence = not fence
            continue
        if fence or line.startswith("    "):
            yield n, line.strip(), False
        else:
            for m in re.finditer(r"`([^`]+)`", line):
                yield n, m.group(1).strip(), True


def _logical_lines(text: str):
    joined = None
    for n, s, inline in _spans(text):
        if joined is not None:
            start, acc = joined
            acc += " " + s
            if s.endswith("\\"):
                joined = (start, acc[:-1])
            else:
                joined = None
                yield start, acc, inline
            continue
        if s.endswith("\\"):
            joined = (n, s[:-1])
        else:
            yield n, s, inline


def _tokens(text: str) -> list[str] | None:
    try:
        lex = shlex.shlex(text.replace("\\|", "|"), posix=True, punctuation_chars=";&|")
        lex.whitespace_split, lex.commenters = True, "#"
        return list(lex)
    except ValueError:
        return None


def _clean(tokens: list[str]) -> tuple[list[str], bool]:
    """Placeholders: `...` dropped, `[--x Y]` kept, `[words]` dropped, `a|b` -> a."""
    out, ellipsis, i = [], False, 0
    while i < len(tokens):
        t = tokens[i]
        if t == "...":
            ellipsis = True
            if out and out[-1].startswith("--"):
                out.append("PLACEHOLDER")  # `--weights ...`: some value
        elif t.startswith("["):
            group = [t]
            while not group[-1].endswith("]") and i + 1 < len(tokens):
                i += 1
                group.append(tokens[i])
            inner = " ".join(group)[1:-1].split()
            if inner and inner[0].startswith("-"):
                out += inner
        elif "|" in t and not t.startswith("-") and "=" not in t and "/" not in t:
            out.append(t.split("|")[0])
        else:
            out.append(t)
        i += 1
    return out, ellipsis


def _commands_of(tokens: list[str], where: str, text: str, inline: bool) -> list[DocCommand]:
    parts, cur, seps = [], [], []
    for t in tokens:
        if t in ("&&", ";", "|", "||", "&"):
            parts.append(cur)
            seps.append(t)
            cur = []
        else:
            cur.append(t)
    parts.append(cur)
    out, first = [], None
    for i, part in enumerate(parts):
        while part and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", part[0]):  # VAR=value prefixes
            part = part[1:]
        if not part:
            continue
        if part[0] == "make" or (first == "make" and seps[i - 1] == "|" and not part[0].startswith(".")):
            args, ell = _clean(part[1:] if part[0] == "make" else part)
            out.append(DocCommand(where, text, args, "make", inline, ell))
            first = "make"
            continue
        if "-m" in part and (part[0].endswith("python") or part[0] == "torchrun"):
            k = part.index("-m")
            module = part[k + 1] if k + 1 < len(part) else ""
            if not module.startswith("mocobench") or "<" in module:
                continue  # another tool, or a schematic module name
            args, ell = _clean(part[k + 2:])
            out.append(DocCommand(where, text, [module.split("|")[0], *args], "python", inline, ell))
            first = "python"
    return out


def doc_commands() -> list[DocCommand]:
    found = []
    for path in DOCS:
        for n, text, inline in _logical_lines(path.read_text()):
            text = text.strip()
            if not START.match(text):
                continue
            tokens = _tokens(text)
            where = f"{path.relative_to(ROOT)}:{n}"
            assert tokens is not None, f"{where}: cannot split the command: {text}"
            found += _commands_of(tokens, where, text, inline)
    return found


class _Parsed(Exception):
    def __init__(self, namespace):
        self.namespace = namespace


@contextlib.contextmanager
def _stop_after_parsing():
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    argparse.ArgumentParser.parse_args = parse_args
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original


def parse_with_own_parser(module: str, args: list[str]) -> tuple[str, object]:
    """Run `python -m module args` up to its parse_args: ("parsed", namespace) | ("help", text) |
    ("error", argparse's message)."""
    module = module if module != "mocobench" else "mocobench.__main__"
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = [module, *args]
    try:
        with _stop_after_parsing(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_module(module, run_name="__main__", alter_sys=False)
    except _Parsed as p:
        return "parsed", p.namespace
    except SystemExit as e:
        if e.code in (0, None):
            return "help", out.getvalue()
        return "error", (err.getvalue().strip().splitlines() or [str(e.code)])[-1]
    finally:
        sys.argv = argv
    return "error", "the module ended without parsing a command line"


def _check_parse(cmd: DocCommand, module: str, args: list[str]) -> str | None:
    args = list(args)
    for _ in range(5):  # a placeholder (N, R, G) where a number goes: any number will do
        status, value = parse_with_own_parser(module, args)
        bad = re.search(r"invalid (?:int|float) value: '([A-Z][A-Z0-9_]*)'", str(value)) if status == "error" else None
        if not bad or bad.group(1) not in args:
            break
        args[args.index(bad.group(1))] = "1"
    if status != "error":
        if status == "parsed" and module == "mocobench.pretrain" and getattr(value, "command", "") == "submit":
            train = [a for a in getattr(value, "train_args", []) if a != "--"]  # what each node's train gets
            status, value = parse_with_own_parser(module, ["train", *train])
            return None if status != "error" else f"its train arguments: {value}"
        return None
    if "required" in str(value) and (cmd.inline or cmd.ellipsis):
        return None  # a mention of the command, or arguments left out on purpose
    return str(value)


ALL = doc_commands()
PYTHON = [c for c in ALL if c.kind == "python"]
MAKE = [c for c in ALL if c.kind == "make"]


def test_the_docs_have_commands_to_check():
    files = {c.where.split(":")[0] for c in ALL}
    assert "README.md" in files and len(files) >= 10 and len(PYTHON) >= 80 and len(MAKE) >= 40


def test_every_python_command_parses_with_its_own_parser():
    """Grouped by module (each module's parser is built once per command, in this process)."""
    failures = []
    for cmd in sorted(PYTHON, key=lambda c: c.argv[0]):
        problem = _check_parse(cmd, cmd.argv[0], cmd.argv[1:])
        if problem:
            failures.append(f"{cmd}\n    -> {problem}")
    assert not failures, "commands in the docs that their parser refuses:\n" + "\n".join(failures)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_every_make_command_plans_and_its_recipe_parses(tmp_path):
    """`make -n` runs the recipe lines that call $(MAKE) (a line that also asks Python whether the built-in data
    is in use, then starts a sub-make): PY is a stub that answers nothing there, so make -n prints the plan
    in milliseconds instead of importing Detectron2 once per target; the printed commands are then parsed here."""
    stub = tmp_path / "bin" / "python"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    failures, seen = [], {}
    for cmd in MAKE:
        key = tuple(cmd.argv)
        if key not in seen:
            proc = subprocess.run(["make", "-n", *cmd.argv, f"PY={stub}"], cwd=ROOT, capture_output=True, text=True,
                                  timeout=60)
            seen[key] = proc
        proc = seen[key]
        if proc.returncode != 0:
            failures.append(f"{cmd}\n    -> make -n: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        for line in proc.stdout.replace("\\\n", " ").splitlines():
            if re.search(r"test -n \"\" \|\|", line):
                break  # the recipe's guard stops here with its usage line (a variable the command left out)
            for piece in re.split(r"\s(?:&&|\|\||;)\s", line):
                m = PY_CALL.search(piece)
                if not m or "$" in m.group(2):
                    continue  # a shell expression make leaves to the shell
                args = _tokens(m.group(2))
                if args is None:
                    continue
                args = [a for a in args if a not in ("|", ">", "2>", "&")]
                args = args[:next((i for i, a in enumerate(args) if a in (">", "2>/dev/null")), len(args))]
                problem = _check_parse(DocCommand(cmd.where, piece, [], "python", False, True), m.group(1), args)
                if problem:
                    failures.append(f"{cmd}\n    -> its recipe runs `{piece.strip()}`: {problem}")
    assert not failures, "make commands in the docs that do not plan:\n" + "\n".join(failures)


def _dry_run_argv(cmd: DocCommand, tmp: Path, synthetic_root: Path) -> list[str]:
    args = list(cmd.argv[1:])
    out, weights, i = [], [], 0
    while i < len(args):
        if args[i] == "--weights" and i + 1 < len(args):
            w = args[i + 1]
            weights.append(w if w == "random" or Path(w).exists() else "random")
            i += 2
            continue
        if args[i] == "--supervised" and i + 1 < len(args):  # a placeholder baseline is left out of the plan
            if Path(args[i + 1]).exists():
                out += args[i:i + 2]
            i += 2
            continue
        out.append(args[i])
        i += 1
    opts = out.index("--opts") if "--opts" in out else len(out)
    extra = [a for w in dict.fromkeys(weights) for a in ("--weights", w)]
    extra += ["--results", str(tmp / "results"), "--output-dir", str(tmp / "out")]
    if "--synthetic-root" not in out:
        extra += ["--synthetic-root", str(synthetic_root.root.parent), "--synthetic-preset", "tiny"]
    return out[:opts] + extra + out[opts:]


def test_every_dry_run_in_the_docs_plans(tmp_path, synthetic_tiny, monkeypatch):
    """Without a GPU and with no real data set here: a dry run plans anyway (and says what it did not check)."""
    from mocobench.__main__ import main

    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "no-datasets"))
    failures, ran = [], set()
    for cmd in PYTHON:
        if "--dry-run" not in cmd.argv or cmd.argv[0] != "mocobench":
            continue
        argv = _dry_run_argv(cmd, tmp_path, synthetic_tiny)
        if tuple(argv) in ran:
            continue
        ran.add(tuple(argv))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
        if rc != 0:
            failures.append(f"{cmd}\n    -> exit {rc}: {err.getvalue().strip()[-300:]}")
    assert ran, "no dry run found in the docs"
    assert not failures, "dry runs in the docs that do not plan:\n" + "\n".join(failures)
