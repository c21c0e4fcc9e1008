//! The book must not drift from the code. mdBook only warns about a missing include and
//! silently includes nothing for an unknown anchor, so this test checks every `{{#include}}`
//! in book/src: the file exists, a named anchor exists and is not empty, and a snapshot is
//! included from the line after insta's three-line header. scripts/build-book.sh runs it
//! before `mdbook build`.
//!
//! It checks the images too. A diagram, `![alt](diagrams/NAME.svg)`, is drawn by
//! scripts/build-book.sh from `book/diagrams/NAME.dot` (the SVG is not in git), so its source
//! must exist, and every source must be shown somewhere: a diagram no chapter shows would rot.

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

/// Every image in a chapter, outside fenced code blocks: (line number, alt text, target).
fn images(text: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    let mut in_code = false;
    for (number, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("![") {
            let after = &rest[start + 2..];
            let Some(close) = after.find("](") else {
                break;
            };
            let target = &after[close + 2..];
            let Some(end) = target.find(')') else {
                break;
            };
            found.push((
                number + 1,
                after[..close].to_string(),
                target[..end].trim().to_string(),
            ));
            rest = &target[end + 1..];
        }
    }
    found
}

/// What is wrong with one image, if anything. `diagrams` is book/diagrams, where the sources
/// of the chapters' `diagrams/NAME.svg` are.
fn image_problem(chapter: &Path, diagrams: &Path, alt: &str, target: &str) -> Option<String> {
    if alt.trim().is_empty() {
        return Some(format!(
            "{target}: an image needs alt text, `![what it shows]({target})`"
        ));
    }
    if let Some(file) = target.strip_prefix("diagrams/") {
        let Some(name) = file.strip_suffix(".svg") else {
            return Some(format!(
                "{target}: a diagram is an SVG drawn from book/diagrams/NAME.dot: `diagrams/NAME.svg`"
            ));
        };
        let source = diagrams.join(format!("{name}.dot"));
        return (!source.is_file()).then(|| {
            format!("{target}: no such diagram: its source book/diagrams/{name}.dot does not exist")
        });
    }
    (!chapter.parent().unwrap().join(target).is_file()).then(|| format!("{target}: no such image"))
}

/// The names of the diagrams' sources, book/diagrams/NAME.dot.
fn diagram_sources(diagrams: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(diagrams)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "dot"))
                .filter_map(|path| Some(path.file_stem()?.to_str()?.to_string()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn every_image_in_the_book_resolves_and_every_diagram_is_shown() {
    let src = workspace().join("book/src");
    let diagrams = workspace().join("book/diagrams");
    let mut chapters = Vec::new();
    markdown_files(&src, &mut chapters);
    chapters.sort();
    let mut problems = Vec::new();
    let mut shown = Vec::new();
    for chapter in &chapters {
        let text = fs::read_to_string(chapter).unwrap();
        for (line, alt, target) in images(&text) {
            if let Some(why) = image_problem(chapter, &diagrams, &alt, &target) {
                problems.push(format!(
                    "{}:{line}: {why}",
                    chapter.strip_prefix(workspace()).unwrap().display()
                ));
            }
            if let Some(name) = target
                .strip_prefix("diagrams/")
                .and_then(|file| file.strip_suffix(".svg"))
            {
                shown.push(name.to_string());
            }
        }
    }
    for name in diagram_sources(&diagrams) {
        if !shown.contains(&name) {
            problems.push(format!(
                "book/diagrams/{name}.dot: no chapter shows it: add `![what it shows](diagrams/{name}.svg)` \
                 where it belongs, or delete it"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the book's images would not show:\n{}",
        problems.join("\n")
    );
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

#[test]
fn the_image_checker_catches_a_diagram_without_a_source() {
    let dir = tempfile::tempdir().unwrap();
    let chapter = dir.path().join("chapter.md");
    let diagrams = dir.path().join("diagrams-sources");
    fs::create_dir(&diagrams).unwrap();
    fs::write(diagrams.join("tree.dot"), "digraph tree { a -> b }\n").unwrap();
    fs::write(dir.path().join("photo.png"), "").unwrap();
    assert_eq!(
        diagram_sources(&diagrams),
        vec!["tree".to_string()],
        "the sources are found by their .dot"
    );

    let text = "An ![a tree](diagrams/tree.svg) and ![](photo.png)\n```text\n![not](an image)\n```\n";
    assert_eq!(
        images(text),
        vec![
            (1, "a tree".to_string(), "diagrams/tree.svg".to_string()),
            (1, String::new(), "photo.png".to_string()),
        ]
    );
    // The SVG need not exist yet: scripts/build-book.sh draws it after this test.
    assert_eq!(
        image_problem(&chapter, &diagrams, "a tree", "diagrams/tree.svg"),
        None
    );
    assert_eq!(image_problem(&chapter, &diagrams, "a photo", "photo.png"), None);
    assert!(image_problem(&chapter, &diagrams, "a bush", "diagrams/bush.svg")
        .unwrap()
        .contains("bush.dot does not exist"));
    assert!(image_problem(&chapter, &diagrams, "a tree", "diagrams/tree.png")
        .unwrap()
        .contains("a diagram is an SVG"));
    assert!(image_problem(&chapter, &diagrams, " ", "diagrams/tree.svg")
        .unwrap()
        .contains("alt text"));
    assert!(image_problem(&chapter, &diagrams, "a cat", "cat.png")
        .unwrap()
        .contains("no such image"));
}
