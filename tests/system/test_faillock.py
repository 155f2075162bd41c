"""The man page's pam_faillock stack, run once through pamtester under pam_wrapper.

pam_faillock counts failures only for accounts the system knows, so pamtester runs in a sandbox
(sandbox.py) whose passwd/shadow hold a local account; the tally directory is a temp dir given
with faillock's dir= option. pam_wrapper shows every pam_syslog line, the module's included.
"""
import os
import re
import subprocess

import pytest

from common import LOG_TEXTS, SSH_USER, USERS, logins, man_examples, need, run, write_root_file
from helpers import config, hosts, scaled, server
from pamrun import RESULTS
from sandbox import Sandbox, free_uid

SERVICE = "mailauth-faillock"
LOCKED = "The account is locked due to 3 failed logins."


class Stack:
    def __init__(self, directory, module, mail_conf):
        self.tally = os.path.join(directory, "tally")
        os.makedirs(self.tally)
        self.services = os.path.join(directory, "services")
        os.makedirs(self.services)
        lines = []
        for line in man_examples("pam_faillock")[0].splitlines():
            line = line.replace("pam_mailauth.so", "%s config=%s" % (module, mail_conf))
            if "pam_faillock.so" in line:
                line += " dir=" + self.tally
            lines.append(line)
        with open(os.path.join(self.services, SERVICE), "w") as f:
            f.write("\n".join(lines) + "\n")
        self.sandbox = Sandbox(os.path.join(directory, "view"))
        self.sandbox.account(SSH_USER, free_uid(), "/nonexistent")
        self.sandbox.no_account("alice")   # the mail-only user below, even where the host has one

    def login(self, user, password):
        """(result, output, module log lines) of pamtester authenticate + acct_mgmt."""
        r = self.sandbox.run(["env", "LD_PRELOAD=libpam_wrapper.so", "PAM_WRAPPER=1",
                              "PAM_WRAPPER_SERVICE_DIR=" + self.services,
                              "PAM_WRAPPER_DEBUGLEVEL=2",
                              "pamtester", SERVICE, user, "authenticate", "acct_mgmt"],
                             input=(password + "\n").encode("utf-8"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=scaled(60))
        out = r.stdout.decode("utf-8", "replace")
        syslog = re.findall(r"SYSLOG\(\d+\): (.*)", out)
        LOG_TEXTS.append("\n".join(syslog))
        result = "UNKNOWN"
        for needle, name in RESULTS.items():
            if needle in out:
                result = name
                break
        if r.returncode == 0 and not (result == "PAM_SUCCESS" and "account management done"
                                      in out):
            result = "UNKNOWN"
        return result, out, [line for line in syslog if "result=" in line]


@pytest.fixture
def stack(module, dv, pki, scratch):
    need("pamtester", "faillock", "unshare")
    mail_conf = write_root_file(os.path.join(scratch, "mail.conf"), config(
        pki, server("dv", "imap", hosts("127.0.0.1"), dv.ports["imap"])))
    return Stack(scratch, module, mail_conf)


def test_faillock_stack(stack, dv):
    user, password = SSH_USER, USERS[SSH_USER]
    result, out, module_lines = stack.login(user, password)
    assert result == "PAM_SUCCESS", out
    assert len(module_lines) == 1 and "result=accepted" in module_lines[0], out

    for attempt in range(3):
        result, out, module_lines = stack.login(user, "wrong-%d" % attempt)
        assert result == "PAM_AUTH_ERR", out
        assert len(module_lines) == 1 and "result=refused" in module_lines[0], out
    assert os.path.exists(os.path.join(stack.tally, user))
    assert "account temporarily locked" in out, out

    # Locked: refused with the right password, and the mail server is not even asked.
    offset = dv.log_size()
    result, out, module_lines = stack.login(user, password)
    assert result == "PAM_AUTH_ERR", out
    assert LOCKED in out, out
    assert module_lines == [], out
    assert logins(dv, user, offset) == 0

    reset = run(["faillock", "--dir", stack.tally, "--user", user, "--reset"])
    assert reset.returncode == 0, reset.stdout
    result, out, _ = stack.login(user, password)
    assert result == "PAM_SUCCESS", out

    # What the man page warns of: a mail-only user (no local account) is refused by this stack
    # even though the module accepted the password.
    result, out, module_lines = stack.login("alice", USERS["alice"])
    assert result != "PAM_SUCCESS", out
    assert len(module_lines) == 1 and "result=accepted" in module_lines[0], out
