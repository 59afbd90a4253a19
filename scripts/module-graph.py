#!/usr/bin/env python3
"""Prints each crate's module graph (which sibling modules a module uses)
and fails if any crate has an import cycle between sibling modules.

    scripts/module-graph.py            # the graph, as docs/architecture.md shows it
    scripts/module-graph.py --check    # only the cycle check (scripts/test.sh)

A module is a file (`a.rs`, `a/mod.rs`); `use crate::x::y`, `crate::x::y::…`
paths and `super::…` paths in its code (test modules excluded) are edges.
Edges are reported between siblings: `qmp::server -> qmp::hub` says the
file `qmp/server.rs` uses something from `qmp/hub.rs` or below it. A
parent using its children (declaring them) and a child using its parent's
own items are not cycles; two siblings using each other, directly or
through other siblings, are.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRATES = [("wire", "wire/src"), ("broker", "broker/src"), ("sandbox", "sandbox/src"),
          ("emulator", "emulator/src")]


def modules(src):
    """Module path (tuple) -> file, for every file under src/ (bins excluded)."""
    out = {}
    for dirpath, dirs, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        if rel.split(os.sep)[0] == "bin":
            continue
        parts = () if rel == "." else tuple(rel.split(os.sep))
        for f in files:
            if not f.endswith(".rs"):
                continue
            if f in ("lib.rs", "main.rs") and not parts:
                out[()] = os.path.join(dirpath, f)
            elif f == "mod.rs":
                out[parts] = os.path.join(dirpath, f)
            else:
                out[parts + (f[:-3],)] = os.path.join(dirpath, f)
    return out


def code(path):
    """The file's text up to its first `#[cfg(test)]`, comments removed."""
    text = open(path, encoding="utf-8").read()
    cut = text.find("#[cfg(test)]")
    if cut >= 0:
        text = text[:cut]
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return text


PATH = re.compile(r"\b((?:crate|super)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)(::\{([^;]*?)\})?")


def refs(mod, text):
    """Absolute module paths referred to from module `mod`."""
    found = []
    for m in PATH.finditer(text):
        segs = m.group(1).split("::")
        base = list(mod)
        if segs[0] == "crate":
            base = []
            segs = segs[1:]
        else:
            # `super` from a.rs is a's parent; the file is the module itself.
            while segs and segs[0] == "super":
                base = base[:-1]
                segs = segs[1:]
        heads = [segs]
        if m.group(3):
            heads = [segs + [re.split(r"[\s:{,]", item.strip())[0]]
                     for item in m.group(3).split(",") if item.strip()]
        for h in heads:
            found.append(tuple(base + [s for s in h if s and s != "self"]))
    return found


def resolve(path, mods):
    """The deepest module that is a prefix of path."""
    for n in range(len(path), -1, -1):
        if path[:n] in mods:
            return path[:n]
    return ()


def graph(src):
    mods = modules(src)
    edges = set()
    for mod, f in mods.items():
        for r in refs(mod, code(f)):
            target = resolve(r, mods)
            # Lift both ends to the level where they are siblings.
            n = 0
            while n < len(mod) and n < len(target) and mod[n] == target[n]:
                n += 1
            if n == len(mod) or n == len(target):
                continue  # ancestor/descendant: not a sibling edge
            a, b = mod[: n + 1], target[: n + 1]
            edges.add((a, b))
    return mods, edges


def cycles(edges):
    """Strongly connected components with more than one node."""
    nodes = sorted({a for a, _ in edges} | {b for _, b in edges})
    succ = {n: sorted(b for a, b in edges if a == n) for n in nodes}
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for n in nodes:
        if n not in index:
            visit(n)
    return out


def name(m):
    return "::".join(m) or "(root)"


def main():
    check = "--check" in sys.argv[1:]
    bad = False
    for crate, src in CRATES:
        _, edges = graph(os.path.join(ROOT, src))
        if not check:
            print(f"{crate}:")
            by_parent = {}
            for a, b in sorted(edges):
                by_parent.setdefault(a[:-1], {}).setdefault(a, []).append(b[-1])
            for parent in sorted(by_parent):
                for a, targets in sorted(by_parent[parent].items()):
                    print(f"    {name(a)} -> {', '.join(sorted(set(targets)))}")
        for comp in cycles(edges):
            bad = True
            print(f"{crate}: import cycle between {', '.join(name(c) for c in comp)}",
                  file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
