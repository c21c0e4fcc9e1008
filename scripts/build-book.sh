#!/usr/bin/env bash
# Build the book, and fail on anything that would let it drift from the code: an include of a
# missing file, an unknown or empty anchor, a diagram without its source (all checked by
# tests/tests/book.rs), or an include mdBook left unexpanded in the HTML. The diagrams are drawn
# here, from book/diagrams/NAME.dot into book/src/diagrams/NAME.svg (not in git), by Graphviz.
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
if ! command -v dot >/dev/null; then
    echo "build-book: error: Graphviz's dot is not installed: it draws the book's diagrams (book/diagrams/*.dot)" >&2
    echo "hint: run scripts/setup.sh, or sudo apt-get install graphviz" >&2
    exit 1
fi
cargo test --quiet --locked -p box-tests --test book
rm -rf book/src/diagrams
mkdir book/src/diagrams
# dot places each run of a label's text (a change of font starts one) at the x it measured, with
# its spaces; a browser strips the spaces at the start of a run unless told to keep them, and
# "box-br0 the bridge" would show as "box-br0the bridge". xml:space="preserve" keeps them.
shopt -s nullglob
for source in book/diagrams/*.dot; do
    svg="book/src/diagrams/$(basename "$source" .dot).svg"
    dot -Tsvg "$source" | sed 's/^<svg /<svg xml:space="preserve" /' > "$svg" ||
        { echo "build-book: error: dot could not draw $source" >&2; exit 1; }
done
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
