#!/usr/bin/env bash
# prometheus.sh ENV_DIR
#
# ENV_DIR/prometheus/alerts.yml (`alerts { … }`), by Prometheus's own promtool:
#   1. `promtool check rules` (the file, every expression, duration and template parses);
#   2. `promtool test rules` on unit tests made from the file: every "is it down" rule
#      (`metric{…} == 0`) and every 5xx-rate rule is fed series that must fire it, with exactly
#      the labels and annotations the file gives, and healthy series that must not. A site's
#      probe series carries the site's own URL, so the instance regex is proven to match it.
# Exit: 0 ok, 1 a check failed, 2 the suite could not run.
set -euo pipefail
# shellcheck source=tests/conformance/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VALIDATOR=prometheus

ENV_DIR=$(env_dir_arg "${1:-}")
require_venv
command -v promtool >/dev/null || usage_die "promtool not installed (apt-get install prometheus)"
rules="$ENV_DIR/prometheus/alerts.yml"
[[ -f $rules ]] || usage_die "no prometheus/alerts.yml in $ENV_DIR"
WORK=$(make_work)
cleanup() { [[ -n ${KILN_CONFORMANCE_KEEP:-} ]] || rm -rf "$WORK"; }
trap cleanup EXIT

if ! out=$(promtool check rules "$rules" 2>&1); then
  err "prometheus/alerts.yml: promtool check rules: $out"
  exit 1
fi
cp "$rules" "$WORK/alerts.yml"
if ! "$VPY" - "$WORK/alerts.yml" "$WORK/tests.yml" <<'PY'; then
import re, sys, yaml
rules_file, out = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(rules_file))
tests = []
def labels(matchers):
    out = {}
    for m in re.finditer(r'(\w+)\s*(=~|=|!~|!=)\s*"((?:[^"\\]|\\.)*)"', matchers):
        k, op, v = m.group(1), m.group(2), m.group(3).encode().decode("unicode_escape")
        if op == "=":
            out[k] = v
    return out
def sel(metric, lab):
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(lab.items())) + "}"
count = 0
for g in doc["groups"]:
    for r in g["rules"]:
        name, expr = r["alert"], r["expr"]
        exp_labels = dict(r.get("labels") or {})
        m = re.fullmatch(r"(\w+)\{(.*)\} == 0", expr)
        if m:
            metric, lab = m.group(1), labels(m.group(2))
            if name.endswith("SiteDown"):
                host = r["annotations"]["summary"].split()[0]
                scheme = "https" if "https://" in expr else "http"
                lab["instance"] = f"{scheme}://{host}/"
            series = sel(metric, lab)
            exp = dict(exp_labels, **lab)
            tests.append({"interval": "1m",
                          "input_series": [{"series": series, "values": "0x15"}],
                          "alert_rule_test": [{"eval_time": "10m", "alertname": name,
                              "exp_alerts": [{"exp_labels": exp, "exp_annotations": r["annotations"]}]}]})
            tests.append({"interval": "1m",
                          "input_series": [{"series": series, "values": "1x15"}],
                          "alert_rule_test": [{"eval_time": "10m", "alertname": name, "exp_alerts": []}]})
            count += 1
            continue
        m = re.fullmatch(r"sum\(rate\((\w+)\{(.*?)\}\[5m\]\)\) / sum\(rate\((\w+)\{(.*?)\}\[5m\]\)\) \* 100 > ([0-9.]+)", expr)
        if m:
            metric, lab = m.group(1), labels(m.group(2))
            threshold = float(m.group(5))
            bad = 500 if "5.." in m.group(2) else None
            status5 = "500" if re.search(r'status=~"[^"]*5\.\.', m.group(2)) else "5xx"
            ok = dict(lab, status="200")
            err5 = dict(lab, status=status5)
            # Fires: 30% errors; healthy: none.
            fire = [{"series": sel(metric, ok), "values": "0+70x20"}, {"series": sel(metric, err5), "values": "0+30x20"}]
            calm = [{"series": sel(metric, ok), "values": "0+100x20"}, {"series": sel(metric, err5), "values": "0+0x20"}]
            tests.append({"interval": "1m", "input_series": fire,
                          "alert_rule_test": [{"eval_time": "15m", "alertname": name,
                              "exp_alerts": [{"exp_labels": exp_labels, "exp_annotations": r["annotations"]}]}]})
            tests.append({"interval": "1m", "input_series": calm,
                          "alert_rule_test": [{"eval_time": "15m", "alertname": name, "exp_alerts": []}]})
            count += 1
yaml.safe_dump({"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests}, open(out, "w"), sort_keys=False)

PY
  exit 2
fi
n=$(grep -c 'alertname:' "$WORK/tests.yml" || true)
if ! out=$(cd "$WORK" && promtool test rules tests.yml 2>&1); then
  err "prometheus/alerts.yml: promtool test rules: $(tail -n 30 <<<"$out")"
  exit 1
fi
echo "  prometheus/alerts.yml: promtool check rules ok; $n rule tests (firing and quiet) pass"
