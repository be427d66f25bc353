#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ answer on their usual local ports.
# - A server installed but stopped is started.
# - A server not installed is installed first, when this is Debian or Ubuntu and this user
#   is root or has passwordless sudo (non-interactively, saying so in one line); then the
#   PostgreSQL role Herald uses is created, allowed in without a password on loopback.
# - Elsewhere it prints the one command to run, and fails.
set -uo pipefail
PG_HOST=${HERALD_PG_HOST:-127.0.0.1}; PG_PORT=${HERALD_PG_PORT:-5432}
REDIS_PORT=${HERALD_REDIS_PORT:-6379}; AMQP_PORT=${HERALD_AMQP_PORT:-5672}
# The role in HERALD_POSTGRES_URL (postgresql://ROLE[:password]@host:port).
PG_URL=${HERALD_POSTGRES_URL:-postgresql://root@127.0.0.1:5432}
PG_ROLE=${PG_URL#*://}; PG_ROLE=${PG_ROLE%%@*}; PG_ROLE=${PG_ROLE%%:*}

wait_for() { # probe command, seconds
  for _ in $(seq 1 "$2"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 1; done
  return 1
}
tcp_up() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
# The servers' own probes when their clients are installed, a TCP connection otherwise.
pg_up() {
  if command -v pg_isready >/dev/null; then pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; else tcp_up "$PG_HOST" "$PG_PORT"; fi
}
redis_up() {
  if command -v redis-cli >/dev/null; then redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; else tcp_up 127.0.0.1 "$REDIS_PORT"; fi
}
amqp_up() { tcp_up 127.0.0.1 "$AMQP_PORT"; }

# What is missing: servers that neither answer nor are installed, as Debian packages.
packages=()
pg_up || command -v pg_ctlcluster >/dev/null || packages+=(postgresql)
redis_up || command -v redis-server >/dev/null || packages+=(redis-server)
amqp_up || command -v rabbitmq-server >/dev/null || packages+=(rabbitmq-server)

SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=(sudo); fi
can_install() {
  command -v apt-get >/dev/null && [ -f /etc/debian_version ] && { [ "$(id -u)" = 0 ] || [ ${#SUDO[@]} -gt 0 ]; }
}
if [ ${#packages[@]} -gt 0 ]; then
  if ! can_install; then
    echo "Herald needs PostgreSQL, Redis and RabbitMQ; not installed here: ${packages[*]}. Run:" >&2
    if command -v apt-get >/dev/null; then
      echo "  sudo apt-get install -y ${packages[*]}" >&2
    else
      echo "  (Debian names) apt-get install -y ${packages[*]}  - or 'docker compose up' for the whole stack" >&2
    fi
    exit 1
  fi
  echo "installing ${packages[*]} (Debian packages: first run on this machine)"
  install=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${packages[@]}")
  "${install[@]}" >/dev/null 2>&1 || { "${SUDO[@]}" apt-get update -q >/dev/null && "${install[@]}" >/dev/null; } \
    || { echo "installing ${packages[*]} failed (apt-get install -y ${packages[*]} says why)" >&2; exit 1; }
fi

missing=()
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    "${SUDO[@]}" pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  wait_for pg_up "${HERALD_SERVICES_WAIT_SECONDS:-20}" || missing+=("PostgreSQL")
fi
if ! redis_up; then
  if command -v redis-server >/dev/null; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /tmp --logfile /tmp/herald-redis.log
  fi
  wait_for redis_up "${HERALD_SERVICES_WAIT_SECONDS:-10}" || missing+=("Redis")
fi
if ! amqp_up; then
  if command -v rabbitmq-server >/dev/null; then
    echo "starting RabbitMQ"
    "${SUDO[@]}" rabbitmq-server -detached 2>/dev/null || true
  fi
  wait_for amqp_up "${HERALD_SERVICES_WAIT_SECONDS:-60}" || missing+=("RabbitMQ")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "these servers do not answer: ${missing[*]} (ports $PG_PORT, $REDIS_PORT, $AMQP_PORT)." >&2
  echo "Start them, or run the whole stack in containers with 'docker compose up'." >&2
  exit 1
fi

# A local cluster without Herald's role (as on a fresh install): create the role, trusted
# on loopback as the README's requirements ask. A role that exists is left as it is.
if [[ "$PG_HOST" =~ ^(127\.0\.0\.1|localhost)$ ]] && command -v pg_ctlcluster >/dev/null \
  && { [ "$(id -u)" = 0 ] || [ ${#SUDO[@]} -gt 0 ]; } \
  && ! psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_ROLE" -d postgres -Atqc "SELECT 1" >/dev/null 2>&1; then
  as_postgres=("${SUDO[@]}" runuser -u postgres --)
  if [ -z "$("${as_postgres[@]}" psql -p "$PG_PORT" -Atqc "SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE'")" ]; then
    echo "creating PostgreSQL role $PG_ROLE (trusted on 127.0.0.1)"
    "${as_postgres[@]}" psql -p "$PG_PORT" -qc "CREATE ROLE \"$PG_ROLE\" SUPERUSER LOGIN" || exit 1
    hba=$("${as_postgres[@]}" psql -p "$PG_PORT" -Atqc "SHOW hba_file")
    "${SUDO[@]}" sed -i "1i host all $PG_ROLE 127.0.0.1/32 trust" "$hba" || exit 1
    "${as_postgres[@]}" psql -p "$PG_PORT" -Atqc "SELECT pg_reload_conf()" >/dev/null || exit 1
  fi
fi
echo "PostgreSQL, Redis and RabbitMQ answer"
