#!/usr/bin/env bash
# DataLoader against the PostgreSQL export limit and the fastest Python path (connectorx +
# deltalake), on one table of the shape docs/performance.md describes, in one run: full loads
# alternating with the COPY limit and the peer, then merges of 1 % spread and 1 % clustered
# updates. Prints wall, rows/s, MB/s (of the table's heap), peak RSS and the ratios. Not a test.
#
# Usage: bench/run.sh [ROWS] [ROUNDS]     (defaults: 5000000 rows, 2 rounds; best round shown)
set -euo pipefail
rows=${1:-5000000}
rounds=${2:-2}
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
. scripts/env.sh

pg="psql -h 127.0.0.1 -U postgres -qAt -v ON_ERROR_STOP=1"
db=dl_bench
url="postgresql://postgres@127.0.0.1:5432/$db"

echo "building dataloader (release)" >&2
cargo build --release -q -p dataloader-cli
bin="$CARGO_TARGET_DIR/release/dataloader"

venv="$HOME/.cache/dataloader-venvs/bench"
if [ ! -f "$venv/.installed" ]; then
  echo "installing connectorx, deltalake, pyarrow into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv" && "$venv/bin/pip" install -q connectorx deltalake pyarrow && touch "$venv/.installed"
fi
py="$venv/bin/python"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "creating $rows rows in $db.bench" >&2
$pg -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
$pg -d $db <<SQL
CREATE TABLE bench (
  id bigint PRIMARY KEY, customer_id int, status text, amount numeric(12,2), price float8,
  note text, created_at timestamptz, updated_at timestamp, is_active bool, payload uuid);
INSERT INTO bench
SELECT g, ((g * 7919) % 100000)::int, (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4],
       ((g * 37) % 1000000) / 100.0, (g % 9973) * 1.37,
       CASE WHEN g % 20 < 3 THEN NULL ELSE 'note for order ' || g END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second',
       timestamp '2024-01-01 00:00:00' + g * interval '1 second', g % 3 <> 0,
       md5(g::text)::uuid
FROM generate_series(1::bigint, $rows) g;
-- An incremental column is indexed, as it would be in production; both the peer's change
-- query and DataLoader's watermark probes use the index.
CREATE INDEX ON bench (updated_at);
VACUUM ANALYZE bench;
SQL
heap_mb=$($pg -d $db -c "SELECT pg_relation_size('bench') / 1048576.0")

dl=("$bin" --control-db "sqlite://$work/control.db" --lake-root "$work/lake")
dl() { "${dl[@]}" "$@"; }
dl init >/dev/null
dl connection add pg --type postgresql --host 127.0.0.1 --port 5432 --database $db --user postgres >/dev/null
dl table add --connection pg --source public.bench --dest bronze.bench.full >/dev/null
dl table add --connection pg --source public.bench --dest bronze.bench.snappy --compression snappy >/dev/null
dl table add --connection pg --source public.bench --dest bronze.bench.parallel --primary-key id --parallelism 2 >/dev/null
dl table add --connection pg --source public.bench --dest bronze.bench.incr --strategy incremental \
  --primary-key id --incremental-column updated_at >/dev/null

# measure NAME CMD…: runs it, keeps the fastest wall and the largest peak RSS of the rounds.
declare -A wall rss
measure() {
  local name=$1; shift
  "$py" bench/measure.py "$work/m" -- "$@" 2>>"$work/log"
  read -r w r <"$work/m"
  if [ -z "${wall[$name]:-}" ] || awk "BEGIN{exit !($w < ${wall[$name]})}"; then wall[$name]=$w; fi
  if [ -z "${rss[$name]:-}" ] || [ "$r" -gt "${rss[$name]}" ]; then rss[$name]=$r; fi
}

for round in $(seq 1 "$rounds"); do
  echo "round $round of $rounds: full loads" >&2
  measure copy bash -c "$pg -d $db -c 'COPY (SELECT * FROM bench) TO STDOUT (FORMAT binary)' >/dev/null"
  measure dataloader_full "${dl[@]}" load bronze.bench.full
  measure dataloader_full_snappy "${dl[@]}" load bronze.bench.snappy
  measure dataloader_full_parallel "${dl[@]}" load bronze.bench.parallel
  measure peer_full "$py" bench/peer.py full "$url" "$work/peer_full"
done

echo "merges" >&2
dl load bronze.bench.incr >/dev/null
"$py" bench/peer.py full "$url" "$work/peer_incr"
for kind in spread clustered; do
  watermark=$($pg -d $db -c "SELECT max(updated_at) FROM bench")
  # Each change set's timestamps lie after everything before it, as real updates do.
  if [ $kind = spread ]; then where="id % 100 = 0"; at=2030; else where="id > $rows - $rows / 100"; at=2031; fi
  $pg -d $db -c "UPDATE bench SET amount = amount + 1, updated_at = timestamp '$at-01-01' + id * interval '1 microsecond' WHERE $where"
  measure "dataloader_merge_$kind" "${dl[@]}" load bronze.bench.incr
  measure "peer_merge_$kind" "$py" bench/peer.py merge "$url" "$work/peer_incr" "$watermark"
done

row() {
  local name=$1 n=$2 base=${3:-}
  local w=${wall[$name]} r=${rss[$name]}
  local ratio=""
  [ -n "$base" ] && ratio=$(awk "BEGIN{printf \"%.2f\", $w / ${wall[$base]}}")
  awk -v n="$name" -v w="$w" -v rows="$n" -v mb="$heap_mb" -v r="$r" -v ratio="$ratio" -v base="$base" \
    'BEGIN{printf "%-26s %8.2f s %12.0f rows/s %9.1f MB/s %8.0f MiB  %s\n", n, w, rows / w, mb / w, r / 1048576, (ratio == "" ? "" : ratio "x " base)}'
}
changed=$((rows / 100))
echo
echo "bench: $rows rows, heap $(printf '%.0f' "$heap_mb") MB, best of $rounds rounds ($(nproc) cores)"
printf '%-26s %10s %19s %14s %12s  %s\n' path wall throughput heap-rate "peak RSS" ratio
row copy "$rows"
row dataloader_full "$rows" copy
row peer_full "$rows" copy
row dataloader_full "$rows" peer_full
row dataloader_full_snappy "$rows" dataloader_full
row dataloader_full_parallel "$rows" dataloader_full
# The current version's data files (older versions' files stay until a vacuum).
table_size() {
  "$py" -c 'import sys; from deltalake import DeltaTable
a = DeltaTable(sys.argv[1]).get_add_actions(flatten=True)
size = sum(a.column("size_bytes").to_pylist()) / 1048576
print(f"{size:.0f} MiB in {a.num_rows} files")' "$1"
}
echo "bronze.bench.full (zstd): $(table_size "$work/lake/bronze/bench/full")"
echo "bronze.bench.snappy: $(table_size "$work/lake/bronze/bench/snappy")"
echo "the peer's table: $(table_size "$work/peer_full")"
for kind in spread clustered; do
  row "dataloader_merge_$kind" "$changed"
  row "peer_merge_$kind" "$changed" "dataloader_merge_$kind"
done
$pg -d postgres -c "DROP DATABASE $db"
