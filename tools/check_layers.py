#!/usr/bin/env python3
"""check_layers.py - fails when an #include goes up a layer (lib/README.md, "Rules").

The folders of lib/ are layers, lowest first:
    platform -> util -> config -> prof -> core -> cuda -> stats
and preload/ sits on top of them all. A file may include headers of its own folder and of the
folders below it, never above. tools/ sees only the public headers (include/) and its own files.
System headers (<...>) are not checked.

Usage: check_layers.py [SOURCE_ROOT]   (default: the parent of this script's folder)
Prints one line per violation ("file:line: ...") and exits 1 if there is any, else 0.
"""
import os
import re
import sys

LAYERS = ["platform", "util", "config", "prof", "core", "cuda", "stats"]
RANK = {name: i for i, name in enumerate(LAYERS)}
PRELOAD_RANK = len(LAYERS)
SOURCE_EXT = (".h", ".hpp", ".cpp", ".cc", ".c", ".cu")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(root, folder):
    for dirpath, _, names in os.walk(os.path.join(root, folder)):
        for name in sorted(names):
            if name.endswith(SOURCE_EXT):
                yield os.path.join(dirpath, name)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if m:
                yield number, m.group(1)


def is_public(root, header):
    return os.path.isfile(os.path.join(root, "include", header)) or os.path.isfile(
        os.path.join(root, "include", header + ".in"))  # generated (cachealloc/version.h)


def layer_of(header):
    """The lib/ layer a quoted include names ("core/heap.h" -> "core"), or None."""
    first = header.split("/", 1)[0]
    return first if "/" in header and first in RANK else None


def check(root):
    errors = []

    def rel(path):
        return os.path.relpath(path, root)

    # lib/<layer>/...: only the same layer or a lower one; never preload/ or tools/.
    for layer in LAYERS:
        for path in sources(root, os.path.join("lib", layer)):
            for number, header in includes(path):
                target = layer_of(header)
                if target is not None and RANK[target] > RANK[layer]:
                    errors.append(f"{rel(path)}:{number}: lib/{layer} includes \"{header}\" "
                                  f"from the higher layer lib/{target}")
                elif target is None and not is_public(root, header) and (
                        ".." in header or header.startswith(("preload/", "tools/"))):
                    errors.append(f"{rel(path)}:{number}: lib/{layer} includes \"{header}\" "
                                  "from outside lib/ and include/")

    # tools/: public headers and files of the tool's own folder only.
    for path in sources(root, "tools"):
        here = os.path.dirname(path)
        for number, header in includes(path):
            if is_public(root, header) or (
                    ".." not in header and os.path.isfile(os.path.join(here, header))):
                continue
            errors.append(f"{rel(path)}:{number}: tools/ includes \"{header}\", which is "
                          "neither a public header (include/) nor in its own folder")
    return errors


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isdir(os.path.join(root, "lib")):
        print(f"check_layers: no lib/ under {root}", file=sys.stderr)
        return 2
    errors = check(root)
    for e in errors:
        print(e)
    print(f"check_layers: {len(errors)} include(s) going up a layer")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
