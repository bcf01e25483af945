#!/bin/sh
# promtool's rule unit tests (alert-tests.yaml) on the rules of base/prometheus-rules.yaml.
# Needs promtool on PATH (Debian's `prometheus` package, or `go install
# github.com/prometheus/prometheus/cmd/promtool@v0.316.0`, a long build) and a Python with
# PyYAML (PYTHON=.venv/bin/python) to take the rule groups out of the PrometheusRule.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(open(sys.argv[1]))["spec"], open(sys.argv[2], "w"))' \
  "$here/base/prometheus-rules.yaml" "$work/rules.yaml"
cp "$here/alert-tests.yaml" "$work/"
cd "$work"
promtool check rules rules.yaml
promtool test rules alert-tests.yaml
