#!/usr/bin/env bash
# The C sources match .clang-format.
set -u
cd "$1" || exit 2
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build*')
bad=0 good=0
for f in $files; do
    if clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then good=$((good + 1)); else
        bad=$((bad + 1)); echo "not formatted: $f (clang-format -i $f)"; fi
done
echo "format: $good passed, $bad failed"
[ "$bad" -eq 0 ]
