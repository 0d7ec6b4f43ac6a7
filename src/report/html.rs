//! `smoothlab report --html`: one self-contained page (inline CSS and SVG, nothing
//! fetched) with the table and every figure.

use super::figures::NamedFigure;
use super::format::{html_escape, html_table};
use super::summary::Report;
use std::fmt::Write as _;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;font-size:0.9em}\
th,td{border-bottom:1px solid #ccc;padding:0.3em 0.6em;text-align:left}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
figure{margin:2em 0}svg{max-width:100%;height:auto}\
.notes{color:#a33}";

/// The page for `report` and its figures, titled `title`.
pub fn page(title: &str, report: &Report, figures: &[NamedFigure]) -> String {
    let title = html_escape(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    let _ = writeln!(
        out,
        "<p>{} run(s) in {} group(s), grouped by {}; mean ± standard deviation over each group's completed runs.</p>",
        report.collected.runs.len(),
        report.groups.len(),
        if report.keys.is_empty() {
            "nothing (one group)".to_string()
        } else {
            html_escape(&report.keys.join(", "))
        }
    );
    out += &html_table(report);
    for named in figures {
        let _ = writeln!(
            out,
            "<figure id=\"{}\">\n{}\n</figure>",
            html_escape(&named.stem),
            inline_svg(&named.figure.svg)
        );
    }
    out += "</body>\n</html>\n";
    out
}

/// An SVG document as an element inside HTML: without its XML declaration.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    }
}
