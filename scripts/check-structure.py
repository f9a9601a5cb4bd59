#!/usr/bin/env python3
"""Structure gates for src/ (issue 14, DESIGN §9), run by .ci/run.

Fails (exit 1, one line per finding) when:
  - two top-level modules of the crate import each other, directly or round a longer loop
    (a module is `src/NAME.rs` or `src/NAME/`; an import is any `crate::NAME` path);
  - a production file passes MAX_FILE lines (test files and `mod tests` blocks do not count);
  - a production function passes MAX_FN lines without a `// long:` comment saying why, in the
    lines just above it (among its doc comments and attributes).
"""

import re
import sys
from pathlib import Path

MAX_FILE = 800
MAX_FN = 80
ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"

CRATE_PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
# `use crate::{a, b::c}` brings in several top-level modules at once.
CRATE_GROUP = re.compile(r"\bcrate::\{([^;]*?)\}\s*;", re.S)
FN_START = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)")
TEST_MOD = re.compile(r"^\s*#\[cfg\(test\)\]")


def top_module(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".rs")


def is_test_file(path: Path) -> bool:
    return path.name in ("tests.rs", "fixtures.rs") or "tests" in path.relative_to(SRC).parts[:-1]


def strip_comments_and_strings(text: str) -> str:
    """Blank out comments and string/char literals, keeping line structure, so braces and
    paths inside them are not counted."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            m = re.match(r"'(\\.|\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:  # a lifetime
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_blocks(lines):
    """Line ranges (start, end) of `#[cfg(test)]` items, by brace matching."""
    ranges = []
    i = 0
    while i < len(lines):
        if TEST_MOD.match(lines[i]):
            depth, started = 0, False
            j = i + 1
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if "{" in lines[j]:
                    started = True
                if started and depth <= 0:
                    break
                if not started and lines[j].rstrip().endswith(";"):
                    break
                j += 1
            ranges.append((i, j))
            i = j + 1
        else:
            i += 1
    return ranges


def in_ranges(k, ranges):
    return any(a <= k <= b for a, b in ranges)


def functions(code_lines, raw_lines, skip):
    """(name, first line, length in lines, allowed) of each fn with a body."""
    found = []
    for k, line in enumerate(code_lines):
        if in_ranges(k, skip):
            continue
        m = FN_START.match(line)
        if not m:
            continue
        depth, opened, j = 0, False, k
        while j < len(code_lines):
            seg = code_lines[j]
            if not opened:
                # A declaration without a body (trait method) ends with `;` before any `{`.
                brace = seg.find("{")
                semi = seg.find(";")
                if semi >= 0 and (brace < 0 or semi < brace):
                    break
            depth += seg.count("{") - seg.count("}")
            if "{" in seg:
                opened = True
            if opened and depth <= 0:
                break
            j += 1
        if not opened:
            continue
        length = j - k + 1
        allowed = False
        a = k - 1
        while a >= 0 and raw_lines[a].strip().startswith(("//", "#[", "///")):
            if re.match(r"\s*//\s*long:", raw_lines[a]):
                allowed = True
            a -= 1
        found.append((m.group(2), k + 1, length, allowed))
    return found


def main() -> int:
    problems = []
    graph = {}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("src", "bin"):
            continue
        raw = path.read_text()
        code = strip_comments_and_strings(raw)
        raw_lines, code_lines = raw.split("\n"), code.split("\n")
        skip = test_blocks(code_lines)
        me = top_module(path)
        if me != "lib":
            prod = [l for k, l in enumerate(code_lines) if not in_ranges(k, skip)]
            for k, l in enumerate(code_lines):
                if in_ranges(k, skip):
                    continue
                for used in CRATE_PATH.findall(l):
                    if used not in (me, "self"):
                        graph.setdefault(me, {}).setdefault(used, f"{rel}:{k + 1}")
            for g in CRATE_GROUP.findall("\n".join(prod)):
                for used in {p.strip().split("::")[0] for p in g.split(",") if p.strip()}:
                    if used not in (me, "self"):
                        graph.setdefault(me, {}).setdefault(used, f"{rel} (use crate::{{..}})")
        if is_test_file(path):
            continue
        prod_len = len(raw_lines) - sum(b - a + 1 for a, b in skip)
        if raw.endswith("\n"):
            prod_len -= 1
        if prod_len > MAX_FILE:
            problems.append(f"{rel}: {prod_len} production lines (at most {MAX_FILE})")
        for name, line, length, allowed in functions(code_lines, raw_lines, skip):
            if length > MAX_FN and not allowed:
                problems.append(
                    f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_FN}, or a "
                    "`// long: why` comment above it)"
                )
    problems += cycles(graph)
    for p in problems:
        print(p)
    if problems:
        print(f"check-structure: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check-structure: ok")
    return 0


def cycles(graph):
    """Each strongly connected group of top-level modules (Tarjan), as one finding."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    nodes = set(graph) | {v for vs in graph.values() for v in vs if v in graph}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(group)

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    findings = []
    for group in out:
        group = sorted(group)
        edges = [
            f"  {a} -> {b} ({graph[a][b]})" for a in group for b in sorted(graph.get(a, {})) if b in group
        ]
        findings.append(
            f"import cycle between top-level modules {{{', '.join(group)}}}:\n" + "\n".join(edges)
        )
    return findings


if __name__ == "__main__":
    sys.exit(main())
