#!/usr/bin/env bash
# Refuses to start Herald when one of its ports already answers. Every Herald server binds
# with SO_REUSEPORT (so that `make up GATEWAYS=N` can share the gateway's ports), which
# would let a second `make up` start beside a running one and share its ports silently:
# requests would go to either copy. Ports come from the same variables the services read
# (the environment, then `.env`), with the same defaults.
set -uo pipefail

if [ -f .env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./.env
  set +a
fi

declare -A ports=(
  [HERALD_GATEWAY_HTTP_PORT]=8000
  [HERALD_GATEWAY_GRPC_PORT]=50050
  [HERALD_USERD_GRPC_PORT]=50051
  [HERALD_TEMPLATED_GRPC_PORT]=50052
  [HERALD_DELIVERYD_EMAIL_GRPC_PORT]=50053
  [HERALD_DELIVERYD_SMS_GRPC_PORT]=50054
  [HERALD_DELIVERYD_PUSH_GRPC_PORT]=50055
  [HERALD_USERD_METRICS_PORT]=9101
  [HERALD_TEMPLATED_METRICS_PORT]=9102
  [HERALD_DELIVERYD_EMAIL_METRICS_PORT]=9103
  [HERALD_DELIVERYD_SMS_METRICS_PORT]=9104
  [HERALD_DELIVERYD_PUSH_METRICS_PORT]=9105
)
host=${HERALD_HOST:-127.0.0.1}
[ "$host" = "0.0.0.0" ] && host=127.0.0.1

taken=()
for name in $(printf '%s\n' "${!ports[@]}" | sort); do
  port=${!name:-${ports[$name]}}
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    taken+=("$port ($name)")
  fi
done
if [ ${#taken[@]} -gt 0 ]; then
  echo "Herald's ports are in use: ${taken[*]}." >&2
  echo "Is Herald already running (another 'make up')? Stop it, or set those variables to free ports." >&2
  exit 1
fi
