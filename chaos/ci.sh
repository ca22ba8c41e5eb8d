#!/usr/bin/env bash
# The chaos harness's short profiles, for CI (.ci/run calls this): the CI scenarios once on every
# backend, against the local servers that scripts/services.sh starts or reuses (budget: 9 minutes
# on a 2-core machine); then the multi-host bed's CI scenarios on PostgreSQL (network
# namespaces and iptables, which it installs if missing; needs root; 4 runs, budget: 6 minutes).
# `timeout` turns a hang into a failure. Exit code: 1 if either profile saw a safety violation, a
# false promotion, a missed failover or a broken run. Extra arguments go to the first profile, e.g.
# `chaos/ci.sh --seed 1234` to replay a CI run; MC_CHAOS_HOSTS_ARGS to the second.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh start
status=0
timeout --kill-after=10 540 npm run chaos -- --profile short --backend sqlite,postgres,mysql,redis,etcd "$@" || status=$?
# The bed removes its namespaces on SIGTERM too (chaos/hosts/bed.ts), and any leftovers at its next start.
# shellcheck disable=SC2086
timeout --kill-after=10 360 npx tsx chaos/run.ts --hosts --profile short --backend postgres ${MC_CHAOS_HOSTS_ARGS:-} || status=$?
exit "$status"
