#!/usr/bin/env bash
# static.sh ENV_DIR
#
# Static files served from an app image (`static … from=SERVICE`): the compose copier and the
# Kubernetes init containers run for real on a stand-in image folder, and the Kubernetes static
# sidecar's nginx serves for real, in a private network namespace (static_check.py says what is
# checked).
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=static

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
export PATH="$PATH:/usr/sbin:/sbin"
unshare --net -- true 2>/dev/null ||
  usage_die "unshare --net does not work here (needs root / CAP_SYS_ADMIN): cannot isolate the check"
exec unshare --net -- "$VPY" "$CONF_DIR/static_check.py" "$ENV_DIR"
