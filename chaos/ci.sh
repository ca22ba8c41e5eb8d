#!/usr/bin/env bash
# The chaos harness's short profile, for CI (.ci/run calls this): the CI scenarios once on every
# backend, against the local servers that scripts/services.sh starts or reuses. Budget: 9 minutes on
# a 2-core machine; `timeout` turns a hang into a failure. Exit code: npm run chaos's (1 on any
# safety violation, false promotion, missed failover or broken run). Extra arguments are passed on,
# e.g. `chaos/ci.sh --seed 1234` to replay a CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh start
exec timeout --kill-after=10 540 npm run chaos -- --profile short --backend sqlite,postgres,mysql,redis,etcd "$@"
