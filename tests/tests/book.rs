//! The book must not drift from the code. mdBook only warns about a missing include and
//! silently includes nothing for an unknown anchor, so this test checks every `{{#include}}`
//! in book/src: the file exists, a named anchor exists and is not empty, and a snapshot is
//! included from the line after insta's three-line header. scripts/build-book.sh runs it
//! before `mdbook build`.

use std::fs;
use std::path::{Path, PathBuf};

use box_tests::binaries::workspace;

fn markdown_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("book/src is readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            markdown_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            found.push(path);
        }
    }
}

/// Every `{{#...}}` directive in a chapter: (line number, the text between the braces).
fn directives(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(start) = rest.find("{{#") {
            let Some(len) = rest[start..].find("}}") else {
                break;
            };
            found.push((number + 1, rest[start + 3..start + len].trim().to_string()));
            rest = &rest[start + len + 2..];
        }
    }
    found
}

/// What is wrong with one directive, if anything.
fn problem(chapter: &Path, directive: &str) -> Option<String> {
    let Some(argument) = directive.strip_prefix("include ") else {
        return Some(format!(
            "only {{{{#include}}}} is used in this book, not {{{{#{directive}}}}}"
        ));
    };
    let argument = argument.trim();
    let (file, selector) = match argument.split_once(':') {
        Some((file, selector)) => (file, Some(selector)),
        None => (argument, None),
    };
    let path = chapter.parent().unwrap().join(file);
    let Ok(text) = fs::read_to_string(&path) else {
        return Some(format!("{file}: no such file"));
    };
    let is_snapshot = file.ends_with(".snap");
    match selector {
        None if is_snapshot => Some(format!("{file}: include a snapshot from line 4 (`{file}:4:`)")),
        None => None,
        Some("4:") if is_snapshot => {
            let header: Vec<&str> = text.lines().take(3).collect();
            let plain = header.len() == 3
                && header[0] == "---"
                && header[1].starts_with("source: ")
                && header[2] == "---";
            if !plain {
                return Some(format!(
                    "{file}: expected insta's three-line header, found {header:?}"
                ));
            }
            text.lines()
                .nth(3)
                .is_none()
                .then(|| format!("{file}: the snapshot is empty"))
        }
        Some(range) if range.chars().next().is_some_and(|c| c.is_ascii_digit()) => Some(format!(
            "{file}: include code by named anchor, not by line range ({range})"
        )),
        Some(anchor) => {
            let begin = format!("ANCHOR: {anchor}");
            let end = format!("ANCHOR_END: {anchor}");
            let lines: Vec<&str> = text.lines().collect();
            let is = |line: &str, marker: &str| line.trim_end().ends_with(marker);
            let Some(start) = lines.iter().position(|line| is(line, &begin)) else {
                return Some(format!("{file}: no anchor {anchor:?}"));
            };
            let Some(stop) = lines.iter().position(|line| is(line, &end)) else {
                return Some(format!("{file}: anchor {anchor:?} is never closed"));
            };
            let body = lines.get(start + 1..stop).unwrap_or_default();
            body.iter()
                .all(|line| line.trim().is_empty())
                .then(|| format!("{file}: anchor {anchor:?} is empty"))
        }
    }
}

#[test]
fn every_include_in_the_book_resolves() {
    let src = workspace().join("book/src");
    let mut chapters = Vec::new();
    markdown_files(&src, &mut chapters);
    chapters.sort();
    assert!(!chapters.is_empty(), "book/src has no chapters");
    let mut problems = Vec::new();
    let mut includes = 0;
    for chapter in &chapters {
        let text = fs::read_to_string(chapter).unwrap();
        for (line, directive) in directives(&text) {
            includes += 1;
            if let Some(why) = problem(chapter, &directive) {
                problems.push(format!(
                    "{}:{line}: {why}",
                    chapter.strip_prefix(workspace()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the book would drift from the code:\n{}",
        problems.join("\n")
    );
    assert!(includes > 0, "the book includes nothing from the code");
}

#[test]
fn the_checker_catches_what_mdbook_would_let_through() {
    let dir = tempfile::tempdir().unwrap();
    let chapter = dir.path().join("chapter.md");
    fs::write(
        dir.path().join("code.rs"),
        "// ANCHOR: full\nfn f() {}\n// ANCHOR_END: full\n// ANCHOR: empty\n// ANCHOR_END: empty\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("run.snap"),
        "---\nsource: x\nassertion_line: 3\n---\nhello\n",
    )
    .unwrap();
    assert_eq!(problem(&chapter, "include code.rs:full"), None);
    assert!(problem(&chapter, "include missing.rs:full")
        .unwrap()
        .contains("no such file"));
    assert!(problem(&chapter, "include code.rs:nope")
        .unwrap()
        .contains("no anchor"));
    assert!(problem(&chapter, "include code.rs:empty")
        .unwrap()
        .contains("is empty"));
    assert!(problem(&chapter, "include code.rs:2:3")
        .unwrap()
        .contains("line range"));
    assert!(problem(&chapter, "include run.snap:4:")
        .unwrap()
        .contains("three-line header"));
    assert!(problem(&chapter, "rustdoc_include code.rs").is_some());
}
