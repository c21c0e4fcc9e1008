#!/usr/bin/env bash
# Build the book, and fail on anything that would let it drift from the code: an include of a
# missing file, an unknown or empty anchor (checked by tests/tests/book.rs), or an include
# mdBook left unexpanded in the HTML.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
# With --check-browser (scripts/test.sh passes it), also open every page in headless Chromium
# and fail on broken links, anchors, images and script errors (scripts/check-book.py), saving a
# screenshot of each chapter in target/book-screenshots/. Reading the book needs no browser.
check_browser=false
case "${1:-}" in
    "") ;;
    --check-browser) check_browser=true ;;
    *) echo "usage: scripts/build-book.sh [--check-browser]" >&2; exit 2 ;;
esac
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
if $check_browser; then
    # First that the check still catches each kind of fault (a new Chromium could change what
    # it reports), then the book itself.
    scripts/check-book.py --self-test
    scripts/check-book.py book/build
fi
echo "build-book: book/build/index.html is ready (or run \`mdbook serve book\`)"
