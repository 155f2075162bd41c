#!/usr/bin/env bash
# A DESTDIR install lands the module (exporting only pam_sm_*), the man pages and the example
# config where the README says, and nothing under /etc.
set -u
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
passed=0 failed=0
check() { if eval "$2"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAILED: $1"; fi; }

meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >/dev/null 2>&1
check "meson install succeeds" "[ \$? -eq 0 ]"
module=$(find "$dest" -name pam_mailauth.so -path '*/security/*' | head -n 1)
check "module installed in a security directory" "[ -n \"$module\" ]"
check "module has no lib prefix" "[ -z \"\$(find \"$dest\" -name 'libpam_mailauth*')\" ]"
check "only pam_sm_* exported" \
  "[ \"\$(nm -D --defined-only \"$module\" | awk '{print \$3}' | sort | tr '\n' ' ')\" = 'pam_sm_acct_mgmt pam_sm_authenticate pam_sm_setcred ' ]"
check "pam_mailauth.8 installed" "[ -n \"\$(find \"$dest\" -path '*man8/pam_mailauth.8')\" ]"
check "pam_mailauth.conf.5 installed" "[ -n \"\$(find \"$dest\" -path '*man5/pam_mailauth.conf.5')\" ]"
check "mailauth-probe.8 installed" "[ -n \"\$(find \"$dest\" -path '*man8/mailauth-probe.8')\" ]"
check "mailauth-probe installed in sbin" "[ -x \"\$(find \"$dest\" -path '*/sbin/mailauth-probe' | head -n 1)\" ]"
check "mailauth-cache.8 installed" "[ -n \"\$(find \"$dest\" -path '*man8/mailauth-cache.8')\" ]"
cache_tool=$(find "$dest" -path '*/sbin/mailauth-cache' | head -n 1)
check "mailauth-cache installed in sbin" "[ -x \"$cache_tool\" ]"
# Tool-only code (tools/cache_store.c) is in the tool and not in the module.
check "store walker in mailauth-cache" "nm \"$cache_tool\" | grep -qw store_walk"
check "store walker not in the module" "! nm \"$module\" | grep -qw store_walk"
check "libnss_mailauth.so.2 installed, exporting only _nss_mailauth_*" \
  "[ -z \"\$(nm -D --defined-only \"\$(find \"$dest\" -name libnss_mailauth.so.2 | head -n 1)\" | awk '{print \$3}' | grep -v '^_nss_mailauth_')\" ] && [ -n \"\$(find \"$dest\" -name libnss_mailauth.so.2)\" ]"
check "mailauth-accounts installed in sbin" "[ -x \"\$(find \"$dest\" -path '*/sbin/mailauth-accounts' | head -n 1)\" ]"
check "mailauth-accounts.8 installed" "[ -n \"\$(find \"$dest\" -path '*man8/mailauth-accounts.8')\" ]"
check "probe diagnosis (tool-only) not in the module" "! nm \"$module\" | grep -qw probe_endpoint"
check "accounts admin code not in the module" "! nm \"$module\" | grep -qw accounts_set_state"
# The tools' one stderr sink and escaper (src/tool_output.c): in every tool, not in the module.
for t in mailauth-probe mailauth-cache mailauth-accounts; do
  check "$t uses the tools' output sink" \
    "nm \"\$(find \"$dest\" -path '*/sbin/$t' | head -n 1)\" | grep -qw tool_stderr_logger"
done
check "tools' output sink not in the module" "! nm \"$module\" | grep -qw tool_stderr_logger"
check "example config installed" "[ -n \"\$(find \"$dest\" -name pam_mailauth.conf.example)\" ]"
check "nothing installed under /etc" "[ ! -e \"$dest/etc\" ]"
echo "install: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
