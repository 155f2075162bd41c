"""What the suite needs from the host, made independent of the host.

- A clone may live under a directory of mode 0700 (`mktemp -d`, `/root`): a process that drops
  to another uid (nobody, www-data for Apache) then cannot open the build tree, so the module it
  loads is a copy in a directory of the suite's own that every uid can reach.
- The host may already have an account of a name the suite uses (a `courier` user where Courier
  was once installed, a local `alice`): in a private view of /etc/passwd, /etc/shadow or
  /etc/group the suite's line for a name replaces the host's, it is not appended after it
  (getpwnam returns the first match, so an appended line would never be seen).
"""
import os
import shutil


def shared_copy(path, directory, mode=0o644):
    """A copy of the file `path` in `directory` (created 0755 if needed), with `mode` (0755 for a
    program), which any uid can open as long as `directory`'s parents are searchable (the
    suite's temp dirs are)."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    copy = os.path.join(directory, os.path.basename(path))
    shutil.copyfile(path, copy)
    os.chmod(copy, mode)
    return copy


# The build tree's programs that cases run as another uid (setpriv to nobody, a su caller):
# tests/pam_probe, the tools. Each environment variable naming one is pointed at a shared copy.
SHARED_PROGRAMS = ("MAILAUTH_PAM_PROBE", "MAILAUTH_CACHE_TOOL", "MAILAUTH_PROBE_TOOL",
                   "MAILAUTH_ACCOUNTS_TOOL")


def share_programs(directory):
    """Point each of SHARED_PROGRAMS that is set at a copy in `directory` (mode 0755)."""
    for var in SHARED_PROGRAMS:
        path = os.environ.get(var)
        if path and os.path.exists(path):
            os.environ[var] = shared_copy(os.path.abspath(path), directory, 0o755)


def with_entry(text, name, line=""):
    """`text` (a passwd, shadow or group file) without any line for `name`, then `line` (none:
    the name is simply not there)."""
    kept = [l for l in text.splitlines(keepends=True) if l.split(":", 1)[0] != name]
    if kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    return "".join(kept) + line


def replace_entry(path, name, line=""):
    """Rewrite the file `path` (a private copy) so that `line` is the only entry for `name` (with
    no line: so that there is none)."""
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(with_entry(text, name, line))


def searchable_up_to(path, top):
    """Give every directory from path's parent up to (not including) top the search bit for
    everyone (0711 at least; nothing becomes listable). pytest makes its temp base 0700, and
    some cases run the module as another real uid (su emulated: real uid 1000, effective 0);
    under valgrind such a process opens files as its real uid, so the case's service and config
    files must be reachable by it."""
    top = os.path.realpath(top)
    d = os.path.dirname(os.path.realpath(path))
    while d.startswith(top + os.sep) and d != top:
        mode = os.stat(d).st_mode & 0o777
        if mode & 0o111 != 0o111:
            os.chmod(d, mode | 0o111)
        d = os.path.dirname(d)
