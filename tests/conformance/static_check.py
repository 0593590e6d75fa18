#!/usr/bin/env python3
"""static_check.py ENV_DIR — static files that live in an app image (`static … from=SERVICE`).

Runs, in a private network namespace (static.sh starts it under `unshare --net`):
  1. every copier the outputs hold — the compose one-shot services that fill a volume mounted
     at /kiln-static, the Kubernetes `static-copy-N` init containers — with its exact command,
     on a stand-in image folder (files, a nested folder, an absolute and a relative symbolic
     link) and a destination holding stale files: the destination must end up holding exactly
     the image's regular files and folders (no link, nothing stale);
  2. in compose, nginx must mount the copier's volume read-only at the folder the copier reads;
  3. every Kubernetes static sidecar (ConfigMap `*-static`, key nginx.conf), started for real
     with its `alias` folders mirrored to a temp dir and its port moved to a loopback port: a
     file answers 200 with the location's Cache-Control and `nosniff`, a missing file, `/` and
     a traversal attempt are not served; the Service and the Ingress route to its port.
Exit: 0 ok, 1 a check failed, 2 the check could not run.
"""

import glob
import http.client
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import yaml

FAILED = []


def fail(msg):
    FAILED.append(msg)
    print(f"static: {msg}", file=sys.stderr)


def stand_in_image(root):
    os.makedirs(os.path.join(root, "css", "deep"))
    with open(os.path.join(root, "css", "site.css"), "w") as f:
        f.write("body{}\n")
    with open(os.path.join(root, "css", "deep", "a.js"), "w") as f:
        f.write("1;\n")
    with open(os.path.join(root, ".hidden"), "w") as f:
        f.write("h\n")
    os.symlink("/etc/passwd", os.path.join(root, "passwd.css"))
    os.symlink("css/site.css", os.path.join(root, "alias.css"))


def tree(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            kind = "link" if os.path.islink(p) else ("dir" if os.path.isdir(p) else "file")
            out.add((os.path.relpath(p, root), kind))
    return out


def check_copy(what, command, unescape):
    """Runs a copier's command with its last two arguments (source, destination) replaced."""
    cmd = [unescape(c) for c in command]
    if len(cmd) < 4 or cmd[0] not in ("python", "python3", "sh"):
        fail(f"{what}: not a copy command kiln writes: {cmd[:2]}")
        return None
    with tempfile.TemporaryDirectory() as t:
        src, dst = os.path.join(t, "image"), os.path.join(t, "volume")
        stand_in_image(src)
        os.makedirs(os.path.join(dst, "stale-dir"))
        with open(os.path.join(dst, "stale.css"), "w") as f:
            f.write("old\n")
        exe = sys.executable if cmd[0].startswith("python") else "sh"
        r = subprocess.run([exe] + cmd[1:-2] + [src, dst], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            fail(f"{what}: the copy failed ({r.returncode}): {r.stderr.strip()}")
            return cmd[-2]
        want = {p for p in tree(src) if p[1] != "link"}
        got = tree(dst)
        if got != want:
            fail(f"{what}: the volume holds {sorted(got - want)} and lacks {sorted(want - got)}")
        # A failing copy must fail the step (nginx then does not start).
        r = subprocess.run([exe] + cmd[1:-2] + [os.path.join(t, "missing"), dst], capture_output=True, timeout=60)
        if r.returncode == 0:
            fail(f"{what}: a copy from a missing folder succeeded")
    print(f"info: {what}: copies {cmd[-2]} without links or stale files")
    return cmd[-2]


def compose(env):
    path = os.path.join(env, "compose", "compose.yaml")
    if not os.path.exists(path):
        return
    doc = yaml.safe_load(open(path))
    services = doc.get("services", {})
    for name, s in services.items():
        vols = [v for v in s.get("volumes", []) if isinstance(v, str) and v.split(":")[1:2] == ["/kiln-static"]]
        if not vols:
            continue
        volume = vols[0].split(":")[0]
        root = check_copy(f"compose service {name}", s.get("command", []), lambda c: c.replace("$$", "$"))
        if s.get("restart") != "no" or s.get("network_mode") != "none":
            fail(f"compose service {name}: a copier runs once and offline (restart no, network_mode none)")
        mounts = [m for svc in services.values() for m in svc.get("volumes", []) if isinstance(m, str)]
        if root and f"{volume}:{root}:ro" not in mounts:
            fail(f"compose: nothing mounts `{volume}` read-only at {root}, the folder {name} copies")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    return r.status, {k.lower(): v for k, v in r.getheaders()}


def sidecar(name, conf):
    with tempfile.TemporaryDirectory() as t:
        os.chmod(t, 0o755)
        port = free_port()
        aliases = {}

        def mirror(m):
            folder = m.group(1).strip('"')
            local = os.path.join(t, "root" + folder.rstrip("/"))
            os.makedirs(local, exist_ok=True)
            with open(os.path.join(local, "kiln-probe.css"), "w") as f:
                f.write("p{}\n")
            aliases[folder] = local
            return f"alias {local}/;"

        text = conf.replace("/tmp/", f"{t}/tmp/")
        text = re.sub(r"alias\s+(\S+?);", mirror, text)
        text = re.sub(r"listen\s+\d+;", f"listen 127.0.0.1:{port};", text)
        os.makedirs(os.path.join(t, "tmp"))
        cf = os.path.join(t, "nginx.conf")
        with open(cf, "w") as f:
            f.write(text)
        r = subprocess.run(["nginx", "-t", "-c", cf], capture_output=True, text=True)
        if r.returncode != 0 or "[warn]" in r.stderr or "[emerg]" in r.stderr:
            fail(f"{name}: nginx -t: {r.stderr.strip()}")
            return
        proc = subprocess.Popen(["nginx", "-c", cf, "-g", "daemon off;"], stdout=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            locs = re.findall(r"location\s+(\S+)\s*\{([^}]*)\}", conf)
            for loc, body in locs:
                if loc == "/":
                    continue
                status, headers = get(port, f"{loc}kiln-probe.css")
                if status != 200:
                    fail(f"{name}: {loc}kiln-probe.css answered {status}")
                    continue
                cc = re.search(r'add_header Cache-Control "([^"]*)"', body)
                if cc and cc.group(1) not in headers.get("cache-control", ""):
                    fail(f"{name}: {loc}: Cache-Control {headers.get('cache-control')!r}, not {cc.group(1)!r}")
                if headers.get("x-content-type-options") != "nosniff":
                    fail(f"{name}: {loc}: no X-Content-Type-Options nosniff")
                for bad in (f"{loc}missing.css", f"{loc}../nginx.conf", "/"):
                    s, _ = get(port, bad)
                    if s == 200:
                        fail(f"{name}: {bad} answered 200")
            print(f"info: {name}: serves {', '.join(l for l, _ in locs if l != '/')} live")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def k8s(env):
    d = os.path.join(env, "k8s")
    if not os.path.isdir(d):
        return
    for f in sorted(glob.glob(os.path.join(d, "deployment-*.yaml"))):
        doc = yaml.safe_load(open(f))
        spec = doc["spec"]["template"]["spec"]
        inits = [c for c in spec.get("initContainers", []) if c["name"].startswith("static-copy-")]
        for c in inits:
            check_copy(f"{os.path.basename(f)} {c['name']}", c["command"], lambda s: s.replace("$$", "$"))
        if inits and not any(c["name"] == "static" for c in spec["containers"]):
            fail(f"{os.path.basename(f)}: static copies but no `static` sidecar")
    for f in sorted(glob.glob(os.path.join(d, "configmap-*-static.yaml"))):
        doc = yaml.safe_load(open(f))
        service = doc["metadata"]["name"][: -len("-static")]
        sidecar(os.path.basename(f), doc["data"]["nginx.conf"])
        svc = yaml.safe_load(open(os.path.join(d, f"service-{service}.yaml")))
        if not any(p.get("targetPort") == "static" for p in svc["spec"]["ports"]):
            fail(f"service-{service}.yaml: no port to the static sidecar")
        routed = False
        for ing in glob.glob(os.path.join(d, "ingress-*.yaml")):
            for rule in yaml.safe_load(open(ing))["spec"].get("rules", []):
                for p in rule["http"]["paths"]:
                    b = p["backend"]["service"]
                    routed |= b["name"] == service and b["port"].get("name") == "static"
        if not routed:
            fail(f"{os.path.basename(f)}: no Ingress path reaches the sidecar")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    if shutil.which("nginx") is None:
        print("static: nginx not installed", file=sys.stderr)
        sys.exit(2)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    compose(sys.argv[1])
    k8s(sys.argv[1])
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
