//! The README and the docs/ pages: every relative link reaches a file and every anchor a
//! heading, the table of contents is the README's headings, and the quoted outputs agree
//! with each other and name blocks that `scripts/readme-outputs.py` regenerates.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines outside fenced code blocks, with their 1-based numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_`
/// dropped, spaces made hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// (level, title) of every heading.
fn headings(text: &str) -> Vec<(usize, String)> {
    prose(text)
        .into_iter()
        .filter_map(|(_, line)| {
            let level = line.chars().take_while(|&c| c == '#').count();
            let title = line[level..].strip_prefix(' ')?;
            (level > 0).then(|| (level, title.to_string()))
        })
        .collect()
}

/// Every `](target)` of a page's prose.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in prose(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let Some(end) = rest.find(')') else { break };
            found.push((number, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    found
}

fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

#[test]
fn every_link_reaches_its_file_and_heading() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (line, link) in links(&text) {
            if link.starts_with("http://") || link.starts_with("https://") {
                continue;
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(file)
            };
            let at = format!("{}:{line}: `{link}`", page.display());
            if !target.exists() {
                broken.push(format!("{at}: no file {}", target.display()));
            } else if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let anchors: HashSet<String> = headings(&read(&target))
                    .iter()
                    .map(|(_, t)| anchor(t))
                    .collect();
                if !anchors.contains(fragment) {
                    broken.push(format!("{at}: no heading #{fragment}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_table_of_contents_lists_every_section() {
    let text = read(&root().join("README.md"));
    let contents = text
        .split_once("## Contents\n\n")
        .expect("a Contents section")
        .1;
    let listed: Vec<String> = contents
        .lines()
        .take_while(|line| !line.is_empty())
        .map(|line| {
            let entry = line.trim_start().strip_prefix("- [").expect("a list entry");
            let target = entry.split_once("](#").expect("a link").1;
            target.trim_end_matches(')').to_string()
        })
        .collect();
    let sections: Vec<String> = headings(&text)
        .iter()
        .filter(|(level, title)| matches!(level, 2 | 3) && title != "Contents")
        .map(|(_, title)| anchor(title))
        .collect();
    assert_eq!(listed, sections);
}

/// The fenced block after `<!-- output: NAME -->`.
fn quoted<'a>(text: &'a str, name: &str) -> &'a str {
    let marker = format!("<!-- output: {name} -->\n```\n");
    let start = text.find(&marker).unwrap_or_else(|| panic!("no {marker}")) + marker.len();
    &text[start..start + text[start..].find("\n```").unwrap()]
}

/// The number after `key ` in a line.
fn after<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in {line}"))
        + key.len();
    line[start..].split([' ', ':']).next().unwrap()
}

#[test]
fn quoted_outputs_name_regenerated_blocks_and_agree_with_each_other() {
    let text = read(&root().join("README.md"));
    let script = read(&root().join("scripts/readme-outputs.py"));
    for (number, line) in prose(&text) {
        if let Some(name) = line
            .strip_prefix("<!-- output: ")
            .and_then(|l| l.strip_suffix(" -->"))
        {
            assert!(
                script.contains(&format!("    \"{name}\": (")),
                "README.md:{number}: scripts/readme-outputs.py has no block `{name}`"
            );
        }
    }

    // The quickstart's lines, its table and the calibrate example are one run's numbers.
    let quickstart = quoted(&text, "quickstart");
    let finished: Vec<&str> = quickstart
        .lines()
        .filter(|l| l.contains("test acc"))
        .collect();
    assert_eq!(finished.len(), 2, "{quickstart}");
    let table = text
        .split_once("| ε | test accuracy |")
        .expect("the quickstart table")
        .1;
    for (line, row) in finished.iter().zip(table.lines().skip(2)) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let scaled = line.split(" | T ").nth(1).unwrap();
        let expected = [
            after(line, "test acc "),
            after(line, " nll "),
            after(line, " ece "),
            after(line, "logit gap "),
            scaled.split(':').next().unwrap(),
            after(scaled, " ece "),
        ];
        assert_eq!(&cells[2..8], &expected, "{row} against {line}");
    }

    let calibrate = quoted(&text, "calibrate");
    let smoothed = finished[1];
    let row = |name: &str| -> Vec<&str> {
        let line = calibrate
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in {calibrate}"));
        line[name.len()..].split_whitespace().collect()
    };
    assert_eq!(row("accuracy")[0], after(smoothed, "test acc "));
    let scaled = smoothed.split(" | T ").nth(1).unwrap();
    assert_eq!(
        row("NLL")[..2],
        [after(smoothed, " nll "), after(scaled, " nll ")]
    );
    assert_eq!(
        row("ECE")[..2],
        [after(smoothed, " ece "), after(scaled, " ece ")]
    );
    let temperature: f64 = after(calibrate, "\ntemperature ").parse().unwrap();
    assert_eq!(
        format!("{temperature:.3}"),
        after(smoothed, " | T "),
        "the calibrate example's T against the quickstart's"
    );
}
