"""nginx conformance helper (run with the suite's venv python; nginx.sh drives it).

    nginx_check.py prepare SRC_NGINX_DIR WORK PKI [COMPOSE_FILE]
                                                    copy SRC to WORK/conf, rewrite only
                                                    host-specific directives, write WORK/hosts
                                                    and WORK/plan.json; with COMPOSE_FILE every
                                                    upstream host name must be one of its
                                                    services (or hostnames/aliases)
    nginx_check.py ns WORK [--no-live]              inside `unshare --mount --net`: bind-mount
                                                    WORK/hosts on /etc/hosts, lo up, `nginx -t`,
                                                    then start nginx + a stand-in upstream and
                                                    check it with curl

What is rewritten in the copy (nothing else is touched, and every rewrite is verified by parsing
the copy again): absolute file paths (cert/key/trusted cert/dhparam get the throwaway PKI;
root/alias/log/pid/temp/cache paths are mirrored under WORK/fake), explicit non-loopback listen
addresses (-> loopback), a `user` line naming a user this machine lacks (removed).
Exit status: 0 ok, 1 the config failed a check, 2 the helper itself could not run.
"""

import ipaddress
import json
import os
import pwd
import grp
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import crossplane

HERE = os.path.dirname(os.path.abspath(__file__))
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

MANDATORY = ("strict-transport-security", "x-content-type-options", "referrer-policy")
HSTS_MIN = 31536000
PASS_DIRECTIVES = ("proxy_pass", "fastcgi_pass", "uwsgi_pass", "grpc_pass", "scgi_pass",
                   "memcached_pass")
CERT = ("ssl_certificate", "proxy_ssl_certificate", "grpc_ssl_certificate",
        "uwsgi_ssl_certificate")
KEY = ("ssl_certificate_key", "proxy_ssl_certificate_key", "grpc_ssl_certificate_key",
       "uwsgi_ssl_certificate_key")
CA = ("ssl_trusted_certificate", "ssl_client_certificate", "proxy_ssl_trusted_certificate",
      "grpc_ssl_trusted_certificate", "uwsgi_ssl_trusted_certificate")
DIR_ARG0 = ("root", "alias", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
            "uwsgi_temp_path", "scgi_temp_path", "proxy_cache_path", "fastcgi_cache_path",
            "uwsgi_cache_path", "scgi_cache_path", "working_directory")
FILE_ARG0 = ("access_log", "error_log", "lock_file", "auth_basic_user_file")
TOKEN = "kiln-conformance-token"
# URIs tried against regex locations (the first one that nginx would route there is used).
REGEX_CANDIDATES = ("/.env", "/.git/config", "/.htpasswd", "/kiln-conformance.php",
                    "/wp-login.php", "/kiln-conformance.css", "/kiln-conformance.js",
                    "/kiln-conformance.png", "/kiln-conformance.jpg", "/favicon.ico",
                    "/robots.txt", "/kiln-conformance.txt", "/kiln-conformance.html")


def die(msg, code=2):
    print(f"nginx: {msg}", file=sys.stderr)
    sys.exit(code)


def parse(conf_file):
    """The config as one tree with includes inlined; every directive carries its own file.
    (crossplane's combine=True mislabels the file of directives after an include.)"""
    res = crossplane.parse(conf_file, combine=False, check_ctx=False, check_args=False)
    errors = [f"{e.get('file')}:{e.get('line')}: {e.get('error')}" for e in res.get("errors", [])]
    configs = res.get("config") or []

    def inline(block, fname):
        out = []
        for s in block:
            if "includes" in s:
                for idx in s["includes"]:
                    out.extend(inline(configs[idx]["parsed"], configs[idx]["file"]))
                continue
            s2 = dict(s, file=fname)
            if "block" in s:
                s2["block"] = inline(s["block"], fname)
            out.append(s2)
        return out

    tree = inline(configs[0]["parsed"], configs[0]["file"]) if configs else []
    return tree, errors


def walk(block, ancestors=()):
    for d in block or ():
        yield d, ancestors
        if "block" in d:
            yield from walk(d["block"], ancestors + (d,))


def literal_path(arg):
    return arg.startswith("/") and "$" not in arg


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


# ---------------------------------------------------------------- prepare


class Rewriter:
    def __init__(self, src, work, pki):
        self.src = os.path.abspath(src)
        self.work = work
        self.conf = os.path.join(work, "conf")
        self.fake = os.path.join(work, "fake")
        self.pki = pki
        self.edits = {}  # file -> [(line, directive, old_args, new_args|None)]
        self.notes = []
        self.has_pid = False
        self.has_daemon = False
        self.addr_map = {}

    def mirror(self, path):
        return self.fake + path

    def put_file(self, dest, source=None, data=None, mode=0o644):
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if source:
            shutil.copyfile(source, dest)
        else:
            with open(dest, "wb") as f:
                f.write(data or b"")
        os.chmod(dest, mode)

    def edit(self, d, new_args):
        self.edits.setdefault(d["file"], []).append((d["line"], d["directive"], d["args"], new_args))

    def plan_edits(self, tree):
        for d, anc in walk(tree):
            name, args, f = d["directive"], d["args"], d["file"]
            if not f.startswith(self.conf + os.sep):
                continue  # e.g. /etc/nginx/mime.types: not ours to rewrite
            parent = anc[-1]["directive"] if anc else "main"
            if name == "daemon":
                self.has_daemon = True
            if name == "user" and args:
                ok = user_exists(args[0]) and (len(args) < 2 or group_exists(args[1]))
                if not ok:
                    self.edit(d, None)
                    self.notes.append(f"removed `user {' '.join(args)}` (no such user here)")
            elif name == "pid" and args:
                self.has_pid = True
                self.edit(d, [os.path.join(self.work, "run", "nginx.pid")])
            elif name in CERT + KEY + CA + ("ssl_dhparam",) and args and literal_path(args[0]):
                dest = self.mirror(args[0])
                if name in CERT:
                    self.put_file(dest, os.path.join(self.pki, "fullchain.pem"))
                elif name in KEY:
                    self.put_file(dest, os.path.join(self.pki, "key.pem"), mode=0o600)
                elif name in CA:
                    self.put_file(dest, os.path.join(self.pki, "ca.pem"))
                else:
                    self.put_file(dest, os.path.join(self.pki, "dhparam.pem"))
                self.edit(d, [dest] + args[1:])
            elif name == "ssl_session_ticket_key" and args and literal_path(args[0]):
                dest = self.mirror(args[0])
                self.put_file(dest, data=secrets.token_bytes(80), mode=0o600)
                self.edit(d, [dest])
            elif name in DIR_ARG0 and args and literal_path(args[0]):
                dest = self.mirror(args[0])
                os.makedirs(dest, exist_ok=True)
                self.edit(d, [dest] + args[1:])
            elif name in FILE_ARG0 and args and literal_path(args[0]):
                dest = self.mirror(args[0])
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                if name == "auth_basic_user_file":
                    self.put_file(dest, data=b"")
                self.edit(d, [dest] + args[1:])
            elif name == "resolver" and args:
                # Names cached for `valid`: shortened in the copy so the live check can move a
                # service to another address and see nginx follow within a second.
                new = [a if not a.startswith("valid=") else "valid=1s" for a in args]
                if new != args:
                    self.edit(d, new)
                    self.notes.append("resolver cache `valid` shortened to 1s")
            elif name == "listen" and args:
                new = self.listen_arg(args[0])
                if new != args[0]:
                    self.edit(d, [new] + args[1:])
            elif (name == "server" and parent == "upstream" and args
                  and args[0].startswith("unix:/")):
                self.edit(d, ["unix:" + self.mirror(args[0][5:])] + args[1:])
            elif name in PASS_DIRECTIVES and args and "unix:/" in args[0]:
                self.edit(d, [re.sub(r"unix:(/[^:]*)", lambda m: "unix:" + self.mirror(m.group(1)),
                                     args[0])] + args[1:])

    def listen_arg(self, a):
        if a.startswith("unix:"):
            return "unix:" + self.mirror(a[5:]) if a[5:].startswith("/") else a
        host, port = split_hostport(a)
        if host is None:
            return a
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return a  # a host name: resolved through the namespace's /etc/hosts
        if ip.is_unspecified or ip.is_loopback:
            return a
        # A distinct loopback address per public one keeps nginx's address-specific server
        # selection intact (a specific address beats the wildcard on the same port).
        if ip.version == 6:
            new = "[::1]"
        else:
            if host not in self.addr_map:
                self.addr_map[host] = f"127.0.2.{len(self.addr_map) + 1}"
            new = self.addr_map[host]
        note = f"listen {a} -> {new}:{port}"
        if note not in self.notes:
            self.notes.append(note)
        return f"{new}:{port}"

    def apply(self):
        for f, edits in self.edits.items():
            with open(f, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
            for line_no, name, old, new in edits:
                i = line_no - 1
                lines[i] = rewrite_line(lines[i], name, old, new)
            with open(f, "w", encoding="utf-8") as fh:
                fh.write("\n".join(lines))

    def verify(self, tree):
        seen = {}
        for d, _ in walk(tree):
            seen.setdefault((d["file"], d["line"], d["directive"]), []).append(d["args"])
        for f, edits in self.edits.items():
            for line_no, name, old, new in edits:
                got = seen.get((f, line_no, name), [])
                if new is None:
                    if old in got:
                        die(f"internal: could not remove `{name}` at {f}:{line_no}")
                elif new not in got:
                    die(f"internal: could not rewrite `{name}` at {f}:{line_no} (got {got})")


def rewrite_line(line, name, old, new):
    m = re.search(r"(?:^|(?<=[\s;{}]))" + re.escape(name) + r"(?=\s|;)", line)
    if not m:
        die(f"internal: `{name}` not found on line: {line!r}")
    head, tail = line[:m.start()], line[m.start():]
    if new is None:
        return head + re.sub(re.escape(name) + r"\s[^;]*;|" + re.escape(name) + ";", "", tail,
                             count=1) + f"  # kiln-conformance: removed {name}"
    for o, n in zip(old, new):
        if o == n:
            continue
        pos = tail.find(o, len(name))
        if pos < 0:
            die(f"internal: argument {o!r} of `{name}` not found on line: {line!r}")
        tail = tail[:pos] + n + tail[pos + len(o):]
    return head + tail


def split_hostport(a):
    """'80' -> (None, 80); '1.2.3.4:80' -> ('1.2.3.4', 80); '[::]:443' -> ('::', 443);
    '1.2.3.4' -> ('1.2.3.4', 80); 'name:8080' -> ('name', 8080)."""
    if a.isdigit():
        return None, int(a)
    if a.startswith("["):
        host, _, rest = a[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 80
    if ":" in a:
        host, _, port = a.rpartition(":")
        return host, int(port) if port.isdigit() else 80
    if a == "*":
        return None, 80
    return a, 80


# ---------------------------------------------------------------- plan


def own(block, name):
    return [d for d in block or () if d["directive"] == name]


def headers_of(block):
    return [{"name": d["args"][0], "value": d["args"][1] if len(d["args"]) > 1 else "",
             "always": "always" in d["args"][2:]}
            for d in own(block, "add_header") if d["args"]]


def build_plan(tree, work, src, conf):
    http = next((d for d in tree if d["directive"] == "http"), None)
    if http is None:
        return {"servers": [], "upstreams": [], "hosts": {}}
    hblock = http["block"]
    http_headers = headers_of(hblock)
    http_root = (own(hblock, "root") or [{"args": ["/usr/share/nginx/html"]}])[0]["args"][0]

    def orig(f, line):
        if f.startswith(conf + os.sep):
            f = os.path.join(src, os.path.relpath(f, conf))
        return f"{f}:{line}"

    upstream_blocks = {}
    for d in own(hblock, "upstream"):
        upstream_blocks[d["args"][0]] = [s["args"][0] for s in own(d["block"], "server") if s["args"]]
    # `map … $var { default "host:port"; }` with no other entry: a constant, as kiln's compose
    # flavour writes each upstream (resolved per request through `resolver`).
    constants = {}
    for d in own(hblock, "map"):
        entries = d.get("block") or []
        if len(d["args"]) == 2 and len(entries) == 1 and entries[0]["directive"] == "default":
            constants[d["args"][1]] = entries[0]["args"][0]
    resolvers = []
    for d in own(hblock, "resolver"):
        resolvers += [a for a in d["args"] if "=" not in a]

    targets = set()

    def pass_targets(url, kind):
        """Endpoints (host, port) or unix paths behind a *_pass argument."""
        url = re.sub(r"\$\w+", lambda m: constants.get(m.group(0), m.group(0)), url)
        if "$" in url:
            return []
        if kind == "proxy_pass":
            u = urllib.parse.urlsplit(url)
            if u.scheme not in ("http", "https"):
                return []
            netloc = u.netloc
            default = 443 if u.scheme == "https" else 80
            if netloc.startswith("unix:"):
                return [("unix", netloc[5:].rstrip(":"), u.scheme)]
        else:
            netloc, default = url, 80
            u = None
        if netloc in upstream_blocks:
            out = []
            for s in upstream_blocks[netloc]:
                if s.startswith("unix:"):
                    out.append(("unix", s[5:], u.scheme if u else "other"))
                else:
                    h, p = split_hostport(s)
                    out.append((h, p if ":" in s else default, u.scheme if u else "other"))
            return out
        if netloc.startswith("unix:"):
            return [("unix", netloc[5:], "other")]
        h, p = split_hostport(netloc)
        if h is None:
            return []
        return [(h, p if ":" in netloc else default, u.scheme if u else "other")]

    def locations(block, inherited, parent_root, depth=0):
        out = []
        for d in own(block, "location"):
            args = d["args"]
            if len(args) == 2:
                mod, path = args
            elif args:
                mod, path = "", args[0]
            else:
                continue
            b = d["block"]
            hdrs = headers_of(b) or inherited
            root = (own(b, "root") or [{"args": [parent_root["args"][0] if parent_root else None]}])[0]["args"][0]
            alias = (own(b, "alias") or [{"args": [None]}])[0]["args"][0]
            passes = [(p["directive"], p["args"][0]) for p in b if p["directive"] in PASS_DIRECTIVES and p["args"]]
            ret = own(b, "return")
            deny_all = any(x["args"] == ["all"] for x in own(b, "deny"))
            try_files = own(b, "try_files")
            http_upstream = []
            for kind, url in passes:
                for t in pass_targets(url, kind):
                    targets.add(t)
                    if kind == "proxy_pass":
                        http_upstream.append(t)
            loc = {
                "depth": depth,
                "where": orig(d["file"], d["line"]),
                "modifier": mod, "path": path,
                "headers": hdrs,
                "root": root, "alias": alias,
                "pass": [k for k, _ in passes],
                "http_proxy": bool(http_upstream) and all(t[2] == "http" for t in http_upstream),
                "return": ret[0]["args"] if ret else None,
                "deny_all": deny_all,
                "internal": bool(own(b, "internal")),
                "try_files": try_files[0]["args"] if try_files else None,
                "limit_req": bool(own(b, "limit_req")),
            }
            out.append(loc)
            out.extend(locations(b, hdrs, {"args": [root]}, depth + 1))
        return out

    servers = []
    for s in own(hblock, "server"):
        b = s["block"]
        listens = []
        for l in own(b, "listen"):
            a = l["args"][0]
            if a.startswith("unix:"):
                continue
            h, p = split_hostport(a)
            listens.append({"host": h, "port": p, "ssl": "ssl" in l["args"][1:],
                            "v6": bool(h and ":" in h)})
        if not listens:
            listens.append({"host": None, "port": 80, "ssl": False, "v6": False})
        if own(b, "ssl") and own(b, "ssl")[0]["args"] == ["on"]:
            for l in listens:
                l["ssl"] = True
        names = [n for d in own(b, "server_name") for n in d["args"]]
        server_headers = headers_of(b) or http_headers
        root = (own(b, "root") or [{"args": [http_root]}])[0]["args"][0]
        ret = own(b, "return")
        servers.append({
            "where": orig(s["file"], s["line"]),
            "listens": listens,
            "names": names,
            "headers": server_headers,
            "root": root,
            "return": ret[0]["args"] if ret else None,
            "locations": locations(b, server_headers, {"args": [root]}),
        })

    # Upstream host names -> distinct loopback addresses inside the namespace.
    hosts = {}
    n = 0
    for t in sorted(targets, key=str):
        h = t[0]
        if h == "unix" or h in hosts:
            continue
        try:
            ipaddress.ip_address(h)
            continue
        except ValueError:
            pass
        if h == "localhost":
            continue
        n += 1
        hosts[h] = f"127.0.1.{n}"
    return {"servers": servers, "upstreams": sorted(targets, key=str), "hosts": hosts,
            "resolvers": resolvers}


def compose_names(compose_file):
    """Names a container can resolve inside the compose project: services, hostnames,
    container names and network aliases."""
    import yaml
    with open(compose_file, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    names = set()
    for name, svc in (doc.get("services") or {}).items():
        names.add(name)
        svc = svc or {}
        for k in ("hostname", "container_name"):
            if isinstance(svc.get(k), str):
                names.add(svc[k])
        nets = svc.get("networks")
        if isinstance(nets, dict):
            for n in nets.values():
                for a in (n or {}).get("aliases") or []:
                    names.add(a)
    return names


def prepare(src, work, pki, compose_file=None):
    src = os.path.abspath(src)
    conf = os.path.join(work, "conf")
    main = os.path.join(conf, "nginx.conf")
    if not os.path.isfile(os.path.join(src, "nginx.conf")):
        die(f"{src}/nginx.conf: missing", 1)
    shutil.copytree(src, conf, symlinks=True)
    for sub in ("fake", "run", "logs"):
        os.makedirs(os.path.join(work, sub), exist_ok=True)
    tree, errors = parse(main)
    rw = Rewriter(src, work, pki)
    rw.plan_edits(tree)
    rw.apply()
    tree2, _ = parse(main)
    rw.verify(tree2)
    plan = build_plan(tree2, work, src, conf)
    if compose_file:
        known = compose_names(compose_file)
        unknown = sorted(h for h in plan["hosts"] if h not in known)
        if unknown:
            print(f"nginx: {src}: upstream host(s) {', '.join(unknown)} are not services of "
                  f"{compose_file} (known: {', '.join(sorted(known))})", file=sys.stderr)
            sys.exit(1)
    elif plan["hosts"]:
        print(f"  note: upstream host names {', '.join(sorted(plan['hosts']))} mapped to loopback "
              "addresses for the check")
    plan.update({"src": src, "conf": conf, "fake": rw.fake, "has_pid": rw.has_pid, "has_daemon": rw.has_daemon,
                 "notes": rw.notes, "parse_errors": errors})
    with open(os.path.join(work, "hosts"), "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
        for h, ip in plan["hosts"].items():
            f.write(f"{ip} {h}\n")
    with open(os.path.join(work, "plan.json"), "w") as f:
        json.dump(plan, f, indent=1)
    for n in rw.notes:
        print(f"  rewrote in the copy: {n}")


# ---------------------------------------------------------------- namespace: nginx -t + live


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def nginx_args(plan, work):
    conf = plan["conf"]
    g = ""
    if not plan["has_pid"]:
        g += f"pid {work}/run/nginx.pid;"
    return [NGINX, "-p", conf + "/", "-c", os.path.join(conf, "nginx.conf"), "-e", "stderr"], g


def to_orig(text, plan):
    """Copy paths back to the generated files' paths (and mirrored paths to the originals)."""
    return text.replace(plan["fake"], "").replace(plan["conf"], plan["src"])


def nginx_t(plan, work):
    args, g = nginx_args(plan, work)
    cmd = args + ["-t"] + (["-g", g] if g else [])
    r = run(cmd)
    out = to_orig(r.stdout, plan)
    bad = [l for l in out.splitlines()
           if re.search(r"\[(warn|error|crit|alert|emerg)\]", l)]
    if r.returncode != 0 or bad:
        print(f"nginx: `nginx -t` rejected {plan['src']}/nginx.conf:", file=sys.stderr)
        print("  " + "\n  ".join(out.strip().splitlines()), file=sys.stderr)
        if r.returncode == 0:
            print("nginx: (warnings count as failures)", file=sys.stderr)
        return False
    return True


def connect_ok(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam) as s:
        s.settimeout(0.5)
        try:
            s.connect((host, port))
            return True
        except OSError:
            return False


def loopback_for(listen):
    h = listen["host"]
    if h is None or h in ("*", "0.0.0.0"):
        return "127.0.0.1"
    if h == "::":
        return "::1"
    return h


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Live:
    def __init__(self, plan, work):
        self.plan, self.work = plan, work
        self.failures = []
        self.requests = 0
        self.curl_dir = os.path.join(work, "curl")
        os.makedirs(self.curl_dir, exist_ok=True)

    def fail(self, where, msg):
        self.failures.append(f"{where}: {msg}")

    def curl(self, scheme, name, port, ip, path):
        self.requests += 1
        n = self.requests
        hdr = os.path.join(self.curl_dir, f"{n}.h")
        body = os.path.join(self.curl_dir, f"{n}.b")
        ipr = f"[{ip}]" if ":" in ip else ip
        url = f"{scheme}://{name}:{port}{path}"
        cmd = ["curl", "-sS", "-k", "--connect-timeout", "3", "--max-time", "10",
               "--resolve", f"{name}:{port}:{ipr}", "-D", hdr, "-o", body,
               "-w", "%{http_code}", url]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        status = int(r.stdout.strip() or 0) if r.stdout.strip().isdigit() else 0
        headers = []
        if os.path.exists(hdr):
            with open(hdr, encoding="latin-1", newline="") as f:
                blocks = f.read().strip().split("\r\n\r\n")
            for line in blocks[-1].split("\r\n")[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    headers.append((k.strip().lower(), v.strip()))
        data = b""
        if os.path.exists(body):
            with open(body, "rb") as f:
                data = f.read()
        if os.environ.get("KILN_CONFORMANCE_VERBOSE"):
            print(f"  GET {url} -> {status}")
        return {"url": url, "status": status, "headers": headers, "body": data,
                "error": r.stderr.strip()}

    def check_headers(self, where, resp, expected, mandatory):
        names = [k for k, _ in resp["headers"]]
        want = {h.lower() for h in expected} | (set(MANDATORY) if mandatory else set())
        missing = sorted(h for h in want if h not in names)
        msg = []
        if missing:
            msg.append("lacks " + ", ".join(missing))
        dup = sorted({h for h in want if names.count(h) > 1})
        if dup:
            msg.append("repeats " + ", ".join(dup))
        vals = dict(resp["headers"])
        if "strict-transport-security" in vals and mandatory:
            m = re.search(r"max-age\s*=\s*\"?(\d+)", vals["strict-transport-security"], re.I)
            if not m or int(m.group(1)) < HSTS_MIN:
                msg.append(f"has a weak Strict-Transport-Security "
                           f"({vals['strict-transport-security']!r}; max-age must be >= {HSTS_MIN})")
        if "x-content-type-options" in vals and vals["x-content-type-options"].lower() != "nosniff":
            msg.append(f"has X-Content-Type-Options {vals['x-content-type-options']!r}")
        if msg:
            self.fail(where, f"GET {resp['url']} -> {resp['status']} " + "; ".join(msg))

    def expect_status(self, where, resp, ok, what):
        if resp["status"] == 0:
            self.fail(where, f"GET {resp['url']} failed: {resp['error']}")
            return False
        if not ok(resp["status"]):
            self.fail(where, f"GET {resp['url']} -> {resp['status']}, expected {what}")
            return False
        return True

    @staticmethod
    def usable_name(names):
        for n in names:
            if n in ("_", "", '""') or n.startswith("~") or "$" in n:
                continue
            n = n.lstrip(".")
            if n.startswith("*."):
                n = "www" + n[1:]
            if n.endswith(".*"):
                n = n[:-2] + ".example"
            return n
        return None

    def fs_path_for(self, loc, server, uri):
        """Where nginx would look for `uri` in a file-serving location (None if unknown)."""
        if loc["alias"]:
            prefix = loc["path"]
            if loc["modifier"] in ("~", "~*"):
                return None
            return loc["alias"] + uri[len(prefix):]
        root = loc["root"] or server["root"]
        if not root:
            return None
        return root.rstrip("/") + uri

    def put(self, path, data):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)

    def tls_names(self):
        out = set()
        for s in self.plan["servers"]:
            if any(l["ssl"] for l in s["listens"]):
                out.update(s["names"])
        return out

    def run_servers(self):
        tls_names = self.tls_names()
        proxied_probes = []
        for s in self.plan["servers"]:
            name = self.usable_name(s["names"])
            if not name:
                shown = " ".join(s["names"]) or "''"
                print(f"  note: {s['where']}: catch-all server (server_name {shown}) not checked live")
                continue
            plain = [l for l in s["listens"] if not l["ssl"]]
            tls = [l for l in s["listens"] if l["ssl"]]
            redirecting = bool(tls_names.intersection(s["names"])) and not tls
            endpoints = []
            if tls:
                endpoints.append(("https", tls[0], True))
            if plain and not tls:
                endpoints.append(("http", plain[0], False))
            for scheme, l, mandatory in endpoints:
                ip = loopback_for(l)
                where = f"{s['where']} (server {name}, {scheme} port {l['port']})"
                if scheme == "http" and redirecting:
                    self.check_redirect_server(s, name, l, ip, where)
                else:
                    proxied_probes += self.check_app_server(s, name, scheme, l, ip, mandatory)
        return proxied_probes

    def check_redirect_server(self, s, name, l, ip, where):
        path = "/kiln-conformance/redirect?q=1"
        r = self.curl("http", name, l["port"], ip, path)
        if self.expect_status(where, r, lambda c: c in (301, 308), "a 308 (or 301) redirect to https"):
            loc = dict(r["headers"]).get("location", "")
            if not (loc.startswith(f"https://{name}") and loc.endswith(path)):
                self.fail(where, f"GET {r['url']} redirects to {loc!r}, expected https://{name}…{path}")
        for loc in s["locations"]:
            if "/.well-known/acme-challenge" in loc["path"] and loc["modifier"] in ("", "^~", "="):
                uri = loc["path"].rstrip("/") + "/" + TOKEN
                fs = self.fs_path_for(loc, s, uri)
                lw = f"{loc['where']} (location {loc['path']} on {name}:{l['port']})"
                if not fs:
                    self.fail(lw, "ACME location serves no files (no root/alias)")
                    continue
                self.put(fs, TOKEN.encode())
                r = self.curl("http", name, l["port"], ip, uri)
                if self.expect_status(lw, r, lambda c: c == 200, "200 (ACME challenge served over http, not redirected)"):
                    if r["body"] != TOKEN.encode():
                        self.fail(lw, f"GET {r['url']} served {r['body'][:60]!r}, not the challenge file")

    def check_app_server(self, s, name, scheme, l, ip, mandatory):
        expected = [h["name"] for h in s["headers"]]
        port = l["port"]
        probes = []
        sw = f"{s['where']} (server {name})"
        if mandatory:
            lower = {h.lower() for h in expected}
            for h in MANDATORY:
                if h not in lower:
                    self.fail(sw, f"server-level add_header lacks {h}")
        # whatever location answers it
        r = self.curl(scheme, name, port, ip, "/kiln-conformance-probe")
        if self.expect_status(sw, r, lambda c: c not in (0, 444), "a response"):
            self.check_headers(sw, r, expected, mandatory)
        for loc in s["locations"]:
            lw = f"{loc['where']} (location {loc['modifier'] + ' ' if loc['modifier'] else ''}{loc['path']} on {name})"
            if loc["internal"] or loc["path"].startswith("@"):
                continue
            if loc["depth"] > 0:
                print(f"  note: {lw}: nested location not checked live")
                continue
            p = loc["path"]
            if loc["modifier"] in ("~", "~*"):
                uri = next((c for c in REGEX_CANDIDATES
                            if self.match(s["locations"], c) is loc), None)
                if uri is None:
                    print(f"  note: {lw}: no test URI matches this regex location")
                    continue
                p = uri
            elif loc["modifier"] == "=":
                uri = p
            else:
                uri = p + ("kiln-conformance" if p.endswith("/") else "")
            reqs = []
            if loc["return"]:
                code = loc["return"][0]
                if code.isdigit():
                    if code == "444":
                        continue
                    reqs.append((uri, lambda c, code=code: c == int(code), f"{code} (return)", None))
            elif loc["deny_all"]:
                reqs.append((uri, lambda c: c == 403, "403 (deny all)", None))
            elif loc["http_proxy"]:
                reqs.append((uri, lambda c: 200 <= c < 300, "2xx from the upstream", None))
                if loc["modifier"] == "":
                    base = p if p.endswith("/") else p + "/"
                    reqs.append((base + "__conformance_404", lambda c: c == 404, "404 from the upstream", None))
                    reqs.append((base + "__conformance_500", lambda c: c >= 500, "5xx from the upstream", None))
                    probes.append((s, name, scheme, port, ip, mandatory, base + "kiln-conformance", lw))
                else:
                    probes.append((s, name, scheme, port, ip, mandatory, uri, lw))
            elif loc["pass"]:
                reqs.append((uri, lambda c: c != 0, "a response", None))
            elif "/.well-known/acme-challenge" in p:
                fs = self.fs_path_for(loc, s, p.rstrip("/") + "/" + TOKEN)
                if fs:
                    self.put(fs, TOKEN.encode())
                    reqs.append((p.rstrip("/") + "/" + TOKEN, lambda c: c == 200, "200 (ACME file)", TOKEN.encode()))
            else:  # serves files
                if loc["modifier"] == "=" or not p.endswith("/"):
                    file_uri = p if loc["modifier"] == "=" or "." in p.rsplit("/", 1)[-1] else p + "/kiln-conformance.txt"
                else:
                    file_uri = p + "kiln-conformance.txt"
                fs = self.fs_path_for(loc, s, file_uri)
                body = b"kiln conformance static file\n"
                if fs:
                    self.put(fs, body)
                    reqs.append((file_uri, lambda c: c == 200, "200 (static file)", body))
                if loc["modifier"] != "=" and p.endswith("/"):
                    tf = loc["try_files"]
                    if tf is None or tf[-1] == "=404":
                        reqs.append((p + "kiln-conformance-missing.txt", lambda c: c == 404,
                                     "404 (missing static file)", None))
            for uri_, ok, what, want_body in reqs:
                r = self.curl(scheme, name, port, ip, uri_)
                if self.match(s["locations"], uri_) is not loc:
                    pass  # another location answers this URI: only its headers are judged
                elif loc["limit_req"] and r["status"] in (429, 503):
                    print(f"  note: {lw}: rate limited ({r['status']}) during the check")
                elif self.expect_status(lw, r, ok, what) and want_body is not None and r["body"] != want_body:
                    self.fail(lw, f"GET {r['url']} served {r['body'][:60]!r}, not the test file")
                if r["status"]:
                    self.check_headers(lw, r, expected, mandatory)
        return probes

    @staticmethod
    def match(locs, uri):
        """The top-level location nginx picks for `uri` (exact, longest prefix / ^~, regex)."""
        top = [l for l in locs if l["depth"] == 0 and not l["path"].startswith("@")]
        for l in top:
            if l["modifier"] == "=" and l["path"] == uri:
                return l
        best = None
        for l in top:
            if l["modifier"] in ("", "^~") and uri.startswith(l["path"]):
                if best is None or len(l["path"]) > len(best["path"]):
                    best = l
        if best and best["modifier"] == "^~":
            return best
        for l in top:
            if l["modifier"] in ("~", "~*"):
                try:
                    if re.search(l["path"], uri, re.I if l["modifier"] == "~*" else 0):
                        return l
                except re.error:
                    continue
        return best

    def moved(self, probes):
        seen = set()
        for s, name, scheme, port, ip, mandatory, uri, lw in probes:
            if (name, port, uri) in seen or "__conformance_" in uri:
                continue
            seen.add((name, port, uri))
            r = self.curl(scheme, name, port, ip, uri)
            self.expect_status(lw, r, lambda c: 200 <= c < 300,
                               "2xx once the upstream moved to another address (nginx re-resolves its name)")

    def upstream_down(self, probes):
        seen = set()
        for s, name, scheme, port, ip, mandatory, uri, lw in probes:
            if (name, port, uri) in seen:
                continue
            seen.add((name, port, uri))
            r = self.curl(scheme, name, port, ip, uri)
            if self.expect_status(lw, r, lambda c: c >= 500, "5xx with the upstream down"):
                self.check_headers(lw, r, [h["name"] for h in s["headers"]], mandatory)


def start_ready(cmd, err_path, what):
    """Starts a helper that prints "ready" once it listens; dies with its stderr if it does not."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(err_path, "w"), text=True)
    if proc.stdout.readline().strip() != "ready":
        stop(proc)
        with open(err_path) as f:
            die(f"{what} failed ({' '.join(cmd[2:])}): {f.read()}")
    return proc


def live(plan, work):
    if plan["has_daemon"]:
        print("nginx: the config sets `daemon`; live check skipped", file=sys.stderr)
        return True
    upstream_addrs = []
    for t in plan["upstreams"]:
        h, p, scheme = t
        if h == "unix":
            upstream_addrs.append("unix:" + p)
            continue
        if scheme == "https":
            print(f"  note: https upstream {h}:{p} is not simulated (expect 502 there)")
            continue
        ip = plan["hosts"].get(h, h)
        if h == "localhost":
            upstream_addrs += [f"127.0.0.1:{p}", f"[::1]:{p}"]
        elif ":" in ip:
            upstream_addrs.append(f"[{ip}]:{p}")
        else:
            upstream_addrs.append(f"{ip}:{p}")
    upstream_addrs = sorted(set(upstream_addrs))
    up = ngx = dns = None
    lv = Live(plan, work)
    dns_map = os.path.join(work, "dns.json")
    try:
        if plan["resolvers"]:
            # nginx resolves upstream names itself (not through /etc/hosts): answer for them.
            with open(dns_map, "w") as f:
                json.dump(plan["hosts"], f)
            dns = start_ready([sys.executable, os.path.join(HERE, "dns.py"), dns_map] + plan["resolvers"],
                              os.path.join(work, "dns.err"), "stand-in DNS")
        if upstream_addrs:
            up = subprocess.Popen([sys.executable, os.path.join(HERE, "upstream.py")] + upstream_addrs,
                                  stdout=subprocess.PIPE, stderr=open(os.path.join(work, "upstream.err"), "w"),
                                  text=True)
            line = up.stdout.readline()
            if line.strip() != "ready":
                with open(os.path.join(work, "upstream.err")) as f:
                    die(f"stand-in upstream failed on {upstream_addrs}: {f.read()}")
        args, g = nginx_args(plan, work)
        errf = open(os.path.join(work, "nginx.stderr"), "w")
        ngx = subprocess.Popen(args + ["-g", g + "daemon off;"], stdout=errf, stderr=subprocess.STDOUT)
        want = {(loopback_for(l), l["port"]) for s in plan["servers"] for l in s["listens"]}
        deadline = time.time() + 10
        while True:
            if ngx.poll() is not None:
                with open(os.path.join(work, "nginx.stderr")) as f:
                    print(f"nginx: nginx exited at start ({ngx.returncode}):\n  " +
                          to_orig(f.read(), plan).replace("\n", "\n  "), file=sys.stderr)
                return False
            if all(connect_ok(h, p) for h, p in want):
                break
            if time.time() > deadline:
                print(f"nginx: nginx did not listen on {sorted(want)} within 10 s", file=sys.stderr)
                return False
            time.sleep(0.05)
        probes = lv.run_servers()
        if up:
            stop(up)
            up = None
        lv.upstream_down(probes)
        if probes and plan["hosts"]:
            # The services come back at other addresses (a recreated container): nginx must
            # follow the new answer (DNS, and /etc/hosts for a config that resolves at start),
            # not keep proxying to the old address until it is restarted.
            moved = {h: f"127.0.2.{i + 1}" for i, h in enumerate(sorted(plan["hosts"]))}
            addrs = sorted({f"{moved[h]}:{p}" for h, p, scheme in plan["upstreams"]
                            if h in moved and scheme == "http"})
            up = start_ready([sys.executable, os.path.join(HERE, "upstream.py")] + addrs,
                             os.path.join(work, "upstream.err"), "stand-in upstream")
            with open(dns_map + ".new", "w") as f:
                json.dump(moved, f)
            os.replace(dns_map + ".new", dns_map)
            with open(os.path.join(work, "hosts"), "r+") as f:  # in place: it is bind-mounted
                f.truncate(0)
                f.write("127.0.0.1 localhost\n" + "".join(f"{ip} {h}\n" for h, ip in moved.items()))
            time.sleep(2.5)  # `valid` counts whole seconds: an answer lives up to 2 s
            lv.moved(probes)
    finally:
        stop(ngx)
        stop(up)
        stop(dns)
    if lv.failures:
        print(f"nginx: live check of {plan['src']} failed:", file=sys.stderr)
        for f in lv.failures:
            print(f"  {to_orig(f, plan)}", file=sys.stderr)
        return False
    print(f"  live: {lv.requests} requests checked")
    return True


def ns(work, do_live):
    with open(os.path.join(work, "plan.json")) as f:
        plan = json.load(f)
    r = run(["mount", "--bind", os.path.join(work, "hosts"), "/etc/hosts"])
    if r.returncode:
        die(f"cannot bind-mount the hosts file: {r.stdout}")
    r = run(["ip", "link", "set", "lo", "up"])
    if r.returncode:
        die(f"cannot bring up lo in the namespace: {r.stdout}")
    if not nginx_t(plan, work):
        return 1
    print(f"  nginx -t: ok ({plan['src']})")
    if do_live and not live(plan, work):
        return 1
    return 0


def main():
    a = sys.argv[1:]
    if len(a) in (4, 5) and a[0] == "prepare":
        prepare(a[1], a[2], a[3], a[4] if len(a) == 5 else None)
        return 0
    if len(a) >= 2 and a[0] == "ns":
        return ns(a[1], "--no-live" not in a[2:])
    die("usage: nginx_check.py prepare SRC WORK PKI [COMPOSE_FILE] | ns WORK [--no-live]")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug in the check itself, not a finding: exit 2
        import traceback
        traceback.print_exc()
        sys.exit(2)
