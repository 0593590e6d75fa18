"""systemd conformance helper (systemd.sh drives it; run as root with the venv python).

    systemd_check.py UNIT_DIR FAKEROOT [--max-exposure N]

Builds FAKEROOT: a copy of the machine's /usr/lib/systemd/system, the merged-/usr symlinks, the
generated units under /etc/systemd/system, an executable stub at every Exec*= binary path, the
EnvironmentFile=/WorkingDirectory=/ReadWritePaths=… paths, and stub units for dependencies that
this machine does not have (printed as notes). Then:
  * `systemd-analyze verify --man=no --generators=no --root=FAKEROOT` over every unit:
    ANY output is a failure (it exits 0 on "Unknown key …, ignoring");
  * `systemd-analyze security --offline=yes --root=FAKEROOT` per service: the exposure score is
    printed ("info:" lines); with --max-exposure N a score above N fails.
Exit: 0 ok, 1 a check failed, 2 could not run.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

UNIT_EXT = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".automount",
            ".slice", ".swap")
EXEC_KEYS = ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop",
             "ExecStopPost", "ExecCondition")
DIR_KEYS = ("WorkingDirectory", "ReadWritePaths", "ReadOnlyPaths", "InaccessiblePaths",
            "ExecPaths", "NoExecPaths", "RootDirectory")
JOB_DEPS = ("Requires", "Requisite", "Wants", "BindsTo", "PartOf", "Upholds", "OnFailure",
            "OnSuccess", "WantedBy", "RequiredBy", "UpheldBy", "Also")
SYSTEM_UNIT_DIR = "/usr/lib/systemd/system"


def say(msg):
    print(f"systemd: {msg}", file=sys.stderr)


def read_unit(path):
    """[(section, key, value)] with backslash continuations joined."""
    out, section, buf = [], None, ""
    with open(path, encoding="utf-8") as f:
        for raw in f.read().split("\n"):
            line = buf + raw.strip() if buf else raw.strip()
            if line.endswith("\\"):
                buf = line[:-1] + " "
                continue
            buf = ""
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            if "=" in line:
                k, _, v = line.partition("=")
                out.append((section, k.strip(), v.strip()))
    return out


def stub_exe(root, path):
    dest = root + path
    if os.path.lexists(dest):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(dest, 0o755)


def stub_unit(name):
    kind = name.rsplit(".", 1)[-1]
    body = "[Unit]\nDescription=kiln conformance stub for %s\n" % name
    if kind == "service":
        body += "\n[Service]\nExecStart=/bin/true\n"
    elif kind == "socket":
        body += "\n[Socket]\nListenStream=/run/kiln-conformance-stub.sock\n"
    elif kind == "timer":
        body += "\n[Timer]\nOnCalendar=daily\n"
    elif kind == "path":
        body += "\n[Path]\nPathExists=/etc/hostname\n"
    elif kind == "mount":
        where = "/" + name[:-6].replace("-", "/")
        body += f"\n[Mount]\nWhat=tmpfs\nWhere={where}\nType=tmpfs\n"
    return body


def unit_exists(root, name, generated):
    if name in generated:
        return True
    cands = [name]
    m = re.match(r"^([^@]+)@[^.]*(\.\w+)$", name)
    if m:
        cands.append(f"{m.group(1)}@{m.group(2)}")
    for c in cands:
        for d in ("/etc/systemd/system", SYSTEM_UNIT_DIR):
            if os.path.lexists(root + d + "/" + c):
                return True
    return False


def main():
    args = sys.argv[1:]
    max_exp = None
    if "--max-exposure" in args:
        i = args.index("--max-exposure")
        max_exp = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        say("usage: systemd_check.py UNIT_DIR FAKEROOT [--max-exposure N]")
        return 2
    unit_dir, root = os.path.abspath(args[0]), os.path.abspath(args[1])
    units = sorted(f for f in os.listdir(unit_dir) if f.endswith(UNIT_EXT))
    if not units:
        say(f"no unit files in {unit_dir}")
        return 1

    # the fake root
    for d in ("usr/bin", "usr/sbin", "usr/lib", "usr/lib64", "etc/systemd/system", "run", "var"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for d in ("bin", "sbin", "lib", "lib64"):
        if not os.path.lexists(os.path.join(root, d)):
            os.symlink("usr/" + d, os.path.join(root, d))
    shutil.copytree(os.path.realpath("/lib/systemd/system"), root + SYSTEM_UNIT_DIR, symlinks=True)
    stub_exe(root, "/usr/bin/true")
    etc = root + "/etc/systemd/system"
    for u in units:
        shutil.copyfile(os.path.join(unit_dir, u), os.path.join(etc, u))

    notes = []
    needed_units = set()
    for u in units:
        for section, k, v in read_unit(os.path.join(unit_dir, u)):
            if k in EXEC_KEYS and v:
                cmd = v.lstrip("-@:+!")
                try:
                    argv0 = shlex.split(cmd)[0] if cmd else ""
                except ValueError:
                    argv0 = cmd.split()[0]
                if argv0.startswith("/"):
                    stub_exe(root, argv0)
                elif argv0:
                    stub_exe(root, "/usr/bin/" + argv0)
                    notes.append(f"{u}: {k} runs {argv0!r} from PATH (stubbed as /usr/bin/{argv0})")
            elif k == "EnvironmentFile" and v:
                p = v.lstrip("-")
                if p.startswith("/") and not os.path.lexists(root + p):
                    os.makedirs(os.path.dirname(root + p), exist_ok=True)
                    open(root + p, "w").close()
            elif k in DIR_KEYS and v:
                for p in v.split():
                    p = p.lstrip("-+~")
                    if p.startswith("/"):
                        os.makedirs(root + p.split(":")[0], exist_ok=True)
            elif k in JOB_DEPS and v:
                needed_units.update(v.split())
    # The project's own units (named after a generated <project>.target) must all be generated;
    # anything else missing here is an external unit (postgresql.service, …) and gets a stub.
    projects = [u[:-len(".target")] for u in units if u.endswith(".target")]
    ok = True
    def template_of(name):
        """`tulia-web@8000.service` → `tulia-web@.service`."""
        if "@" not in name:
            return None
        head, _, rest = name.partition("@")
        return head + "@" + rest[rest.rfind("."):] if "." in rest else None

    instances = sorted(n for n in needed_units if template_of(n) in units)
    for n in sorted(needed_units):
        if "%" in n or "$" in n:
            continue
        if template_of(n) in units:
            continue  # an instance of a generated template unit
        if n not in units and any(n.startswith(p + "-") or n.startswith(p + ".") for p in projects):
            say(f"{unit_dir}: a unit depends on {n}, which is not among the generated units")
            ok = False
            continue
        if not unit_exists(root, n, units):
            with open(os.path.join(root + SYSTEM_UNIT_DIR, n), "w") as f:
                f.write(stub_unit(n))
            notes.append(f"stubbed dependency {n} (not installed on this machine)")
    for n in notes:
        print(f"  note: {n}")

    # verify: any output at all is a failure
    # Template units are verified through the instances the units ask for (the
    # ports kiln planned), or through a placeholder instance when none does.
    names = []
    for u in units:
        if "@." in u:
            wanted = [i for i in instances if template_of(i) == u]
            names.extend(wanted or [u.replace("@.", "@kiln-conformance.")])
        else:
            names.append(u)
    cmd = ["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}"] + names
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       cwd=root, env=dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER=""))
    out = r.stdout.replace(etc + "/", unit_dir + "/").replace(root, "FAKEROOT")
    if r.returncode or out.strip():
        say(f"systemd-analyze verify rejected units in {unit_dir} (exit {r.returncode}; "
            "any output counts as a failure):")
        print("  " + out.strip().replace("\n", "\n  "), file=sys.stderr)
        ok = False
    elif ok:
        print(f"  systemd-analyze verify: {len(units)} units, no output")

    # security exposure (informational unless --max-exposure)
    for u in names:
        if not u.endswith(".service"):
            continue
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", f"--root={root}",
                            "--no-pager", u], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, cwd=root, env=dict(os.environ, SYSTEMD_LOG_COLOR="0"))
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", r.stdout)
        if not m:
            say(f"systemd-analyze security gave no score for {u}:\n  " + r.stdout.strip()[-800:])
            ok = False
            continue
        score = float(m.group(1))
        print(f"info: {u}: exposure {score} {m.group(2)}")
        if max_exp is not None and score > max_exp:
            say(f"{unit_dir}/{u}: exposure {score} exceeds --max-exposure {max_exp}")
            ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug in the check itself, not a finding: exit 2
        import traceback
        traceback.print_exc()
        sys.exit(2)
