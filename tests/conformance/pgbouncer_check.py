"""pgbouncer conformance helper (pgbouncer.sh drives it; run as root with the venv python).

    pgbouncer_check.py INI WORK PGDIR PKI [ENV_DIR]

INI    the generated pgbouncer.ini (never modified)
WORK   a scratch dir (the copy, userlist, pidfile, log and socket go there)
PGDIR  a running throwaway cluster made by pg-cluster.sh (DIR/port, DIR/sock)
PKI    the throwaway PKI (pki.sh)
ENV_DIR  optional: DATABASE_URL users found in its *.env.example / compose.yaml are tested too

With KILN_PGB_APP_USER and KILN_PGB_APP_PASSWORD set, the cluster is one whose roles were made
by kiln's own init script (postgres.sh runs it): the app role and its database are used as they
are, never created, re-passworded or granted anything, and the cluster's superuser is reached
as the postgres OS user (peer), as a host's pg_hba.conf allows.

Copies the ini rewriting ONLY host-specific keys (listen_addr/listen_port, unix_socket_dir,
pidfile, logfile, auth_file, auth_hba_file, user, TLS file paths, and host/port of every
[databases] entry), creates the roles and databases it names in the cluster with random
passwords (SCRAM), writes their SCRAM verifiers to the auth_file, starts pgbouncer as the
`postgres` user, connects through it with psql (SELECT 1, a multi-statement transaction, the
admin console) and stops it by PID. Exit: 0 ok, 1 check failed, 2 could not run.
"""

import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

ADMIN_DB = "pgbouncer"
FALLBACK_USER = "kiln_conformance"
TLS_FILES = {
    "client_tls_key_file": "key.pem", "client_tls_cert_file": "cert.pem",
    "client_tls_ca_file": "ca.pem", "server_tls_key_file": "key.pem",
    "server_tls_cert_file": "cert.pem", "server_tls_ca_file": "ca.pem",
}


def say(msg):
    print(f"pgbouncer: {msg}", file=sys.stderr)


class Fail(Exception):
    pass


def read_ini(path):
    """[(section, key, value, line_index)] plus the raw lines."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, section = [], None
    for i, raw in enumerate(lines):
        s = raw.strip()
        if not s or s[0] in ";#":
            continue
        if s.startswith("%include"):
            raise Fail(f"{path}:{i + 1}: %include is not supported by the conformance check")
        m = re.match(r"\[([^\]]+)\]$", s)
        if m:
            section = m.group(1).strip().lower()
            continue
        if "=" not in s:
            raise Fail(f"{path}:{i + 1}: not a key = value line: {raw!r}")
        k, _, v = s.partition("=")
        out.append((section, k.strip(), v.strip(), i))
    return out, lines


def parse_connstr(v):
    """'host=x port=5432 dbname=\\'a b\\'' -> [(k, v)] (libpq-style, single quotes)."""
    toks, i = [], 0
    while i < len(v):
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*", v[i:])
        if not m:
            if v[i:].strip():
                raise Fail(f"cannot parse connection string {v!r}")
            break
        i += m.end()
        if i < len(v) and v[i] == "'":
            j, val = i + 1, ""
            while j < len(v) and v[j] != "'":
                if v[j] == "\\" and j + 1 < len(v):
                    j += 1
                val += v[j]
                j += 1
            i = j + 1
        else:
            m2 = re.match(r"[^\s]*", v[i:])
            val = m2.group(0)
            i += m2.end()
        toks.append((m.group(1).lower(), val))
    return toks


def fmt_connstr(toks):
    def q(x):
        return x if x and re.fullmatch(r"[^\s'\\]+", x) else "'" + x.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return " ".join(f"{k}={q(v)}" for k, v in toks)


def csv(v):
    return [x.strip() for x in v.split(",") if x.strip()]


def qident(x):
    return '"' + x.replace('"', '""') + '"'


def qlit(x):
    return "'" + x.replace("'", "''") + "'"


class Check:
    def __init__(self, ini, work, pgdir, pki, env_dir):
        self.ini, self.work, self.pgdir, self.pki, self.env_dir = ini, work, pgdir, pki, env_dir
        with open(os.path.join(pgdir, "port")) as f:
            self.pg_port = int(f.read())
        self.pg_sock = os.path.join(pgdir, "sock")
        self.bin = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
        self.passwords = {}
        # The app role of kiln's init script, when the cluster has one (see the docstring).
        self.existing = os.environ.get("KILN_PGB_APP_USER") or None
        if self.existing:
            self.passwords[self.existing] = os.environ["KILN_PGB_APP_PASSWORD"]
        self.copy = None
        self.inserted = (0, 0)

    # ----------------------------------------------------------- cluster side
    def as_superuser(self):
        """The command prefix of the cluster's superuser connections."""
        if self.existing:
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]
        return []

    def psql_admin(self, sql):
        r = subprocess.run(self.as_superuser() + ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.pg_sock,
                            "-p", str(self.pg_port), "-U", "postgres", "-d", "postgres", "-c", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            raise RuntimeError(f"psql (cluster setup) failed: {r.stderr.strip()}\nSQL: {sql}")
        return r.stdout

    def ensure_roles(self, users):
        """Create or re-password every role in one psql call (SCRAM, random passwords)."""
        stmts = ["SET password_encryption = 'scram-sha-256';"]
        for u in users:
            pw = secrets.token_hex(16)
            self.passwords[u] = pw
            stmts.append(
                f"SELECT format(CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {qlit(u)}) "
                f"THEN 'ALTER' ELSE 'CREATE' END || ' ROLE %I LOGIN PASSWORD %L', {qlit(u)}, {qlit(pw)})"
                " \\gexec")
        self.psql_admin_script("\n".join(stmts))

    def ensure_dbs(self, dbs):
        """dbs: [(name, owner)]; CREATE DATABASE cannot run in a transaction block: \\gexec."""
        stmts = []
        for db, owner in dbs:
            stmts.append(f"SELECT format('CREATE DATABASE %I OWNER %I', {qlit(db)}, {qlit(owner)}) "
                         f"WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = {qlit(db)}) \\gexec")
            stmts.append(f"GRANT ALL ON DATABASE {qident(db)} TO PUBLIC;")
        self.psql_admin_script("\n".join(stmts))

    def verifiers(self, users):
        out = self.psql_admin(
            "SELECT rolname || '|' || coalesce(rolpassword, '') FROM pg_authid WHERE rolname IN ("
            + ", ".join(qlit(u) for u in users) + ")")
        v = dict(l.split("|", 1) for l in out.splitlines() if "|" in l)
        for u in users:
            if not v.get(u, "").startswith("SCRAM-SHA-256$"):
                raise RuntimeError(f"no SCRAM verifier for {u}: {v.get(u, '')[:20]!r}")
        return v

    def psql_admin_script(self, script):
        r = subprocess.run(self.as_superuser() + ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", self.pg_sock,
                            "-p", str(self.pg_port), "-U", "postgres", "-d", "postgres"],
                           input=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode:
            raise RuntimeError(f"psql (cluster setup) failed: {r.stderr.strip()}\nSQL: {script}")

    # ----------------------------------------------------------- users from the env
    def url_users(self):
        users = []
        if not self.env_dir:
            return users
        files = glob.glob(os.path.join(self.env_dir, "**", "*.env.example"), recursive=True)
        files += glob.glob(os.path.join(self.env_dir, "**", ".env.example"), recursive=True)
        files += glob.glob(os.path.join(self.env_dir, "compose", "compose.y*ml"))
        for f in sorted(set(files)):
            with open(f, encoding="utf-8", errors="replace") as fh:
                for m in re.finditer(r"postgres(?:ql)?(?:\+\w+)?://([A-Za-z0-9_.\-]+)(?::[^@\s]*)?@", fh.read()):
                    if m.group(1) not in users:
                        users.append(m.group(1))
        return users

    # ----------------------------------------------------------- main
    def run(self):
        entries, lines = read_ini(self.ini)
        sections = {s for s, *_ in entries}
        if "pgbouncer" not in sections:
            raise Fail(f"{self.ini}: no [pgbouncer] section")
        pgb = {k.lower(): v for s, k, v, _ in entries if s == "pgbouncer"}
        dbs = [(k, parse_connstr(v), i) for s, k, v, i in entries if s == "databases"]
        if not dbs:
            raise Fail(f"{self.ini}: no [databases] entries")

        # who and what to create
        app_users = [self.existing] if self.existing else self.url_users()
        forced = [dict(t).get("user") for _, t, _ in dbs if dict(t).get("user")]
        admin = csv(pgb.get("admin_users", ""))
        stats = csv(pgb.get("stats_users", ""))
        extra = [k for s, k, v, _ in entries if s == "users"]
        if pgb.get("auth_user"):
            extra.append(pgb["auth_user"])
        if not app_users:
            app_users = forced[:1] or [FALLBACK_USER]
        everyone = []
        for u in app_users + forced + admin + stats + extra:
            if u not in everyone:
                everyone.append(u)
        self.ensure_roles([u for u in everyone if u != self.existing])
        targets = []  # (alias, real dbname)
        to_create = []
        for alias, toks, _ in dbs:
            d = dict(toks)
            real = d.get("dbname", alias if alias != "*" else "kiln_conformance_any")
            to_create.append((real, d.get("user") or app_users[0]))
            targets.append((alias if alias != "*" else real, real))
        if not self.existing:
            self.ensure_dbs(to_create)
        verifiers = self.verifiers(everyone)

        # the copy: host-specific keys only
        w = self.work
        os.makedirs(os.path.join(w, "sock"), exist_ok=True)
        auth_file = os.path.join(w, "userlist.txt")
        with open(auth_file, "w") as f:
            for u in everyone:
                f.write(f'"{u}" "{verifiers[u]}"\n')
        bport = free_port()
        listen_tcp = bool(pgb.get("listen_addr"))
        new = {
            "listen_port": str(bport),
            "pidfile": os.path.join(w, "pgbouncer.pid"),
            "logfile": os.path.join(w, "pgbouncer.log"),
            "auth_file": auth_file,
        }
        if listen_tcp:
            new["listen_addr"] = "127.0.0.1"
        if pgb.get("unix_socket_dir", None) != "":
            new["unix_socket_dir"] = os.path.join(w, "sock")
        if pgb.get("user"):
            new["user"] = "postgres"
        if pgb.get("auth_hba_file"):
            hba = os.path.join(w, "pg_hba.conf")
            with open(hba, "w") as f:
                f.write("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
            new["auth_hba_file"] = hba
        for k, src in TLS_FILES.items():
            if pgb.get(k):
                dst = os.path.join(w, "tls-" + src)
                # the server side must trust the cluster's own CA
                origin = (os.path.join(self.pgdir, "ca.pem") if k == "server_tls_ca_file"
                          else os.path.join(self.pki, src))
                shutil.copyfile(origin, dst)
                os.chmod(dst, 0o600)
                new[k] = dst
        out = list(lines)
        changed = []
        seen = set()
        for s, k, v, i in entries:
            kl = k.lower()
            if s == "pgbouncer" and kl in new:
                out[i] = f"{k} = {new[kl]}"
                seen.add(kl)
                changed.append(kl)
            elif s == "databases":
                toks = parse_connstr(v)
                toks = [(a, b) for a, b in toks if a not in ("host", "port")]
                toks = [("host", "127.0.0.1"), ("port", str(self.pg_port))] + toks
                out[i] = f"{k} = {fmt_connstr(toks)}"
        missing = [k for k in ("pidfile", "logfile", "unix_socket_dir", "listen_port") if k in new and k not in seen]
        if missing:
            idx = next(i for i, l in enumerate(out) if l.strip().lower() == "[pgbouncer]")
            out[idx + 1:idx + 1] = [f"{k} = {new[k]}" for k in missing]
            self.inserted = (idx + 2, len(missing))  # first inserted line (1-based), count
        copy = os.path.join(w, "pgbouncer.ini")
        self.copy = copy
        with open(copy, "w") as f:
            f.write("\n".join(out))
        for root, dirs, files in os.walk(w):
            for n in dirs + files:
                shutil.chown(os.path.join(root, n), "postgres", "postgres")
        shutil.chown(w, "postgres", "postgres")
        print(f"  rewrote in the copy: {', '.join(sorted(set(changed)))}; [databases] host/port"
              + (f"; added {', '.join(missing)}" if missing else ""))

        # start it, as postgres (pgbouncer refuses root)
        log = os.path.join(w, "pgbouncer.log")
        errf = open(os.path.join(w, "pgbouncer.stderr"), "w")
        proc = subprocess.Popen(["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups",
                                 "--", "pgbouncer", copy], stdout=errf, stderr=subprocess.STDOUT)
        host = "127.0.0.1" if listen_tcp else os.path.join(w, "sock")
        try:
            deadline = time.time() + 10
            while True:
                if proc.poll() is not None:
                    raise Fail(f"pgbouncer refused {self.ini} (exit {proc.returncode}):\n"
                               + self.logs(log))
                if (listen_tcp and port_open(bport)) or (
                        not listen_tcp and os.path.exists(os.path.join(w, "sock", f".s.PGSQL.{bport}"))):
                    break
                if time.time() > deadline:
                    raise Fail(f"pgbouncer did not listen within 10 s:\n{self.logs(log)}")
                time.sleep(0.05)
            self.queries(host, bport, targets, app_users, admin, stats, pgb, log)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def logs(self, log):
        """pgbouncer's log file, else its stderr (it writes both), last 40 lines."""
        for f in (log, os.path.join(self.work, "pgbouncer.stderr")):
            if os.path.exists(f):
                with open(f, errors="replace") as fh:
                    t = fh.read().strip().splitlines()[-40:]
                if t:
                    return self.to_orig(f"  --- pgbouncer log ({os.path.basename(f)}):\n  " + "\n  ".join(t))
        return "  (pgbouncer logged nothing)"

    def to_orig(self, text):
        """Point `copy.ini:N` in pgbouncer's messages at the generated file's own line."""
        if not self.copy:
            return text
        first, n = self.inserted

        def line(m):
            k = int(m.group(1))
            if n and first <= k < first + n:
                return f"{self.ini} (a key the conformance check added)"
            return f"{self.ini}:{k - n if n and k >= first + n else k}"
        return re.sub(re.escape(self.copy) + r":(\d+)", line, text)

    def psql(self, host, port, db, user, *cmds):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGPASSWORD"] = self.passwords[user]
        env["PGCONNECT_TIMEOUT"] = "5"
        args = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", str(port),
                "-U", user, "-d", db]
        for c in cmds:
            args += ["-c", c]
        r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                           timeout=30)
        return r.returncode, r.stdout, r.stderr.strip()

    def queries(self, host, port, targets, app_users, admin, stats, pgb, log):
        fails = []
        n = 0
        for alias, real in targets:
            for u in app_users:
                rc, out, err = self.psql(host, port, alias, u, "SELECT 1", "SELECT current_database()")
                n += 1
                if rc or out.split() != ["1", real]:
                    fails.append(f"SELECT 1 on {alias} as {u} failed (expected database {real}): "
                                 f"{err or out.strip()}")
                    continue
                rc, out, err = self.psql(host, port, alias, u, "BEGIN",
                                         "CREATE TEMP TABLE kiln_t (x int) ON COMMIT DROP",
                                         "INSERT INTO kiln_t VALUES (41)",
                                         "SELECT x + 1 FROM kiln_t", "COMMIT")
                n += 1
                if rc or "42" not in out.split():
                    fails.append(f"a transaction on {alias} as {u} failed: {err or out}")
        for a in admin:
            rc, out, err = self.psql(host, port, ADMIN_DB, a, "SHOW CONFIG")
            n += 1
            if rc:
                fails.append(f"admin console as {a} failed: {err}")
                continue
            conf = dict(l.split("|")[:2] for l in out.splitlines() if "|" in l)
            pm = pgb.get("pool_mode")
            if pm and conf.get("pool_mode") != pm:
                fails.append(f"pool_mode is {conf.get('pool_mode')!r} at run time, ini says {pm!r}")
            elif pm:
                print(f"  pool_mode = {conf.get('pool_mode')} (confirmed on the admin console)")
        for s in stats:
            rc, out, err = self.psql(host, port, ADMIN_DB, s, "SHOW STATS")
            n += 1
            if rc:
                fails.append(f"SHOW STATS as stats user {s} failed: {err}")
        if fails:
            raise Fail(f"queries through pgbouncer ({self.ini}) failed:\n  " + "\n  ".join(fails)
                       + "\n" + self.logs(log))
        print(f"  {n} psql sessions through pgbouncer ok (users: {', '.join(app_users)})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.3)
        try:
            s.connect(("127.0.0.1", port))
            return True
        except OSError:
            return False


def main():
    a = sys.argv[1:]
    if len(a) not in (4, 5):
        say(__doc__.strip().splitlines()[2])
        return 2
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        say("no postgres user (apt-get install postgresql)")
        return 2
    try:
        Check(*a[:4], a[4] if len(a) == 5 else None).run()
    except Fail as e:
        say(str(e))
        return 1
    except RuntimeError as e:
        say(str(e))
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug in the check itself, not a finding: exit 2
        import traceback
        traceback.print_exc()
        sys.exit(2)
