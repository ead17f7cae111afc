#!/usr/bin/env python3
"""Switches over an op (`switch … op {`) and whether their own level has `default:`; `-a` lists all.

    python3 scripts/op-switches.py [REPO] [-a]
"""
import re, sys, glob, os
root = sys.argv[1] if len(sys.argv) > 1 else '.'
pat = re.compile(r'switch\s+([^{\n]*\bop\b[^{\n]*|[^{\n]*\.op)\s*\{')
total = withdef = 0
for path in sorted(glob.glob(os.path.join(root, 'Sources/**/*.swift'), recursive=True)):
    text = open(path).read()
    for m in pat.finditer(text):
        i = m.end(); depth = 1; has = False; j = i
        while depth and j < len(text):
            c = text[j]
            if c == '{': depth += 1
            elif c == '}': depth -= 1
            elif depth == 1 and text.startswith('default:', j): has = True
            j += 1
        total += 1; withdef += has
        line = text.count('\n', 0, m.start()) + 1
        if has or '-a' in sys.argv: print(f"{'DEFAULT' if has else 'ok     '} {os.path.relpath(path, root)}:{line}: {m.group(0).strip()[:80]}")
print(f"switches over an op: {total}, with default: {withdef}")
