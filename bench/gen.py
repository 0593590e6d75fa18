#!/usr/bin/env python3
"""Writes a synthetic kiln project for benchmarks: N environments x M services.

    python3 bench/gen.py OUT_DIR [--envs N] [--services M] [--targets LIST] [--single-file]

Every environment extends one abstract `base` layer and has PostgreSQL behind
pgbouncer, Redis, M application processes (web = gunicorn, asgi = daphne,
worker, beat, then more Celery workers: worker-2, worker-3, ...), one nginx
site with TLS, rate limiting, static files and a websocket location, a
firewall, and every target (compose, systemd, nginx, pgbouncer, k8s). Tiers
cycle production, staging, development. Each environment lives in its own file
(`environments/<name>.kdl`, included from kiln.kdl) unless --single-file.

The output depends only on the flags: same flags, same bytes. The project
compiles cleanly (exit 0) with the standard policy library; bench/guard.sh
and bench/run.sh rely on that.

Why Python and not a Rust xtask binary: a second binary in the workspace would
make the README's `cargo run --release -- compile ...` ambiguous, and the
regression guard runs it in CI where python3 is already installed (the
conformance suite's venv) and nothing has to be compiled first.
"""

import argparse
import hashlib
import os
import shutil
import sys

TIERS = ("production", "staging", "development")


ALL_TARGETS = ("compose", "systemd", "nginx", "pgbouncer", "k8s")


def base_layer(services, targets=ALL_TARGETS):
    """The shared abstract layer: everything but what varies by environment."""
    out = []
    w = out.append
    w("environment base abstract=#true {")
    w('    versions nginx="1.22" pgbouncer="1.18" openssl="3.0"')
    w("    host {")
    w("        user bench")
    w('        root "/opt/bench"')
    w("        uid 10001")
    w('        log-dir "/var/log/bench"')
    w("    }")
    w("    env {")
    w('        DJANGO_SETTINGS_MODULE "config.settings"')
    w('        LOG_LEVEL "INFO"')
    w("        JSON_LOGS #true")
    w("        DB_CONN_MAX_AGE 0")
    w("        DISABLE_SERVER_SIDE_CURSORS #true")
    w('        EMAIL_HOST "smtp.example.com"')
    w("        EMAIL_PORT 587")
    w("        EMAIL_USE_TLS #true")
    w('        DEFAULT_FROM_EMAIL "noreply@example.com"')
    w("    }")
    w("    secret SECRET_KEY kind=django-secret-key")
    w("    secret ENCRYPTION_KEY kind=fernet")
    w("    secret DB_PASSWORD kind=password")
    w("    secret REDIS_PASSWORD kind=password")
    w("    secret EMAIL_HOST_PASSWORD kind=api-key")
    w("    secret SENTRY_DSN kind=url optional=#true")
    w("")
    w("    postgres db {")
    w("        version 15")
    w(f'        image "postgres:15.10@{digest("postgres")}"')
    w("        database app_db")
    w("        user app_user")
    w("        password DB_PASSWORD")
    w("        pooler pgbouncer mode=transaction max-client-conn=1000 default-pool-size=25")
    w("        settings {")
    w("            max_connections 100")
    w('            shared_buffers "256MB"')
    w("        }")
    w('        resources cpu=2 memory="2Gi"')
    w("    }")
    w("    redis cache {")
    w("        version 7")
    w(f'        image "redis:7.2.5@{digest("redis")}"')
    w('        maxmemory "512mb"')
    w("        eviction allkeys-lru")
    w("        password REDIS_PASSWORD")
    w('        resources cpu="0.5" memory="768Mi"')
    w("    }")
    w("")
    for name in service_names(services):
        w(f"    {service_block(name)}")
    w("")
    w("    firewall {")
    w("        backend ufw")
    w('        allow ssh from="203.0.113.0/24" limit=#true comment="office VPN"')
    w("        allow http")
    w("        allow https")
    w("    }")
    w("    targets " + " ".join(targets))
    w("}")
    return "\n".join(out) + "\n"


def service_names(m):
    fixed = ["web", "asgi", "worker", "beat"]
    names = fixed[:m]
    names += [f"worker-{i}" for i in range(2, m - len(fixed) + 2)]
    return names


def digest(name):
    """A fixed, made-up sha256 digest, so images count as pinned."""
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def service_block(name):
    image = f'image "ghcr.io/bench/app:2.4.1@{digest("app")}"'
    if name == "web":
        return (
            "service web preset=django-web { "
            f"{image}; "
            'run gunicorn "config.wsgi:application" workers=4 threads=2 timeout=60; '
            'port 8000; health "/healthz"; uses db cache; resources cpu=2 memory="2Gi"; }'
        )
    if name == "asgi":
        return (
            "service asgi preset=daphne { "
            f"{image}; "
            'run daphne "config.asgi:application"; port 8001; uses db cache; }'
        )
    if name == "beat":
        return (
            "service beat preset=celery-beat { "
            f"{image}; run celery beat app=config; uses db cache; }}"
        )
    queue = "default" if name == "worker" else name.replace("-", "_")
    return (
        f"service {name} preset=celery-worker {{ "
        f"{image}; "
        f'run celery worker app=config concurrency=4 queues="{queue}" max-tasks-per-child=1000; '
        'uses db cache; resources cpu=1 memory="1Gi"; }'
    )


def environment(i, services):
    name = f"env-{i:04d}"
    tier = TIERS[i % len(TIERS)]
    host = f"app-{i:04d}.example.com"
    out = []
    w = out.append
    w(f"environment {name} extends=base {{")
    w(f"    tier {tier}")
    w("    env {")
    if tier == "development":
        w("        DEBUG #true")
        w(f'        ALLOWED_HOSTS "localhost,127.0.0.1,{host}"')
    else:
        w("        DEBUG #false")
        w(f'        ALLOWED_HOSTS "{host}"')
        w(f'        CSRF_TRUSTED_ORIGINS "https://{host}"')
        w("        SECURE_SSL_REDIRECT #true")
        w("        SESSION_COOKIE_SECURE #true")
        w("        CSRF_COOKIE_SECURE #true")
    w(f'        SENTRY_ENVIRONMENT "{name}"')
    w("    }")
    w(f"    postgres db {{ database app_{i:04d}; }}")
    if tier == "production":
        w('    service web { replicas 3; resources cpu=2 memory="4Gi"; }')
        if "worker" in service_names(services):
            w("    service worker { replicas 2; }")
    w(f'    site "{host}" upstream=web {{')
    w('        static "/static/" root="/opt/bench/staticfiles/" expires="30d" cache-control="public, immutable"')
    w('        location "/healthz" access-log=#false')
    if "asgi" in service_names(services):
        w('        websocket "/ws/" upstream=asgi read-timeout=86400')
    w('        max-body-size "10M"')
    w('        rate-limit api rate="10r/s" burst=20 nodelay=#true')
    w("    }")
    w("}")
    return name, "\n".join(out) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="project folder to write (replaced if it holds a kiln.kdl)")
    p.add_argument("--envs", type=int, default=10, help="environments (default 10)")
    p.add_argument("--services", type=int, default=8, help="services per environment (default 8, at least 1)")
    p.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help="comma-separated targets (default: all five)",
    )
    p.add_argument("--single-file", action="store_true", help="everything in kiln.kdl")
    a = p.parse_args()
    if a.envs < 1 or a.services < 1:
        p.error("--envs and --services must be at least 1")
    targets = [t for t in a.targets.split(",") if t]
    if not targets or any(t not in ALL_TARGETS for t in targets):
        p.error(f"--targets: a comma-separated list of {', '.join(ALL_TARGETS)}")
    if os.path.exists(a.out):
        if not os.path.exists(os.path.join(a.out, "kiln.kdl")) and os.listdir(a.out):
            sys.exit(f"gen.py: {a.out} exists and is not a kiln project; refusing to replace it")
        shutil.rmtree(a.out)
    os.makedirs(a.out)

    root = [
        f"// Synthetic benchmark project: {a.envs} environments x {a.services} services.",
        f"// Written by bench/gen.py --envs {a.envs} --services {a.services}"
        + ("" if targets == list(ALL_TARGETS) else f" --targets {','.join(targets)}")
        + (" --single-file" if a.single_file else "")
        + "; do not edit.",
        "project bench {",
        '    output "generated"',
        "}",
        "",
    ]
    envs = [environment(i, a.services) for i in range(1, a.envs + 1)]
    if a.single_file:
        text = "\n".join(root) + "\n" + base_layer(a.services, targets)
        for _, body in envs:
            text += "\n" + body
        write(os.path.join(a.out, "kiln.kdl"), text)
    else:
        os.makedirs(os.path.join(a.out, "environments"))
        # One `include` node lists every file (a node may appear once).
        files = ["base"] + [name for name, _ in envs]
        root.append("include \\")
        for k, name in enumerate(files):
            last = k == len(files) - 1
            root.append(f'    "environments/{name}.kdl"' + ("" if last else " \\"))
        for name, body in envs:
            write(os.path.join(a.out, "environments", f"{name}.kdl"), body)
        write(os.path.join(a.out, "environments", "base.kdl"), base_layer(a.services, targets))
        write(os.path.join(a.out, "kiln.kdl"), "\n".join(root) + "\n")


def write(path, text):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


if __name__ == "__main__":
    main()
