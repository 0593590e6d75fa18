#!/usr/bin/env bash
# k8s.sh ENV_DIR
#
# ENV_DIR/k8s must pass:
#   1. kubernetes-validate --strict -k 1.30.0 over every manifest except kustomization.yaml
#      (strict: unknown fields fail; any WARN/ERROR line fails, e.g. an unknown kind);
#   2. yamllint with duplicate keys enabled over every YAML file;
#   3. the layout contract: kustomization.yaml `resources:` lists exactly the other YAML files,
#      one resource per file;
#   4. `kubectl kustomize` renders the dir offline, when kubectl is installed (Debian bookworm
#      has no kubectl package of its own; this image ships Google's. Skipped with a note if absent).
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=k8s

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
dir=$ENV_DIR/k8s
[[ -d $dir ]] || usage_die "no k8s/ in $ENV_DIR"
K8S_VERSION=${KILN_CONFORMANCE_K8S_VERSION:-1.30.0}
rc=0

mapfile -t all < <(find "$dir" -maxdepth 1 -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
manifests=()
for f in "${all[@]}"; do
  [[ $(basename "$f") == kustomization.yaml ]] || manifests+=("$f")
done
((${#manifests[@]})) || die "$dir: no manifests"

# 1. schemas
set +e
out=$("$VBIN/kubernetes-validate" --strict -k "$K8S_VERSION" "${manifests[@]}" 2>&1)
r=$?
set -e
bad=$(printf '%s\n' "$out" | grep -v '^INFO ' || true)
if ((r != 0)) || [[ -n $bad ]]; then
  err "kubernetes-validate --strict -k $K8S_VERSION failed:"
  printf '%s\n' "$out" | grep -v '^INFO .* passed for resource' | sed 's/^/  /' >&2
  rc=1
else
  echo "  kubernetes-validate --strict -k $K8S_VERSION: ${#manifests[@]} manifests ok"
fi

# 2. duplicate keys
if ! out=$("$VBIN/yamllint" -f parsable -d "$CONF_DIR/yamllint.yaml" "${all[@]}" 2>&1); then
  err "yamllint found errors:"
  printf '%s\n' "$out" | sed 's/^/  /' >&2
  rc=1
fi

# 3. kustomization lists exactly the files
"$VPY" "$CONF_DIR/k8s_kustomization.py" "$dir" || rc=1

# 4. kustomize render
if command -v kubectl >/dev/null 2>&1; then
  if ! out=$(kubectl kustomize "$dir" 2>&1 >/dev/null) || [[ -n $out ]]; then
    err "kubectl kustomize $dir failed:"
    printf '%s\n' "$out" | sed 's/^/  /' >&2
    rc=1
  else
    echo "  kubectl kustomize: ok"
  fi
else
  echo "  note: kubectl not installed; kustomize render skipped"
fi
exit "$rc"
