"""The layout's promises, checked: `python -m scripts.check_layout` (also run by the tests).

- No product module over 500 lines; the orchestrator's top level holds at most 6 modules.
- Imports flow one way: features (synthesis, sessions) -> workers / metrics / http ->
  errors -> fleet. No feature imports another, no package imports its parent back, the
  LiveKit plugin depends on the worker client only, and Piper's process (tts_worker) and the
  orchestrator never import each other. Only the assembly reads the settings object.
- At most MAX_REPEATS places in product code repeat a block of six or more lines, the same
  or of the same shape (other names, strings and numbers).

Prints each problem and exits 1 when there is any.
"""

from __future__ import annotations

import ast
import io
import keyword
import sys
import tokenize
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("orchestrator", "livekit_plugin", "fleet", "tts_worker")
MAX_LINES = 500
MAX_TOP_LEVEL = 6
MAX_REPEATS = 3
BLOCK = 6

# Layers inside the orchestrator: a module may import its own package and lower layers.
LAYERS = {
    "orchestrator.errors": 0,
    "orchestrator.workers": 1,
    "orchestrator.metrics": 1,
    "orchestrator.http": 2,
    "orchestrator.synthesis": 3,
    "orchestrator.sessions": 3,
    "orchestrator.web": 3,
    "orchestrator.settings": 4,
    "orchestrator.app": 5,
    "orchestrator.cli": 6,
}
# What each top-level package may import of this repository.
ALLOWED_ROOTS = {
    "fleet": {"fleet", "tts_rpc"},  # records are read from the workers' capabilities
    "tts_worker": {"tts_worker", "fleet", "tts_rpc"},
    "orchestrator": {"orchestrator", "fleet", "tts_rpc"},
    "livekit_plugin": {
        "livekit_plugin",
        "orchestrator.workers",
        "orchestrator.errors",
        "fleet",
        "tts_rpc",
    },
}
OURS = ("orchestrator", "livekit_plugin", "fleet", "tts_worker", "tts_rpc")


def product_files() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[str, int] | None:
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return prefix, layer
    return None


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from orchestrator import errors` names a module
                yield node.lineno, f"{node.module}.{alias.name}"


def check_sizes() -> list[str]:
    problems = []
    for path in product_files():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            problems.append(f"{path.relative_to(ROOT)} has {lines} lines (limit {MAX_LINES})")
    top = sorted(p.name for p in (ROOT / "orchestrator").glob("*.py"))
    if len(top) > MAX_TOP_LEVEL:
        problems.append(f"orchestrator/ holds {len(top)} modules (limit {MAX_TOP_LEVEL}): {top}")
    return problems


def check_imports() -> list[str]:
    problems = []
    for path in product_files():
        here = module_name(path)
        root = here.split(".")[0]
        own = layer_of(here)
        for line, target in imports_of(path):
            if not target.startswith(OURS):
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if not any(target == a or target.startswith(a + ".") for a in ALLOWED_ROOTS[root]):
                if not any(a.startswith(target + ".") for a in ALLOWED_ROOTS[root]):
                    problems.append(f"{where}: {here} may not import {target}")
                continue
            theirs = layer_of(target)
            if own is None or theirs is None or theirs[0] == own[0]:
                continue
            if theirs[1] >= own[1]:
                problems.append(f"{where}: {own[0]} imports {theirs[0]} (a layer at or above it)")
    return problems


# -- repeated blocks ------------------------------------------------------------------------


def shapes(path: Path) -> list[tuple[int, str]]:
    """(line number, shape) of each line that counts: names, strings and numbers folded;
    blank lines, comments, imports, lone punctuation and docstrings passed over."""
    out: dict[int, list[str]] = defaultdict(list)
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT):
            continue
        if token.type in (tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if token.type == tokenize.NAME:
            text = token.string if keyword.iskeyword(token.string) else "N"
        elif token.type == tokenize.NUMBER:
            text = "0"
        elif token.type == tokenize.STRING:
            text = "S"
        else:
            text = token.string
        out[token.start[0]].append(text)
    lines = []
    for number in sorted(out):
        shape = " ".join(out[number])
        if shape.startswith(("import ", "from ")) or shape in ("S", ")", "]", "}", "),", "):"):
            continue
        if len(out[number]) <= 1:
            continue
        lines.append((number, shape))
    return lines


_PLAIN = frozenset({"N", "0", "S", "=", ",", ":", ".", "|", "[", "]", "None", "self"})
# Declarations: a settings field (`name: float = Field(default=0.3, gt=0)`) or an alias of a
# looked-up object (`self._x = self._series["x"][()]`) holds no logic, only names and values.
_DECLARATION = _PLAIN | {"(", ")", "-"}


def thin(shape: str) -> bool:
    """Lines that say little on their own: short ones, plain assignments, annotations and
    keyword arguments (`self.x = x`, `name: int = 0,`) that every constructor has, and
    declarations built from calls without operators or keywords."""
    parts = shape.split()
    return len(parts) <= 3 or set(parts) <= _PLAIN or ("=" in parts and set(parts) <= _DECLARATION)


def repeated_blocks() -> list[tuple[str, str]]:
    """Pairs of places (file:line) that share a run of BLOCK or more counted lines."""
    seen: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for path in product_files():
        lines = shapes(path)
        name = str(path.relative_to(ROOT))
        for i in range(len(lines) - BLOCK + 1):
            window = tuple(shape for _, shape in lines[i : i + BLOCK])
            if sum(not thin(s) for s in window) >= BLOCK - 1:
                seen[window].append((name, lines[i][0]))
    # Matching windows, grouped by the pair of files they join.
    matches: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for places in seen.values():
        if len(places) > 8:  # in more than 8 places: a common idiom, not a copy
            continue
        for (file_a, line_a), (file_b, line_b) in zip(places, places[1:], strict=False):
            if file_a == file_b and abs(line_a - line_b) < BLOCK:
                continue  # a run overlapping itself
            matches[(file_a, file_b)].append((line_a, line_b))
    # Consecutive windows of one run are one pair of places.
    pairs = []
    for (file_a, file_b), lines in matches.items():
        last: tuple[int, int] | None = None
        for line_a, line_b in sorted(lines):
            if last is None or line_a - last[0] > 2 * BLOCK or abs(line_b - last[1]) > 2 * BLOCK:
                pairs.append((f"{file_a}:{line_a}", f"{file_b}:{line_b}"))
            last = (line_a, line_b)
    return sorted(pairs)


def check_repeats() -> list[str]:
    pairs = repeated_blocks()
    if len(pairs) <= MAX_REPEATS:
        return []
    listed = "; ".join(f"{a} ~ {b}" for a, b in pairs)
    return [f"{len(pairs)} repeated blocks (limit {MAX_REPEATS}): {listed}"]


def main() -> int:
    problems = check_sizes() + check_imports() + check_repeats()
    for problem in problems:
        print(problem)
    if not problems:
        print(f"layout ok: {len(product_files())} product modules")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
