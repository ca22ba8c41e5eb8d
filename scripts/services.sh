#!/usr/bin/env bash
# Starts (or reuses) the servers that the test suite talks to: PostgreSQL, MariaDB and Redis, which
# this machine kind normally runs already, and etcd, which it does not; and the openssl CLI the TLS
# tests make certificates with. Idempotent.
#   bash scripts/services.sh start   # install etcd if missing, start whatever is not answering
#   MC_SKIP_SERVICES=1               # do nothing (for a machine where the servers are managed elsewhere)
set -euo pipefail

ETCD_ENDPOINT=${MC_ETCD_HOST:-127.0.0.1}:${MC_ETCD_PORT:-2379}
ETCD_DATA=${MC_ETCD_DATA:-/tmp/multiconnect-etcd}

log() { echo "services: $*" >&2; }

wait_for() { # name, seconds, command...
  local name=$1 seconds=$2; shift 2
  for _ in $(seq 1 $((seconds * 10))); do
    if "$@" >/dev/null 2>&1; then log "$name is up"; return 0; fi
    sleep 0.1
  done
  log "$name did not come up within ${seconds}s"; return 1
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

start_postgres() {
  port_open 127.0.0.1 5432 && { log "postgres already running"; return 0; }
  command -v pg_ctlcluster >/dev/null || { log "PostgreSQL is not installed (expected on this machine kind)"; return 1; }
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for postgres 30 port_open 127.0.0.1 5432
}

start_mariadb() {
  port_open 127.0.0.1 3306 && { log "mariadb already running"; return 0; }
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || { log "MariaDB is not installed"; return 1; }
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for mariadb 30 port_open 127.0.0.1 3306
}

start_redis() {
  port_open 127.0.0.1 6379 && { log "redis already running"; return 0; }
  command -v redis-server >/dev/null || { log "Redis is not installed"; return 1; }
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for redis 15 port_open 127.0.0.1 6379
}

start_etcd() {
  port_open "${ETCD_ENDPOINT%:*}" "${ETCD_ENDPOINT#*:}" && { log "etcd already running"; return 0; }
  if ! command -v etcd >/dev/null; then
    log "installing Debian's etcd-server"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server) >/dev/null
  fi
  mkdir -p "$ETCD_DATA"
  nohup etcd --name multiconnect-test --data-dir "$ETCD_DATA" \
    --listen-client-urls "http://$ETCD_ENDPOINT" --advertise-client-urls "http://$ETCD_ENDPOINT" \
    --listen-peer-urls http://127.0.0.1:2380 >"$ETCD_DATA.log" 2>&1 &
  wait_for etcd 30 port_open "${ETCD_ENDPOINT%:*}" "${ETCD_ENDPOINT#*:}"
}

# The TLS tests make their certificates with the openssl CLI.
need_openssl() {
  command -v openssl >/dev/null && return 0
  log "installing Debian's openssl"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl) >/dev/null
}

case "${1:-start}" in
  start)
    if [ "${MC_SKIP_SERVICES:-}" = 1 ]; then log "MC_SKIP_SERVICES=1: not starting anything"; exit 0; fi
    need_openssl
    start_postgres
    start_mariadb
    start_redis
    start_etcd
    ;;
  *) echo "usage: $0 start" >&2; exit 2 ;;
esac
