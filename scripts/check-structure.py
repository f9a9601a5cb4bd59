#!/usr/bin/env python3
"""Structure gates for src/ (issue 14, DESIGN §9), run by .ci/run.

Usage: check-structure.py [ROOT]   (ROOT defaults to the repository holding this script)

Fails (exit 1, one line per finding) when:
  - two top-level modules of the crate import each other, directly or round a longer loop
    (a module is `src/NAME.rs` or `src/NAME/`; an import is any `crate::NAME` path, the
    top-level items of a `crate::{..}` group, or a `super::` chain that climbs to the crate root);
  - a production file passes MAX_FILE lines (test files and `#[cfg(test)]` items do not count);
  - a production function passes MAX_FN lines without a `// long:` comment saying why, in the
    lines just above it (among its doc comments and attributes).

Test code is: a `#[cfg(test)]` (or `#[cfg(all(test, ..))]`) item, a file that starts with
`#![cfg(test)]`, a file a `#[cfg(test)] mod NAME;` declares (and everything under it), and files
named tests.rs or fixtures.rs or sitting under a `tests/` folder. Imports from test code do not
make edges. Comments, strings (raw, byte and C strings too) and char literals are blanked before
anything is counted, so braces and paths inside them do not count. `scripts/test_check_structure.py`
checks this checker.
"""

import re
import sys
from pathlib import Path

MAX_FILE = 800
MAX_FN = 80

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CRATE_PATH = re.compile(r"(?<![A-Za-z0-9_$])crate::(" + IDENT + r")")
CRATE_GROUP = re.compile(r"(?<![A-Za-z0-9_$])crate::\{")
SUPER_PATH = re.compile(r"(?<![A-Za-z0-9_:])((?:super::)+)(" + IDENT + r")")
FN_START = re.compile(
    r"^\s*(?:pub(?:\s*\([^)]*\))?\s+)?(?:default\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
    r"(?:extern\s+(?:\"[^\"]*\"\s+)?)?fn\s+(" + IDENT + r")"
)
TEST_ATTR = re.compile(r"#\[\s*cfg\s*\(\s*(?:test\s*|all\s*\(\s*test\b[^\]]*)\)\s*\]")
TEST_FILE_ATTR = re.compile(r"^\s*#!\[\s*cfg\s*\(\s*test\s*\)\s*\]", re.M)
TEST_MOD_DECL = re.compile(r"\bmod\s+(" + IDENT + r")\s*;$")
INLINE_MOD = re.compile(r"\bmod\s+" + IDENT + r"\s*\{")
LONG_OK = re.compile(r"^\s*//\s*long:")


def blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


def strip_comments_and_strings(text: str) -> str:
    """Blank out comments and string/char literals, keeping line structure, so braces and
    paths inside them are not counted."""
    out = []
    i, n = 0, len(text)
    raw_start = re.compile(r'(?:b|c)?r(#*)"')
    while i < n:
        c = text[i]
        prev_ident = i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2  # block comments nest in Rust
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(blank(text[i:j]))
            i = j
        elif c in "bcr" and not prev_ident and raw_start.match(text, i):
            m = raw_start.match(text, i)
            end = '"' + m.group(1)
            j = text.find(end, m.end())
            j = n if j < 0 else j + len(end)
            out.append(blank(text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(blank(text[i:j]))
            i = j
        elif c == "'":
            m = re.compile(r"'(\\u\{[0-9a-fA-F]+\}|\\x[0-9a-fA-F]{2}|\\.|[^\\'\n])'").match(text, i)
            if m:
                out.append(" " * len(m.group(0)))
                i = m.end()
            else:  # a lifetime or a label
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def item_end(code: str, start: int) -> int:
    """Offset just past the item that starts at `start` (after its attributes): the `;` that
    ends a bodiless item, or the `}` that closes its first brace."""
    depth = {"(": 0, "[": 0, "{": 0}
    close = {")": "(", "]": "[", "}": "{"}
    opened = False
    i = start
    while i < len(code):
        ch = code[i]
        if ch in depth:
            # A brace inside the signature's parentheses is a pattern, not the body.
            if ch == "{" and depth["("] == 0 and depth["["] == 0:
                opened = True
            depth[ch] += 1
        elif ch in close:
            depth[close[ch]] -= 1
            if ch == "}" and opened and depth["{"] == 0:
                return i + 1
        elif ch == ";" and not opened and depth["("] == 0 and depth["["] == 0:
            return i + 1
        i += 1
    return len(code)


def line_of(code: str, offset: int) -> int:
    return code.count("\n", 0, offset)


def test_items(code: str):
    """(first line, last line, text) of each `#[cfg(test)]` item, attribute included."""
    found = []
    pos = 0
    while True:
        m = TEST_ATTR.search(code, pos)
        if not m:
            return found
        end = item_end(code, m.end())
        found.append((line_of(code, m.start()), line_of(code, end - 1), code[m.end():end]))
        pos = end


def in_ranges(k, ranges):
    return any(a <= k <= b for a, b, *_ in ranges)


def attribute_start(code_lines, k):
    """If line k ends an attribute (`#[..]`, possibly over several lines), the line where that
    attribute starts; otherwise None."""
    if not code_lines[k].rstrip().endswith("]"):
        return None
    depth = 0
    for a in range(k, -1, -1):
        line = code_lines[a]
        depth += line.count("]") - line.count("[")
        if depth <= 0:
            return a if line.lstrip().startswith("#") else None
    return None


def allowed_long(raw_lines, code_lines, k):
    """Whether a `// long:` comment sits among the comments and attributes just above line k."""
    a = k - 1
    while a >= 0:
        if raw_lines[a].strip().startswith("//"):
            if LONG_OK.match(raw_lines[a]):
                return True
            a -= 1
            continue
        top = attribute_start(code_lines, a)
        if top is None:
            return False
        a = top - 1
    return False


def functions(code: str, raw_lines, skip):
    """(name, first line, length in lines, allowed) of each fn with a body, nested ones too."""
    code_lines = code.split("\n")
    starts = [0]
    for line in code_lines:
        starts.append(starts[-1] + len(line) + 1)
    found = []
    for k, line in enumerate(code_lines):
        if in_ranges(k, skip):
            continue
        m = FN_START.match(line)
        if not m:
            continue
        end = item_end(code, starts[k] + m.end())
        if code[end - 1] != "}":  # a declaration without a body (trait method, extern)
            continue
        length = line_of(code, end - 1) - k + 1
        found.append((m.group(1), k + 1, length, allowed_long(raw_lines, code_lines, k)))
    return found


def module_path(rel: Path):
    """The module path of a file under src/, e.g. src/http/api.rs -> [http, api]."""
    parts = list(rel.parts[1:])
    parts[-1] = parts[-1].removesuffix(".rs")
    if parts[-1] == "mod":
        parts.pop()
    return parts


def group_heads(code: str, start: int):
    """The first path segment of each top-level item of a `{..}` use group opening at start."""
    depth, item, heads = 0, "", []
    i = start
    while i < len(code):
        ch = code[i]
        if ch == "{":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif ch == "}":
            depth -= 1
            if depth == 0:
                heads.append(item)
                break
        if depth == 1 and ch == ",":
            heads.append(item)
            item = ""
        elif depth == 1 and ch not in "{}":
            item += ch
        i += 1
    return {h.strip().split("::")[0].strip() for h in heads if h.strip()}


def imports(code_lines, mod_path):
    """(top-level module, line number) of each production import in the given lines."""
    code = "\n".join(code_lines)
    found = []
    for m in CRATE_PATH.finditer(code):
        found.append((m.group(1), line_of(code, m.start()) + 1))
    for m in CRATE_GROUP.finditer(code):
        for head in group_heads(code, m.end() - 1):
            found.append((head, line_of(code, m.start()) + 1))
    # `super::` inside an inline `mod x { .. }` climbs one level less far.
    inline = [(m.start(), item_end(code, m.start())) for m in INLINE_MOD.finditer(code)]
    for m in SUPER_PATH.finditer(code):
        depth = len(mod_path) + sum(1 for a, b in inline if a < m.start() < b)
        if m.group(1).count("super::") == depth:
            found.append((m.group(2), line_of(code, m.start()) + 1))
    return found


def test_files(root: Path):
    """Files that only test builds compile: declared by `#[cfg(test)] mod NAME;` or marked
    `#![cfg(test)]` (with everything under them)."""
    src = root / "src"
    tests = set()
    for path in sorted(src.rglob("*.rs")):
        code = strip_comments_and_strings(path.read_text())
        if TEST_FILE_ATTR.search(code):
            tests.add(path)
        folder = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
        for _, _, item in test_items(code):
            m = TEST_MOD_DECL.search(item.strip())
            if m:
                tests.add(folder / f"{m.group(1)}.rs")
                tests.add(folder / m.group(1))
    return tests


def is_test_file(path: Path, src: Path, tests) -> bool:
    rel = path.relative_to(src)
    if path.name in ("tests.rs", "fixtures.rs") or "tests" in rel.parts[:-1]:
        return True
    return any(t == path or t in path.parents for t in tests)


def check(root: Path):
    """Every finding for the tree at root, as lines of text."""
    src = root / "src"
    problems = []
    graph = {}
    tests = test_files(root)
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(root)
        if is_test_file(path, src, tests):
            continue
        raw = path.read_text()
        code = strip_comments_and_strings(raw)
        raw_lines, code_lines = raw.split("\n"), code.split("\n")
        skip = test_items(code)
        prod = [("" if in_ranges(k, skip) else l) for k, l in enumerate(code_lines)]
        in_crate = rel.parts[1] != "bin" and rel.parts[1] not in ("lib.rs", "main.rs")
        if in_crate:
            me = rel.parts[1].removesuffix(".rs")
            for used, line in imports(prod, module_path(rel)):
                if used not in (me, "self", "super", "crate"):
                    graph.setdefault(me, {}).setdefault(used, f"{rel}:{line}")
        prod_len = len(raw_lines) - sum(b - a + 1 for a, b, _ in skip)
        if raw.endswith("\n"):
            prod_len -= 1
        if prod_len > MAX_FILE:
            problems.append(f"{rel}: {prod_len} production lines (at most {MAX_FILE})")
        for name, line, length, allowed in functions(code, raw_lines, skip):
            if length > MAX_FN and not allowed:
                problems.append(
                    f"{rel}:{line}: fn {name} is {length} lines (at most {MAX_FN}, or a "
                    "`// long: why` comment above it)"
                )
    return problems + cycles(graph)


def cycles(graph):
    """Each strongly connected group of top-level modules (Tarjan), as one finding that names
    the modules importing each other directly, then every edge inside the group."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]
    nodes = set(graph) | {v for vs in graph.values() for v in vs if v in graph}

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
        mutual = [
            f"  {a} <-> {b} ({graph[a][b]}; {graph[b][a]})"
            for a in group
            for b in group
            if a < b and b in graph.get(a, {}) and a in graph.get(b, {})
        ]
        edges = [
            f"  {a} -> {b} ({graph[a][b]})" for a in group for b in sorted(graph.get(a, {})) if b in group
        ]
        findings.append(
            f"import cycle between top-level modules {{{', '.join(group)}}}:\n"
            + "\n".join(mutual + edges)
        )
    return findings


def main(argv) -> int:
    root = Path(argv[1]).resolve() if len(argv) > 1 else Path(__file__).resolve().parent.parent
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"check-structure: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("check-structure: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
