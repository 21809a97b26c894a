# Sourced by scripts/test.sh: TLS-only servers for the TLS tests, with a throwaway test CA.
#
# Makes, in a fresh temporary folder, a test CA, a server certificate for the name `localhost`
# only (so 127.0.0.1 is a name it does not carry: verify-full must refuse it, verify-ca accept
# it) and a client certificate for the user `certuser`. Then starts
#   - a second PostgreSQL cluster (Debian's binaries, run as the postgres user) with ssl=on and
#     a pg_hba.conf of hostssl lines only, so a plain connection is refused; `certuser` must
#     present a client certificate the CA signed, and members of `password_login` (roles a
#     test makes) a password;
#   - a second MariaDB (mariadb-install-db, mariadbd as a plain process) with that certificate
#     and require_secure_transport=ON;
#   - a second ClickHouse (Debian's clickhouse-server, 18.16 here) with that certificate on an
#     `https_port`; its plain HTTP port, on 127.0.0.1, is for set-up only and not exported.
# Exports DATALOADER_TEST_TLS_CA, DATALOADER_TEST_TLS_CLIENT_CERT, DATALOADER_TEST_TLS_CLIENT_KEY,
# DATALOADER_TEST_PG_TLS_URL, DATALOADER_TEST_MYSQL_TLS_URL and
# DATALOADER_TEST_CLICKHOUSE_TLS_URL (each only when its server
# started). Needs the caller's started_pids and started_dirs arrays and free_port and
# wait_listening (test.sh defines them); its servers are stopped by test.sh's cleanup.

tls_make_certs() { # tls_make_certs DIR
  local d=$1
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=DataLoader test CA" -keyout "$d/ca.key" -out "$d/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$d/server.key" -out "$d/server.csr" &&
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost" >"$d/server.ext" &&
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/server.ext" -out "$d/server.crt" &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=certuser" \
    -keyout "$d/client.key" -out "$d/client.csr" &&
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" >"$d/client.ext" &&
  openssl x509 -req -in "$d/client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/client.ext" -out "$d/client.crt" &&
  chmod 600 "$d"/*.key
}

# A few rows both servers hold in `tls_rows` (database dataloader_tls on PostgreSQL, test on
# MariaDB), for the loads the tests compare.
tls_rows_sql="CREATE TABLE tls_rows (id integer PRIMARY KEY, name varchar(20), amount numeric(10,2));
INSERT INTO tls_rows VALUES (1, 'one', 1.50), (2, 'two', NULL), (3, 'three', -3.25);"

tls_start_postgres() { # tls_start_postgres DIR
  local d=$1 bin pg
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/initdb" ] && id postgres >/dev/null 2>&1 || { echo "no PostgreSQL binaries or postgres user" >&2; return 1; }
  pg="$d/pg"
  mkdir -p "$pg" && cp "$d/server.crt" "$d/server.key" "$d/ca.crt" "$pg/" && chown -R postgres "$pg" || return 1
  local port; port=$(free_port 15433)
  su postgres -c "'$bin/initdb' -D '$pg/data' -A trust -U postgres" >"$pg/initdb.log" 2>&1 || { cat "$pg/initdb.log" >&2; return 1; }
  cat >>"$pg/data/postgresql.conf" <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$pg'
ssl = on
ssl_cert_file = '$pg/server.crt'
ssl_key_file = '$pg/server.key'
ssl_ca_file = '$pg/ca.crt'
EOF
  # TLS only over TCP; certuser needs a client certificate, password_login's members a
  # password; the Unix socket is for set-up.
  cat >"$pg/data/pg_hba.conf" <<EOF
local all all trust
hostssl all certuser 127.0.0.1/32 cert
hostssl all +password_login 127.0.0.1/32 scram-sha-256
hostssl all all 127.0.0.1/32 trust
EOF
  # A start that timed out may leave a postmaster behind, with no pid recorded: stop it here.
  su postgres -c "'$bin/pg_ctl' -D '$pg/data' -l '$pg/server.log' -w -t 30 start" >/dev/null || {
    cat "$pg/server.log" >&2
    su postgres -c "'$bin/pg_ctl' -D '$pg/data' -m immediate stop" >/dev/null 2>&1
    return 1
  }
  started_pids+=("$(head -n 1 "$pg/data/postmaster.pid")")
  local psql=("$bin/psql" -h "$pg" -p "$port" -U postgres -v ON_ERROR_STOP=1 -q)
  su postgres -c "$(printf '%q ' "${psql[@]}") -c 'CREATE DATABASE dataloader_tls' -c 'CREATE ROLE certuser LOGIN SUPERUSER' -c 'CREATE ROLE password_login NOLOGIN'" >/dev/null &&
  su postgres -c "$(printf '%q ' "${psql[@]}") -d dataloader_tls" <<<"$tls_rows_sql" >/dev/null || return 1
  export DATALOADER_TEST_PG_TLS_URL="postgres://postgres@localhost:$port/dataloader_tls"
}

tls_start_mariadb() { # tls_start_mariadb DIR
  local d=$1 my="$1/mariadb"
  command -v mariadb-install-db >/dev/null 2>&1 && [ -x /usr/sbin/mariadbd ] || { echo "no mariadb-install-db or mariadbd" >&2; return 1; }
  mkdir -p "$my" || return 1
  local port; port=$(free_port 13307)
  mariadb-install-db --no-defaults --user=root --datadir="$my/data" --auth-root-authentication-method=normal \
    --skip-test-db >"$my/install.log" 2>&1 || { cat "$my/install.log" >&2; return 1; }
  /usr/sbin/mariadbd --no-defaults --user=root --datadir="$my/data" --port="$port" --bind-address=127.0.0.1 \
    --socket="$my/mysqld.sock" --pid-file="$my/mysqld.pid" \
    --ssl-ca="$d/ca.crt" --ssl-cert="$d/server.crt" --ssl-key="$d/server.key" \
    --require-secure-transport=ON >"$my/server.log" 2>&1 &
  started_pids+=($!)
  wait_listening "$port" || { cat "$my/server.log" >&2; return 1; }
  mariadb --no-defaults -S "$my/mysqld.sock" -uroot -e "CREATE DATABASE test; USE test; $tls_rows_sql
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" || return 1
  export DATALOADER_TEST_MYSQL_TLS_URL="mysql://root@localhost:$port/test"
}

tls_start_clickhouse() { # tls_start_clickhouse DIR
  local d=$1 ch="$1/clickhouse"
  command -v clickhouse-server >/dev/null 2>&1 || { echo "no clickhouse-server" >&2; return 1; }
  mkdir -p "$ch" || return 1
  local https; https=$(free_port 18443)
  local http; http=$(free_port $((https + 1)))
  local tcp; tcp=$(free_port $((http + 1)))
  local inter; inter=$(free_port $((tcp + 1)))
  # No dhParamsFile: the packaged config names one in /etc that does not exist.
  clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
    --path="$ch/data/" --tmp_path="$ch/data/tmp/" --user_files_path="$ch/data/user_files/" \
    --format_schema_path="$ch/data/format_schemas/" --logger.log="$ch/server.log" \
    --logger.errorlog="$ch/err.log" --listen_host=127.0.0.1 --http_port="$http" --tcp_port="$tcp" \
    --interserver_http_port="$inter" --https_port="$https" \
    --openSSL.server.certificateFile="$d/server.crt" --openSSL.server.privateKeyFile="$d/server.key" \
    --openSSL.server.dhParamsFile= >"$ch/stdout.log" 2>&1 &
  started_pids+=($!)
  wait_listening "$https" && wait_listening "$http" || { cat "$ch/err.log" >&2; return 1; }
  local q
  for q in "CREATE TABLE tls_rows (id Int32, name Nullable(String), amount Nullable(Decimal(10, 2))) ENGINE = Log" \
    "INSERT INTO tls_rows VALUES (1, 'one', 1.50), (2, 'two', NULL), (3, 'three', -3.25)"; do
    curl -sSf "http://127.0.0.1:$http/" --data-binary "$q" >/dev/null || { cat "$ch/err.log" >&2; return 1; }
  done
  export DATALOADER_TEST_CLICKHOUSE_TLS_URL="clickhouse://default@localhost:$https/default"
}

if [ -z "${DATALOADER_TEST_PG_TLS_URL:-}${DATALOADER_TEST_MYSQL_TLS_URL:-}${DATALOADER_TEST_CLICKHOUSE_TLS_URL:-}" ] && command -v openssl >/dev/null 2>&1; then
  tls_dir=$(mktemp -d)
  started_dirs+=("$tls_dir")
  chmod 755 "$tls_dir"
  if tls_make_certs "$tls_dir" >"$tls_dir/openssl.log" 2>&1; then
    export DATALOADER_TEST_TLS_CA="$tls_dir/ca.crt" DATALOADER_TEST_TLS_CLIENT_CERT="$tls_dir/client.crt" \
      DATALOADER_TEST_TLS_CLIENT_KEY="$tls_dir/client.key"
    tls_start_postgres "$tls_dir" || echo "NOTICE: the TLS PostgreSQL cluster did not start (see above): its tests are skipped" >&2
    tls_start_mariadb "$tls_dir" || echo "NOTICE: the TLS MariaDB did not start (see above): its tests are skipped" >&2
    tls_start_clickhouse "$tls_dir" || echo "NOTICE: the HTTPS ClickHouse did not start (see above): its tests are skipped" >&2
  else
    cat "$tls_dir/openssl.log" >&2
    echo "NOTICE: making the test CA with openssl failed: the TLS tests are skipped" >&2
  fi
fi
