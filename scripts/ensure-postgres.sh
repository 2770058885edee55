#!/usr/bin/env bash
# Make sure the PostgreSQL the tests use is up: start the local cluster when it is installed but down.
set -u
host=${HARVESTER_TEST_PG_HOST:-127.0.0.1}
port=${HARVESTER_TEST_PG_PORT:-5432}

up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port"
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

if up; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    echo "starting PostgreSQL $version (cluster main)"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do up && exit 0; sleep 1; done
fi
if [ "${HARVESTER_REQUIRE_POSTGRES:-0}" = "1" ]; then
  echo "PostgreSQL is required (HARVESTER_REQUIRE_POSTGRES=1) but not reachable on $host:$port" >&2
  exit 1
fi
echo "PostgreSQL not reachable on $host:$port: its tests will be skipped" >&2
exit 0
