#!/usr/bin/env bash
# Build the book, and fail on anything that would let it drift from the code: an include of a
# missing file, an unknown or empty anchor (checked by tests/tests/book.rs), or an include
# mdBook left unexpanded in the HTML.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
MDBOOK_VERSION=0.4.52
if ! command -v mdbook >/dev/null || [ "$(mdbook --version)" != "mdbook v$MDBOOK_VERSION" ]; then
    echo "build-book: installing mdbook $MDBOOK_VERSION with cargo (once; takes a few minutes)"
    cargo install --quiet --locked mdbook --version "$MDBOOK_VERSION"
fi
cargo test --quiet --locked -p box-tests --test book
mdbook build book
if grep -rl '{{#' book/build --include='*.html' >/dev/null; then
    echo "build-book: error: unexpanded includes in the built book:" >&2
    grep -rn -o '{{#[^}]*}}' book/build --include='*.html' | head >&2
    exit 1
fi
echo "build-book: book/build/index.html is ready (or run \`mdbook serve book\`)"
