#!/usr/bin/env bash
# The hardening check on a meshd unit file: `systemd-analyze security --offline=true` must
# rate its exposure 2.0 or lower. Prints the score; above 2.0 (or unreadable) prints the
# report's tail and exits 1.
#
#   bash scripts/exposure.sh [UNIT]        (default systemd/meshd.service)
set -euo pipefail
unit=${1:-$(dirname "${BASH_SOURCE[0]}")/../systemd/meshd.service}
command -v systemd-analyze >/dev/null || {
    echo "no systemd-analyze (install systemd, or run scripts/setup.sh)" >&2; exit 1; }
report=$(systemd-analyze security --offline=true "$unit" 2>&1 || true)
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$report")
if [[ -z "$score" ]] || ! awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
    echo "$report" | tail -40 >&2
    echo "$unit: exposure ${score:-unknown}, must be 2.0 or lower" >&2
    exit 1
fi
echo "$score"
