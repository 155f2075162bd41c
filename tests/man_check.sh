#!/usr/bin/env bash
# The manual pages render with man -l, and groff finds nothing to warn about.
set -u
passed=0 failed=0
for page in "$@"; do
    if out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) && [ -z "$out" ] &&
        [ -n "$(MANWIDTH=80 man -l "$page" 2>/dev/null | grep -m1 NAME)" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "man -l $page: ${out:-no NAME section}"
    fi
    if warn=$(groff -man -ww -z "$page" 2>&1) && [ -z "$warn" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "groff warnings for $page: $warn"
    fi
done
echo "man: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
