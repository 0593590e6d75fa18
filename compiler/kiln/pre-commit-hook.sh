#!/usr/bin/env bash
# The pre-commit hooks' entry (see .pre-commit-hooks.yaml): builds kiln from this checkout
# once per revision, then runs it on every kiln project that a changed file belongs to.
#
#   pre-commit-hook.sh check FILE…   kiln compile --check -q, per project
#   pre-commit-hook.sh fmt FILE…     kiln fmt --check, per project
#
# A project is the nearest folder above a file that holds kiln.kdl, so a project in a
# subfolder (deploy/kiln.kdl) or several projects in one repository need no `args:`.
# The build goes to ${XDG_CACHE_HOME:-~/.cache}/kiln-pre-commit/<revision>; KILN overrides
# the binary (a kiln already on PATH, say: KILN=kiln).
set -euo pipefail
mode=${1:?usage: pre-commit-hook.sh check|fmt FILE...}
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

kiln=${KILN:-}
if [[ -z $kiln ]]; then
  rev=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo "unversioned")
  root="${XDG_CACHE_HOME:-$HOME/.cache}/kiln-pre-commit/$rev"
  kiln="$root/bin/kiln"
  if [[ ! -x $kiln ]]; then
    echo "kiln: building kiln for the hooks (once per revision) into $root" >&2
    cargo install --quiet --locked --root "$root" --path "$repo/compiler/kiln" >&2
  fi
fi

# The projects of the changed files, each once, in order.
projects=()
for f in "$@"; do
  d=$(dirname -- "$f")
  while [[ ! -f $d/kiln.kdl && $d != . && $d != / ]]; do
    d=$(dirname -- "$d")
  done
  [[ -f $d/kiln.kdl ]] || continue
  seen=0
  for p in "${projects[@]+"${projects[@]}"}"; do [[ $p == "$d" ]] && seen=1; done
  ((seen)) || projects+=("$d")
done
((${#projects[@]})) || exit 0

rc=0
for p in "${projects[@]}"; do
  case $mode in
    check) "$kiln" compile --check -q -- "$p" || rc=$? ;;
    fmt) "$kiln" fmt --check -- "$p" || rc=$? ;;
    *) echo "pre-commit-hook.sh: unknown mode $mode" >&2; exit 2 ;;
  esac
done
exit "$rc"
