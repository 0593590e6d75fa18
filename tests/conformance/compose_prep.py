"""compose_prep.py COPY_DIR — make a COPY of a generated compose dir loadable by
`docker compose config`: create `.env` and every env_file / secrets.file / configs.file it
references that is missing, from `.env.example` with empty values filled with a dummy.
Prints what it created. Never touches the generated dir itself."""

import os
import re
import sys

import yaml

DUMMY = "kiln-conformance-dummy"


def env_from_example(copy):
    ex = os.path.join(copy, ".env.example")
    if not os.path.exists(ex):
        return ""
    out = []
    with open(ex, encoding="utf-8") as f:
        for line in f.read().splitlines():
            m = re.match(r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
            if m and m.group(3) in ("", '""', "''"):
                line = f"{m.group(2)}={DUMMY}"
            out.append(line)
    return "\n".join(out) + "\n"


def create(copy, rel, text, made):
    p = os.path.normpath(os.path.join(copy, rel))
    if not p.startswith(copy + os.sep):
        print(f"  note: {rel} lies outside the compose dir; not created")
        return
    if os.path.exists(p):
        return
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    made.append(rel)


def main():
    copy = os.path.abspath(sys.argv[1])
    name = next((n for n in ("compose.yaml", "compose.yml", "docker-compose.yaml",
                             "docker-compose.yml") if os.path.exists(os.path.join(copy, n))), None)
    if not name:
        print("compose: no compose.yaml", file=sys.stderr)
        return 1
    with open(os.path.join(copy, name), encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    env_text = env_from_example(copy)
    made = []
    create(copy, ".env", env_text, made)
    for svc in (doc.get("services") or {}).values():
        ef = (svc or {}).get("env_file")
        if ef is None:
            continue
        for e in ef if isinstance(ef, list) else [ef]:
            path = e.get("path") if isinstance(e, dict) else e
            if isinstance(path, str) and "$" not in path:
                create(copy, path, env_text, made)
    for top in ("secrets", "configs"):
        for item in (doc.get(top) or {}).values():
            if isinstance(item, dict) and isinstance(item.get("file"), str) and "$" not in item["file"]:
                create(copy, item["file"], DUMMY + "\n", made)
    if made:
        print(f"  created in the copy: {', '.join(made)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug in the check itself, not a finding: exit 2
        import traceback
        traceback.print_exc()
        sys.exit(2)
