#!/usr/bin/env bash
# Builds dataloader and runs the quickstart: a demo SQLite source, a SQLite control database and
# a local Delta lakehouse in ./dataloader-quickstart. Run it again to see an incremental load.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/env.sh"
cargo build --manifest-path "$root/Cargo.toml" -p dataloader-cli --bin dataloader
exec "$CARGO_TARGET_DIR/debug/dataloader" quickstart "$@"
