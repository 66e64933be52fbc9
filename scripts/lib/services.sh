# Shared by scripts/run, scripts/test and .ci/run: make sure PostgreSQL and RabbitMQ answer, starting them
# when they are installed but down, and saying exactly how to get them otherwise.

pg_up() { pg_isready -q -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" 2>/dev/null; }
amqp_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

wait_for() { # what, check, seconds
  local i
  for ((i = 0; i < $3; i++)); do
    if $2; then return 0; fi
    sleep 1
  done
  echo "error: $1 did not come up within $3 s" >&2
  return 1
}

ensure_postgres() {
  pg_up && return 0
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    wait_for PostgreSQL pg_up 60
  else
    cat >&2 <<'MSG'
error: PostgreSQL is not answering on 127.0.0.1:5432 and is not installed.
  Install it with:  apt-get update && apt-get install -y postgresql
  and allow local trust logins for user postgres, or point TALLY_DATABASE_URL at a server.
MSG
    return 1
  fi
}

ensure_rabbitmq() {
  amqp_up && return 0
  if command -v rabbitmq-server >/dev/null; then
    echo "starting RabbitMQ"
    rabbitmq-server -detached || true
    wait_for RabbitMQ amqp_up 90
  else
    cat >&2 <<'MSG'
error: RabbitMQ is not answering on 127.0.0.1:5672 and is not installed.
  Install it with:  apt-get update && apt-get install -y rabbitmq-server
MSG
    return 1
  fi
}
