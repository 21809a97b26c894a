#!/usr/bin/env bash
# The whole test suite, with its set-up: checks formatting and lints, starts the PostgreSQL the
# tests need if it is installed but stopped, and runs every test with nextest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/env.sh

if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi

# PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres): the source and control-plane tests use it.
pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
  fi
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
  pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432; the tests need it (see TEST-SERVERS.md)" >&2; exit 1; }
fi

# MariaDB on 127.0.0.1:3306 (root, no password): the MySQL connector's tests use it.
my_up() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }
if ! my_up; then
  if [ -x /usr/sbin/mariadbd ]; then
    echo "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  for _ in $(seq 1 100); do my_up && break; sleep 0.2; done
  my_up || { echo "MariaDB is not reachable on 127.0.0.1:3306; the tests need it (see TEST-SERVERS.md)" >&2; exit 1; }
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# One arrow in the build: a second one means a dependency drifted (see STYLE.md).
arrows=$(cargo tree --workspace -e normal --prefix none | grep -E '^arrow v' | sed 's/ (\*)$//' | sort -u)
if [ "$(printf '%s\n' "$arrows" | wc -l)" -ne 1 ]; then
  echo "more than one arrow version in the build:" >&2
  printf '%s\n' "$arrows" >&2
  exit 1
fi

cargo nextest run --workspace --no-fail-fast "$@"
