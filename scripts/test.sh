#!/usr/bin/env bash
# The whole test suite, with its set-up: starts the servers the tests need (docs/testing.md),
# checks formatting and lints, and runs every test with nextest, then the Dagster tests.
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
  pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432; the tests need it (see docs/testing.md)" >&2; exit 1; }
fi

# MariaDB on 127.0.0.1:3306 (root, no password): the MySQL connector's tests use it.
my_up() { (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null; }
if ! my_up; then
  if [ -x /usr/sbin/mariadbd ]; then
    echo "starting MariaDB"
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  for _ in $(seq 1 100); do my_up && break; sleep 0.2; done
  my_up || { echo "MariaDB is not reachable on 127.0.0.1:3306; the tests need it (see docs/testing.md)" >&2; exit 1; }
fi

# Servers started here are stopped, and their folders removed, when the tests end.
started_pids=()
started_dirs=()
cleanup() {
  for pid in "${started_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Some write to their folder while they stop (Azurite does): wait for them, up to 10 s each.
  for pid in "${started_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  done
  for dir in "${started_dirs[@]}"; do rm -rf "$dir"; done
}
trap cleanup EXIT
port_free() { ! (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
free_port() { local p=$1; while ! port_free "$p"; do p=$((p + 1)); done; echo "$p"; }
wait_listening() { for _ in $(seq 1 150); do port_free "$1" || return 0; sleep 0.2; done; return 1; }

# Debian's chromium and chromedriver for the console's browser test (installed if missing). Its
# screenshots of the main pages go to a folder kept after the run, printed at the end.
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver"
  { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "NOTICE: installing chromium failed" >&2
fi
export DATALOADER_TEST_SCREENSHOTS="${DATALOADER_TEST_SCREENSHOTS:-$CARGO_TARGET_DIR/console-screenshots}"

# ClickHouse for the ClickHouse connector's tests: Debian's package (installed if missing),
# started as a plain process with its data in a temporary folder.
if [ -z "${DATALOADER_TEST_CLICKHOUSE:-}" ]; then
  if ! command -v clickhouse-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing clickhouse-server"
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client >/dev/null; } \
      || echo "NOTICE: installing clickhouse-server failed" >&2
  fi
  if command -v clickhouse-server >/dev/null 2>&1; then
    ch_http=18123
    while ! { port_free $ch_http && port_free $((ch_http + 1000)) && port_free $((ch_http + 2000)); }; do ch_http=$((ch_http + 1)); done
    ch_dir=$(mktemp -d)
    started_dirs+=("$ch_dir")
    clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
      --path="$ch_dir/data/" --tmp_path="$ch_dir/data/tmp/" --user_files_path="$ch_dir/data/user_files/" \
      --format_schema_path="$ch_dir/data/format_schemas/" --logger.log="$ch_dir/server.log" \
      --logger.errorlog="$ch_dir/err.log" --http_port=$ch_http --tcp_port=$((ch_http + 1000)) \
      --interserver_http_port=$((ch_http + 2000)) >"$ch_dir/stdout.log" 2>&1 &
    started_pids+=($!)
    wait_listening $ch_http || { echo "ClickHouse did not start; see $ch_dir/err.log" >&2; exit 1; }
    export DATALOADER_TEST_CLICKHOUSE=127.0.0.1:$ch_http
  else
    echo "NOTICE: ClickHouse is not installed and cannot be installed here: its tests are skipped" >&2
  fi
fi

# TLS-only PostgreSQL and MariaDB with a throwaway test CA, for the TLS tests.
. scripts/tls-servers.sh

# Python emulators from PyPI, each in a virtualenv kept under ~/.cache: "venv NAME PACKAGES…"
# prints the virtualenv's folder, or nothing when it cannot be installed.
venvs="$HOME/.cache/dataloader-venvs"
venv() {
  local dir="$venvs/$1"; shift
  # .installed records the package list, so a changed list rebuilds the virtualenv.
  if [ "$(cat "$dir/.installed" 2>/dev/null)" != "$*" ]; then
    echo "installing $* into $dir" >&2
    rm -rf "$dir"
    { python3 -m venv "$dir" && "$dir/bin/pip" install -q "$@" && echo "$*" >"$dir/.installed"; } >/dev/null 2>&1 || return 0
  fi
  echo "$dir"
}

# An S3 server (moto) for the object-store lake test.
if [ -z "${DATALOADER_TEST_S3_BUCKET:-}" ]; then
  moto=$(venv moto 'moto[s3,server]')
  if [ -n "$moto" ]; then
    s3_port=$(free_port 15000)
    "$moto/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >/dev/null 2>&1 &
    started_pids+=($!)
    wait_listening "$s3_port" || true
    export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=test \
      AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    if python3 -c "import urllib.request as u; u.urlopen(u.Request('$AWS_ENDPOINT_URL/dataloader-test', method='PUT'))" 2>/dev/null; then
      export DATALOADER_TEST_S3_BUCKET=dataloader-test
      # The same moto serves Secrets Manager, for the aws-sm:// references.
      if "$moto/bin/python" -c "import boto3; boto3.client('secretsmanager', endpoint_url='$AWS_ENDPOINT_URL', region_name='us-east-1').list_secrets()" >/dev/null 2>&1; then
        export DATALOADER_TEST_SECRETS_MANAGER=moto
      else
        echo "NOTICE: moto does not answer Secrets Manager calls: the aws-sm tests are skipped" >&2
      fi
    else
      echo "NOTICE: moto did not start: the S3 test is skipped" >&2
    fi
  else
    echo "NOTICE: installing moto failed: the S3 test is skipped" >&2
  fi
fi

# Azure Blob Storage (Azurite's blob service, from npm, kept under ~/.cache) for the Azure lake
# tests. object_store must know it talks to the emulator (AZURE_STORAGE_USE_EMULATOR: account
# devstoreaccount1 and its well-known key, at AZURITE_BLOB_STORAGE_URL): Azurite ignores the
# startFrom of a listing, so as a plain endpoint (AZURE_STORAGE_ENDPOINT) a Delta log of two
# commits is mis-read. Only Azure URLs read AZURE_*, and only these tests use one.
# --disableTelemetry: without it Azurite tries to reach Application Insights.
if [ -z "${DATALOADER_TEST_AZURE_CONTAINER:-}" ]; then
  azurite_dir="$HOME/.cache/dataloader-azurite"
  azurite_pkg=azurite@3.35.0
  if [ "$(cat "$azurite_dir/.installed" 2>/dev/null)" != "$azurite_pkg" ] && command -v npm >/dev/null 2>&1; then
    echo "installing $azurite_pkg into $azurite_dir" >&2
    rm -rf "$azurite_dir"
    { mkdir -p "$azurite_dir" && (cd "$azurite_dir" && npm install --silent --no-audit --no-fund --save-exact "$azurite_pkg") \
      && echo "$azurite_pkg" >"$azurite_dir/.installed"; } >/dev/null 2>&1 || true
  fi
  if [ "$(cat "$azurite_dir/.installed" 2>/dev/null)" = "$azurite_pkg" ]; then
    az_dir=$(mktemp -d)
    started_dirs+=("$az_dir")
    az_port=$(free_port 10000)
    # A plain command, so that $! is Azurite's node process.
    "$azurite_dir/node_modules/.bin/azurite-blob" --silent --disableTelemetry --location "$az_dir/data" \
      --blobHost 127.0.0.1 --blobPort "$az_port" --skipApiVersionCheck --loose >"$az_dir/azurite.log" 2>&1 &
    started_pids+=($!)
    wait_listening "$az_port" || true
    # Creates the container with a SharedKey-signed request (curl and openssl only); 201 = created.
    az_account=devstoreaccount1
    az_key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
    az_container=dataloader-test
    az_date=$(LC_ALL=C TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')
    az_signed="PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:$az_date\nx-ms-version:2021-08-06\n/$az_account/$az_account/$az_container\nrestype:container"
    az_hexkey=$(printf %s "$az_key" | base64 -d | od -An -v -tx1 | tr -d ' \n')
    az_sig=$(printf "$az_signed" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$az_hexkey" -binary | base64 -w0)
    az_status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "x-ms-date: $az_date" -H "x-ms-version: 2021-08-06" \
      -H "Content-Length: 0" -H "Authorization: SharedKey $az_account:$az_sig" \
      "http://127.0.0.1:$az_port/$az_account/$az_container?restype=container" 2>/dev/null || true)
    if [ "$az_status" = 201 ]; then
      export AZURE_STORAGE_USE_EMULATOR=true AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:$az_port
      export DATALOADER_TEST_AZURE_CONTAINER=$az_container
    else
      echo "NOTICE: Azurite did not start (creating the container answered '${az_status}'; see below): the Azure lake tests are skipped" >&2
      cat "$az_dir/azurite.log" >&2
    fi
  else
    echo "NOTICE: installing $azurite_pkg with npm failed: the Azure lake tests are skipped" >&2
  fi
fi

# Unity Catalog and Databricks' SQL Statement API, emulated by minilake on DuckDB, for the
# catalog tests. DuckDB cannot download its delta and azure extensions here: the PyPI wheels'
# copies are put where minilake looks (azure reads tables on Azurite, whose address minilake
# takes from AZURITE_BLOB_STORAGE_URL, exported above). Run in its own folder, where it may
# leave stray folders.
if [ -z "${DATALOADER_TEST_UNITY_URL:-}" ]; then
  minilake=$(venv minilake 'minilake==1.9.0' 'duckdb==1.5.5' 'duckdb-extension-delta==1.5.5' 'duckdb-extension-azure==1.5.5')
  if [ -n "$minilake" ]; then
    ml_dir=$(mktemp -d)
    started_dirs+=("$ml_dir")
    mkdir -p "$ml_dir/ext/v1.5.5/linux_amd64"
    for ext in delta azure; do
      ml_ext=$("$minilake/bin/python" -c "import duckdb_extension_$ext, os; print(os.path.dirname(duckdb_extension_$ext.__file__))")
      cp "$ml_ext/extensions/v1.5.5/$ext.duckdb_extension" "$ml_dir/ext/v1.5.5/linux_amd64/"
    done
    ml_port=$(free_port 16100)
    (cd "$ml_dir" && MINILAKE_DATA_DIR="$ml_dir/data" MINILAKE_DUCKDB_EXTENSION_DIR="$ml_dir/ext" \
      MINILAKE_NOTEBOOK=0 MINILAKE_SERVICES=unity_catalog,sql_statements,sql_warehouses \
      exec "$minilake/bin/minilake" --host 127.0.0.1 --port "$ml_port") >"$ml_dir/minilake.log" 2>&1 &
    started_pids+=($!)
    ml_ready() { python3 -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$ml_port/_minilake/ready')" 2>/dev/null; }
    for _ in $(seq 1 150); do ml_ready && break; sleep 0.2; done
    if ml_ready; then
      export DATALOADER_TEST_UNITY_URL=http://127.0.0.1:$ml_port
    else
      echo "NOTICE: minilake did not start (see below): the Unity Catalog tests are skipped" >&2
      cat "$ml_dir/minilake.log" >&2
    fi
  else
    echo "NOTICE: installing minilake failed: the Unity Catalog tests are skipped" >&2
  fi
fi

# A current ClickHouse engine (chdb, the engine as a library) behind ClickHouse's HTTP interface,
# through scripts/chdb_http.py: the connector's ArrowStream path, which 18.16 cannot exercise.
if [ -z "${DATALOADER_TEST_CLICKHOUSE_MODERN:-}" ]; then
  chdb=$(venv chdb 'chdb==4.4.0')
  if [ -n "$chdb" ]; then
    chdb_port=$(free_port 18300)
    chdb_log=$(mktemp)
    started_dirs+=("$chdb_log")
    "$chdb/bin/python" scripts/chdb_http.py --port "$chdb_port" >"$chdb_log" 2>&1 &
    started_pids+=($!)
    if wait_listening "$chdb_port"; then
      export DATALOADER_TEST_CLICKHOUSE_MODERN=127.0.0.1:$chdb_port
    else
      echo "NOTICE: the chdb ClickHouse did not start (see below): its ClickHouse tests are skipped" >&2
      cat "$chdb_log" >&2
    fi
  else
    echo "NOTICE: installing chdb failed: the current-ClickHouse tests are skipped" >&2
  fi
fi

# The Snowflake REST API, emulated by fakesnow (snowflake-connector-python 5 breaks fakesnow 0.12),
# through the adapter in scripts/fakesnow_server.py; results past 1000 rows come in chunks.
if [ -z "${DATALOADER_TEST_SNOWFLAKE:-}" ]; then
  fakesnow=$(venv fakesnow 'fakesnow[server]==0.12.1' 'snowflake-connector-python<5')
  if [ -n "$fakesnow" ]; then
    sf_port=$(free_port 18765)
    sf_log=$(mktemp)
    started_dirs+=("$sf_log")
    "$fakesnow/bin/python" scripts/fakesnow_server.py --port "$sf_port" --chunk-rows 1000 >"$sf_log" 2>&1 &
    started_pids+=($!)
    if wait_listening "$sf_port"; then
      export DATALOADER_TEST_SNOWFLAKE=http://127.0.0.1:$sf_port
    else
      echo "NOTICE: fakesnow did not start (see below): the Snowflake tests are skipped" >&2
      cat "$sf_log" >&2
    fi
  else
    echo "NOTICE: installing fakesnow failed: the Snowflake tests are skipped" >&2
  fi
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

# One arrow in the build: a second one means a dependency drifted (see docs/testing.md).
arrows=$(cargo tree --workspace -e normal --prefix none | grep -E '^arrow v' | sed 's/ (\*)$//' | sort -u)
if [ "$(printf '%s\n' "$arrows" | wc -l)" -ne 1 ]; then
  echo "more than one arrow version in the build:" >&2
  printf '%s\n' "$arrows" >&2
  exit 1
fi

# The Dagster integration's own tests need a real Dagster from PyPI; they run after the Rust
# tests, against the dataloader binary those built. A failure in either fails the suite.
dagster_venv=$(venv dagster 'dagster==1.13.28' 'dagster-webserver==1.13.28' 'deltalake==1.6.6' 'pyarrow==22.*' 'psycopg[binary]==3.2.*' \
  'pymysql==1.1.*' 'pytest==8.*' 'setuptools==80.*')

# A suite whose server is missing returns early and nextest counts it passed, so say here which
# server suites run and which are skipped. Under CI=true a server this script is meant to start
# and did not is a failure, not a quieter suite.
suites_ran=() suites_skipped=() suites_missing=()
suite() { # suite NAME STARTED(yes/no) STARTED_HERE(yes/no)
  if [ "$2" = yes ]; then suites_ran+=("$1")
  else
    suites_skipped+=("$1")
    if [ "$3" = yes ]; then suites_missing+=("$1"); fi
  fi
}
has() { [ -n "${!1:-}" ] && echo yes || echo no; }
suite "ClickHouse 18 (clickhouse-server)" "$(has DATALOADER_TEST_CLICKHOUSE)" yes
suite "current ClickHouse (chdb)" "$(has DATALOADER_TEST_CLICKHOUSE_MODERN)" yes
suite "Snowflake (fakesnow)" "$(has DATALOADER_TEST_SNOWFLAKE)" yes
suite "S3 lake (moto)" "$(has DATALOADER_TEST_S3_BUCKET)" yes
suite "AWS Secrets Manager (moto)" "$(has DATALOADER_TEST_SECRETS_MANAGER)" yes
suite "Azure lake (Azurite)" "$(has DATALOADER_TEST_AZURE_CONTAINER)" yes
suite "Unity Catalog (minilake)" "$(has DATALOADER_TEST_UNITY_URL)" yes
suite "PostgreSQL with TLS (second cluster, test CA)" "$(has DATALOADER_TEST_PG_TLS_URL)" yes
suite "MariaDB with TLS (second mariadbd, test CA)" "$(has DATALOADER_TEST_MYSQL_TLS_URL)" yes
suite "ClickHouse 18 over HTTPS (second clickhouse-server, test CA)" "$(has DATALOADER_TEST_CLICKHOUSE_TLS_URL)" yes
suite "Dagster integration" "$([ -n "$dagster_venv" ] && echo yes || echo no)" yes
suite "console in Chromium (headless, chromedriver)" "$([ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && echo yes || echo no)" yes
suite "SQL Server (set DATALOADER_TEST_MSSQL_URL)" "$(has DATALOADER_TEST_MSSQL_URL)" no
suite "Oracle (set DATALOADER_TEST_ORACLE_URL)" "$(has DATALOADER_TEST_ORACLE_URL)" no
suite "Databricks (set DATALOADER_TEST_DATABRICKS_HOST and the rest, docs/testing.md)" "$(has DATALOADER_TEST_DATABRICKS_HOST)" no
joined() { local out="" item; for item in "$@"; do out+="${out:+; }$item"; done; echo "$out"; }
print_suites() {
  echo "server suites run: $(joined PostgreSQL MariaDB "${suites_ran[@]}")"
  if [ ${#suites_skipped[@]} -gt 0 ]; then
    echo "server suites SKIPPED (their tests pass without running): $(joined "${suites_skipped[@]}")"
  fi
}
print_suites
if [ "${CI:-}" = true ] && [ ${#suites_missing[@]} -gt 0 ]; then
  echo "CI=true: these servers should have started and did not: $(joined "${suites_missing[@]}")" >&2
  exit 1
fi

rust_status=0
cargo nextest run --workspace --no-fail-fast "$@" || rust_status=$?

if [ -n "$dagster_venv" ]; then
  cargo build --quiet -p dataloader-cli
  "$dagster_venv/bin/pip" install -q --no-deps --no-build-isolation -e integrations/dagster
  echo "Dagster integration tests (dagster $("$dagster_venv/bin/python" -c 'import dagster; print(dagster.__version__)'))"
  DATALOADER_BIN="$CARGO_TARGET_DIR/debug/dataloader" PYTHONDONTWRITEBYTECODE=1 \
    "$dagster_venv/bin/python" -m pytest -q -p no:cacheprovider integrations/dagster/tests
else
  echo "NOTICE: installing Dagster failed: the Dagster integration tests are skipped" >&2
fi
print_suites
echo "console screenshots: $DATALOADER_TEST_SCREENSHOTS"
exit "$rust_status"
