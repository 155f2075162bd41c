"""Examples from the man pages, so that tests and benchmarks run exactly what the pages show."""
import os

SOURCE_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def man_examples(title):
    """The .EX/.EE blocks under the .SS heading of man/pam_mailauth.8 that contains title."""
    with open(os.path.join(SOURCE_ROOT, "man", "pam_mailauth.8")) as f:
        page = f.read()
    blocks, inside, current, in_section = [], False, [], False
    for line in page.splitlines():
        if line.startswith((".SS", ".SH")):
            if in_section:
                break
            in_section = line.startswith(".SS") and title in line
        elif in_section and line == ".EX":
            inside, current = True, []
        elif in_section and line == ".EE":
            inside = False
            blocks.append("\n".join(current) + "\n")
        elif inside:
            current.append(line.replace("\\-", "-").replace("\\(dq", '"').replace("\\e", "\\"))
    if not blocks:
        raise AssertionError("man/pam_mailauth.8 has no example under a heading with %r" % title)
    return blocks
