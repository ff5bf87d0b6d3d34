#!/usr/bin/env python3
"""Fails when a crate's modules import each other in a circle.

For every crate under the given folders (default: functions/ and worker/), each top-level
module of its src/ (`foo.rs`, `foo/…`) is a node; `use crate::foo…`, `crate::foo::…` paths and
`super::` from a top-level module are edges (a name the crate root re-exports with `pub use`
counts as its module). Test code (`#[cfg(test)]` items, `tests.rs` and other files of
`#[cfg(test)] mod name;` modules) is left out: it may import the in-memory twins that import
the module under test. Prints every cycle found and exits 1 if there is one.
"""

import re
import sys
from pathlib import Path

USE_GROUP = re.compile(r"\bcrate::\{([^;]*?)\}\s*;", re.S)
CRATE_PATH = re.compile(r"\bcrate::([A-Za-z_][A-Za-z0-9_]*)")
SUPER_PATH = re.compile(r"\bsuper::(\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_]*)", re.S)
REEXPORT = re.compile(r"^\s*pub use ([A-Za-z_][A-Za-z0-9_]*)::(\{[^;]*\}|[A-Za-z_][A-Za-z0-9_]*)\s*;", re.M | re.S)
TEST_BLOCK = re.compile(r"#\[cfg\(test\)\]\s*(mod\s+\w+\s*\{.*|mod\s+\w+\s*;)", re.S)
TEST_MOD_FILE = re.compile(r"#\[cfg\(test\)\]\s*mod\s+(\w+)\s*;")
COMMENT = re.compile(r"(^|\s)//.*$", re.M)


def code(text: str) -> str:
    """The file without comments (doc links are not imports) and without its `#[cfg(test)]`
    module (by convention the file's tail) or test `mod` lines."""
    return TEST_BLOCK.sub("", COMMENT.sub("", text))


def names(group: str) -> list[str]:
    """The first path segment of each item of a `{a, b::c, d::{e}}` group."""
    depth, item, items = 0, "", []
    for ch in group.strip("{}"):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(item)
            item = ""
        else:
            item += ch
    items.append(item)
    return [i.strip().split("::")[0].strip() for i in items if i.strip()]


def module_of(src: Path, path: Path) -> str | None:
    rel = path.relative_to(src)
    if rel.parts[0] in ("lib.rs", "main.rs"):
        return None
    return rel.parts[0].removesuffix(".rs")


def test_files(src: Path) -> set[Path]:
    """Files of test modules declared as `#[cfg(test)] mod name;` (`tests.rs` and others)."""
    found = set()
    for path in src.rglob("*.rs"):
        folder = path.parent if path.name in ("lib.rs", "main.rs", "mod.rs") else path.with_suffix("")
        for name in TEST_MOD_FILE.findall(COMMENT.sub("", path.read_text())):
            found |= {folder / f"{name}.rs", folder / name / "mod.rs"}
    return found


def crate_graph(src: Path) -> dict[str, set[str]]:
    modules = {p.name.removesuffix(".rs") for p in src.iterdir() if p.suffix == ".rs" or p.is_dir()}
    modules -= {"lib", "main"}
    reexports: dict[str, str] = {}
    for root in ("lib.rs", "main.rs"):
        if (src / root).exists():
            for module, group in REEXPORT.findall((src / root).read_text()):
                for name in names(group):
                    reexports[name.split(" as ")[-1].strip()] = module
    graph: dict[str, set[str]] = {m: set() for m in modules}
    tests = test_files(src)
    for path in src.rglob("*.rs"):
        module = module_of(src, path)
        if module is None or path.name == "tests.rs" or path in tests:
            continue
        text = code(path.read_text())
        targets: list[str] = []
        for group in USE_GROUP.findall(text):
            targets += names(group)
        targets += CRATE_PATH.findall(text)
        top_level = len(path.relative_to(src).parts) == 1
        if top_level:
            for found in SUPER_PATH.findall(text):
                targets += names(found) if found.startswith("{") else [found]
        for target in targets:
            target = reexports.get(target, target)
            if target in modules and target != module:
                graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    roots = [Path(a) for a in sys.argv[1:]] or [Path("functions"), Path("worker")]
    failed = False
    crates = 0
    for root in roots:
        for manifest in sorted(root.rglob("Cargo.toml")):
            src = manifest.parent / "src"
            if not src.is_dir():
                continue
            crates += 1
            graph = crate_graph(src)
            for component in cycles(graph):
                failed = True
                edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
                print(f"{manifest.parent}: modules import each other in a circle: {', '.join(edges)}")
    print(f"module cycles: {'found' if failed else 'none'} in {crates} crates")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
