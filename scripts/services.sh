#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on their usual local ports, starting
# the local servers when they are installed but stopped. Says what to install otherwise.
set -uo pipefail
PG_HOST=${HERALD_PG_HOST:-127.0.0.1}; REDIS_PORT=${HERALD_REDIS_PORT:-6379}

wait_for() { # name, probe command, seconds
  for _ in $(seq 1 "$3"); do eval "$2" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}

missing=()
if ! pg_isready -q -h "$PG_HOST" 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_for postgres "pg_isready -q -h $PG_HOST" 20 || missing+=("PostgreSQL (Debian: apt-get install postgresql)")
fi
if ! redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /tmp --logfile /tmp/herald-redis.log
  fi
  wait_for redis "redis-cli -p $REDIS_PORT ping | grep -q PONG" 10 || missing+=("Redis (Debian: apt-get install redis-server)")
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  if command -v rabbitmq-server >/dev/null; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached 2>/dev/null || true
  fi
  wait_for rabbitmq "(exec 3<>/dev/tcp/127.0.0.1/5672)" 60 || missing+=("RabbitMQ (Debian: apt-get install rabbitmq-server)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "Herald needs these servers, which are neither running nor installed: ${missing[*]}." >&2
  echo "Install them, or run the whole stack in containers with 'docker compose up'." >&2
  exit 1
fi
echo "PostgreSQL, Redis and RabbitMQ answer"
