"""yaml_compare.py FILE… — every YAML file must mean the same to a YAML 1.1 reader (PyYAML, like
Go's yaml.v2 and many tools) and a YAML 1.2 reader (ruamel.yaml, pure, version 1.2): unquoted
`on`/`yes`/`no`, `22:22`, `0755`, `1e3`, … load differently and are reported with their path.
Duplicate keys are errors too (the 1.2 loader refuses them)."""

import sys

import yaml
from ruamel.yaml import YAML


def load11(text):
    return list(yaml.safe_load_all(text))


def load12(text):
    y = YAML(typ="safe", pure=True)
    y.version = (1, 2)
    y.allow_duplicate_keys = False
    return list(y.load_all(text))


def show(v):
    return f"{v!r} ({type(v).__name__})"


def diff(a, b, path):
    if type(a) is not type(b):
        return f"{path or '/'}: YAML 1.1 reads {show(a)}, YAML 1.2 reads {show(b)}"
    if isinstance(a, dict):
        ka, kb = list(a.keys()), list(b.keys())
        for x, y in zip(ka, kb):
            if type(x) is not type(y) or x != y:
                return (f"{path or '/'}: key read as {show(x)} by YAML 1.1 and {show(y)} by "
                        f"YAML 1.2 (quote it)")
        if len(ka) != len(kb):
            return f"{path or '/'}: {len(ka)} keys in YAML 1.1, {len(kb)} in YAML 1.2"
        for k in ka:
            d = diff(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path or '/'}: {len(a)} items in YAML 1.1, {len(b)} in YAML 1.2"
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, f"{path}/{i}")
            if d:
                return d
        return None
    if a != b:
        return f"{path or '/'}: YAML 1.1 reads {show(a)}, YAML 1.2 reads {show(b)}"
    return None


def main():
    bad = 0
    for f in sys.argv[1:]:
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        try:
            d11 = load11(text)
        except yaml.YAMLError as e:
            print(f"yaml: {f}: YAML 1.1 (PyYAML) cannot load it: {e}", file=sys.stderr)
            bad += 1
            continue
        try:
            d12 = load12(text)
        except Exception as e:  # ruamel raises several error types
            print(f"yaml: {f}: YAML 1.2 (ruamel.yaml) cannot load it: {e}", file=sys.stderr)
            bad += 1
            continue
        if len(d11) != len(d12):
            d = f"{len(d11)} documents in YAML 1.1, {len(d12)} in YAML 1.2"
        else:
            d = next((x for i, (a, b) in enumerate(zip(d11, d12))
                      for x in [diff(a, b, f"(document {i + 1})" if len(d11) > 1 else "")] if x),
                     None)
        if d:
            print(f"yaml: {f}: {d}", file=sys.stderr)
            bad += 1
    if not bad:
        print(f"  {len(sys.argv) - 1} YAML files read the same in YAML 1.1 and 1.2")
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # a bug in the check itself, not a finding: exit 2
        import traceback
        traceback.print_exc()
        sys.exit(2)
