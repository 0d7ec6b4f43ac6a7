//! `smoothlab report --html`: one self-contained page (inline CSS and SVG, no script,
//! nothing fetched): a header with the plan, the code and the machines, the table with
//! notes on its columns, the per-run results folded away, and every figure in a grid.
//!
//! The page is also well-formed XML (void elements closed, only XML's entities), so
//! that tests can read it with an XML parser.

use super::figures::NamedFigure;
use super::format::{column_notes, html_escape, html_run_table, html_table, stat_notes};
use super::summary::{Outcome, Report};
use crate::store::RunResult;
use std::fmt::Write as _;

/// Figures in columns of at least 560 px (two in a 1400 px window, one on a phone).
const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;max-width:1800px;padding:1.5rem;color:#222;background:#fff;line-height:1.45}\
h1{font-size:1.6rem;margin:0 0 .8rem}\
h2{font-size:1.25rem;margin:2rem 0 .6rem;padding-bottom:.2rem;border-bottom:1px solid #ddd}\
h3{font-size:1rem;margin:1.2rem 0 .4rem}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1.2rem;margin:0}\
dt{font-weight:600;color:#555}dd{margin:0}dd ul{margin:0;padding-left:1.2rem}\
dl.columns{font-size:.9rem}dl.columns dd{color:#444}\
.scroll{overflow-x:auto;max-width:100%}\
table{border-collapse:collapse;font-size:.85rem}\
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}\
thead th{background:#f4f4f4;white-space:nowrap}\
th[title]{cursor:help;text-decoration:underline dotted #999}\
tbody tr:nth-child(even){background:#fafafa}\
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\
.interval{color:#777}\
.notes,tr.failed{color:#a33}tr.missing{color:#777}\
details{margin:1.2rem 0}summary{cursor:pointer;font-weight:600}\
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(560px,100%),1fr));gap:1.2rem}\
figure{margin:0;padding:.6rem;border:1px solid #ddd;border-radius:6px;min-width:0}\
figcaption{font-weight:600;margin-bottom:.4rem}\
figcaption a{font-weight:400;font-size:.8rem;color:#888;margin-left:.5rem;text-decoration:none}\
figure svg{display:block;width:100%;height:auto}\
@media (max-width:600px){body{padding:.8rem}dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}";

/// The page for `report` and its figures, titled `title`.
pub fn page(title: &str, report: &Report, figures: &[NamedFigure]) -> String {
    let title = html_escape(title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>{title}</h1>\n"
    );
    out += &facts(report);
    out += "</header>\n<main>\n<section id=\"groups\">\n<h2>Groups</h2>\n";
    let _ = writeln!(
        out,
        "<p>{} group(s), by {}; hover over a heading, or read the notes below the table, for what a column holds.</p>",
        report.groups.len(),
        if report.keys.is_empty() {
            "nothing (one group)".to_string()
        } else {
            html_escape(&report.keys.join(", "))
        }
    );
    let _ = writeln!(out, "<div class=\"scroll\">\n{}</div>", html_table(report));
    out += &column_list(report);
    let _ = writeln!(
        out,
        "<details id=\"runs\">\n<summary>Per-run results ({} runs)</summary>\n<div class=\"scroll\">\n{}</div>\n</details>",
        report.collected.runs.len(),
        html_run_table(report)
    );
    out += "</section>\n";
    if !figures.is_empty() {
        out += "<section id=\"figures\">\n<h2>Figures</h2>\n<div class=\"figures\">\n";
        for named in figures {
            let stem = html_escape(&named.stem);
            let _ = writeln!(
                out,
                "<figure id=\"{stem}\">\n<figcaption>{} <a href=\"#{stem}\">{stem}</a></figcaption>\n{}\n</figure>",
                html_escape(&caption(&named.stem)),
                inline_svg(&named.figure.svg)
            );
        }
        out += "</div>\n</section>\n";
    }
    out += "</main>\n</body>\n</html>\n";
    out
}

/// The header's list: experiments, plan, code version, machines, when the runs finished.
/// The code, machines and times are those of the completed runs, the ones with a result.
fn facts(report: &Report) -> String {
    let runs = &report.collected.runs;
    let count = |f: fn(&Outcome) -> bool| runs.iter().filter(|r| f(&r.outcome)).count();
    let completed = count(|o| matches!(o, Outcome::Completed(_)));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let missing = count(|o| matches!(o, Outcome::Missing { .. }));
    let mut plan = format!(
        "{} runs planned: {completed} completed, {failed} failed, {missing} missing",
        runs.len()
    );
    let left_out = report.collected.not_in_plan.len();
    if left_out > 0 {
        let _ = write!(
            plan,
            "; {left_out} result(s) not in the current plan left out"
        );
    }
    let results: Vec<&RunResult> = runs.iter().filter_map(|r| r.result()).collect();
    let experiments = &report.collected.experiments;
    let mut out = String::from("<dl class=\"facts\">\n");
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(out, "<dt>{name}</dt><dd>{value}</dd>");
    };
    fact(
        if experiments.len() == 1 {
            "experiment"
        } else {
            "experiments"
        },
        html_escape(&experiments.join(", ")),
    );
    fact("plan", html_escape(&plan));
    fact("code", distinct(&results, code_version));
    fact("machine", distinct(&results, machine));
    fact("finished", finished(&results));
    out += "</dl>\n";
    out
}

/// The one value `describe` gives every result, or "runs differ" and each distinct
/// value with its number of runs, in order of first appearance; escaped.
fn distinct(results: &[&RunResult], describe: fn(&RunResult) -> String) -> String {
    let mut values: Vec<(String, usize)> = vec![];
    for result in results {
        let value = describe(result);
        match values.iter_mut().find(|(v, _)| *v == value) {
            Some((_, n)) => *n += 1,
            None => values.push((value, 1)),
        }
    }
    match &values[..] {
        [] => "no completed run".to_string(),
        [(only, _)] => html_escape(only),
        _ => {
            let mut out = "runs differ:<ul>".to_string();
            for (value, n) in &values {
                let _ = write!(out, "<li>{} ({n} run(s))</li>", html_escape(value));
            }
            out + "</ul>"
        }
    }
}

fn code_version(result: &RunResult) -> String {
    let env = &result.environment;
    format!(
        "smoothlab {} @ {}, candle {}",
        env.smoothlab_version,
        env.git_commit.as_deref().unwrap_or("unknown commit"),
        env.candle_version
    )
}

fn machine(result: &RunResult) -> String {
    let env = &result.environment;
    let mut out = format!(
        "{}: {}, {} thread(s)",
        env.hostname.as_deref().unwrap_or("unknown host"),
        env.device,
        env.threads
    );
    if let Some(gpu) = &env.gpu {
        let _ = write!(
            out,
            ", {} (compute {}, {} MiB), driver {} (CUDA {})",
            gpu.name,
            gpu.compute_capability,
            gpu.memory_mib,
            gpu.driver_version.as_deref().unwrap_or("?"),
            gpu.driver_cuda_version.as_deref().unwrap_or("?")
        );
    }
    out
}

/// When the first and the last completed run finished.
fn finished(results: &[&RunResult]) -> String {
    let times = results.iter().map(|r| r.environment.finished_at);
    let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
        return "no completed run".to_string();
    };
    let format = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    if format(first) == format(last) {
        format(first)
    } else {
        format!("between {} and {}", format(first), format(last))
    }
}

/// The notes on the cells and on every column, as a definition list.
fn column_list(report: &Report) -> String {
    let mut out = String::from("<h3>Columns</h3>\n<dl class=\"columns\">\n");
    let columns = column_notes(report);
    let stats = stat_notes(report);
    let notes = stats
        .iter()
        .map(|(term, note)| (*term, Some(note.as_str())))
        .chain(
            columns
                .iter()
                .map(|c| (c.heading.as_str(), c.note.as_deref())),
        );
    for (term, note) in notes {
        if let Some(note) = note {
            let _ = writeln!(
                out,
                "<dt>{}</dt><dd>{}</dd>",
                html_escape(term),
                html_escape(note)
            );
        }
    }
    out += "</dl>\n";
    out
}

/// A figure's caption from its file stem (`reliability-CE`: "Reliability diagram: CE").
fn caption(stem: &str) -> String {
    if let Some(group) = stem.strip_prefix("smooth-reliability-") {
        format!("Smoothed reliability diagram: {group}")
    } else if let Some(group) = stem.strip_prefix("reliability-") {
        format!("Reliability diagram: {group}")
    } else if let Some(metric) = stem.strip_suffix("-vs-smoothing") {
        format!("{} against label smoothing ε", metric_words(metric))
    } else if let Some(metric) = stem.strip_suffix("-by-method") {
        format!("{} by training method", metric_words(metric))
    } else if let Some(metric) = stem.strip_suffix("-by-calibrator") {
        format!("{} by calibrator", metric_words(metric))
    } else {
        metric_words(stem)
    }
}

/// A stem's words as a capitalised phrase, the metric abbreviations in capitals.
fn metric_words(stem: &str) -> String {
    match stem {
        "ece" => "ECE".to_string(),
        "nll" => "NLL".to_string(),
        _ => {
            let words = stem.replace('-', " ");
            let mut chars = words.chars();
            chars
                .next()
                .map_or(String::new(), |c| c.to_uppercase().chain(chars).collect())
        }
    }
}

/// An SVG document as an element inside HTML: without its XML declaration.
fn inline_svg(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(start) => &svg[start..],
        None => svg,
    }
}
