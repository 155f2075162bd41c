"""The demo behind scripts/demo.sh: a throwaway Dovecot, two logins through real libpam."""
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))

import certs  # noqa: E402
import dovecot  # noqa: E402
import pamrun  # noqa: E402


def show(title, result):
    print("\n--- %s" % title)
    for prio, text in result.logs:
        if "result=" in text:
            print("    log: " + text)
    print("    PAM answer: %s" % result.code)


def main():
    module = sys.argv[1]
    work = tempfile.mkdtemp(prefix="mailauth-demo-")
    os.chmod(work, 0o755)
    pki = certs.make_pki(os.path.join(work, "pki"))
    dv = dovecot.Dovecot(os.path.join(work, "dovecot"), {"alice": "s3cret"},
                         pki["server_cert"], pki["server_key"]).start()
    try:
        conf = ('ca_file = "%s"\nfail_delay = 0\n\n'
                'server "local-imaps" {\n  protocol = imap\n  host = "localhost"\n'
                '  port = %d\n  tls = implicit     # certificate verified against ca_file\n}\n'
                % (pki["ca"], dv.ports["imaps"]))
        pam = pamrun.PamRunner(module, os.path.join(work, "pam"))
        path = pam.write_config(conf)
        print("Dovecot is listening on 127.0.0.1 (IMAPS port %d); user alice, password s3cret."
              % dv.ports["imaps"])
        print("Config %s:\n\n%s" % (path, conf))
        print("PAM service: auth required %s config=%s" % (module, path))
        good = pam.run(None, "alice", "s3cret", args=(), config_path=path)
        show("pamtester mailtest alice authenticate   (password: s3cret)", good)
        bad = pam.run(None, "alice", "not-the-password", args=(), config_path=path)
        show("pamtester mailtest alice authenticate   (password: not-the-password)", bad)
        ok = good.code == "PAM_SUCCESS" and bad.code == "PAM_AUTH_ERR"
        print("\n%s" % ("demo OK: one login accepted, one refused" if ok else "demo FAILED"))
        return 0 if ok else 1
    finally:
        dv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
