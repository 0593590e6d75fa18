#!/usr/bin/env bash
# yaml.sh ENV_DIR
#
# Every *.yaml / *.yml under ENV_DIR (compose, k8s, …) must load to the same data with a YAML
# 1.1 reader (PyYAML) and a YAML 1.2 reader (ruamel.yaml, pure, version 1.2): catches unquoted
# on/yes/no, 22:22, 0755, 1e3 … and duplicate keys. Exit: 0 ok, 1 a file differs, 2 could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=yaml

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
mapfile -t files < <(find "$ENV_DIR" -type f \( -name '*.yaml' -o -name '*.yml' \) | sort)
((${#files[@]})) || usage_die "no YAML files in $ENV_DIR"
"$VPY" "$CONF_DIR/yaml_compare.py" "${files[@]}"
