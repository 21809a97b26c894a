# Shared by the scripts: one cargo target directory outside the clone, reused by every
# checkout and by CI, so a fresh clone does not rebuild the dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dataloader-target}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust first (https://rustup.rs), then run this again" >&2
  exit 1
fi
