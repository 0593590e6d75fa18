"""k8s_kustomization.py K8S_DIR — the layout contract of a generated k8s/ dir:
kustomization.yaml is a Kustomization whose `resources:` lists exactly the other YAML files of
the dir (no missing, extra or repeated entries), and every other file holds one resource."""

import os
import sys

import yaml


def main():
    d = os.path.abspath(sys.argv[1])
    kfile = os.path.join(d, "kustomization.yaml")
    errs = []
    files = sorted(f for f in os.listdir(d)
                   if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
    if not os.path.exists(kfile):
        errs.append(f"{kfile}: missing")
    else:
        with open(kfile, encoding="utf-8") as f:
            k = yaml.safe_load(f) or {}
        if k.get("kind") != "Kustomization":
            errs.append(f"{kfile}: kind is {k.get('kind')!r}, expected Kustomization")
        res = k.get("resources") or []
        if not isinstance(res, list) or not all(isinstance(r, str) for r in res):
            errs.append(f"{kfile}: resources must be a list of file names")
            res = []
        norm = [os.path.normpath(r) for r in res]
        for r in sorted({r for r in norm if norm.count(r) > 1}):
            errs.append(f"{kfile}: resources lists {r} more than once")
        for r in sorted(set(norm) - set(files)):
            errs.append(f"{kfile}: resources lists {r}, which is not a YAML file in {d}")
        for f in sorted(set(files) - set(norm)):
            errs.append(f"{kfile}: resources does not list {f}")
    for f in files:
        with open(os.path.join(d, f), encoding="utf-8") as fh:
            docs = [x for x in yaml.safe_load_all(fh) if x is not None]
        if len(docs) != 1:
            errs.append(f"{d}/{f}: holds {len(docs)} resources, expected exactly one")
    for e in errs:
        print(f"k8s: {e}", file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug in the check itself, not a finding: exit 2
        import traceback
        traceback.print_exc()
        sys.exit(2)
