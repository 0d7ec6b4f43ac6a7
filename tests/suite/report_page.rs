//! The page of `smoothlab report --html`: its header, figures with captions, column
//! notes and per-run rows, that whatever it shows is escaped, and that Chromium renders
//! it: a screenshot that is not blank, no console errors, every SVG parsed, figures in
//! two columns at 1400 px and one on a phone.

use crate::common::{dirs_in, json, stderr, stdout, Workspace};
use serde_json::json;
use smoothlab::report::figures::NamedFigure;
use smoothlab::report::plot::Figure;
use smoothlab::report::summary::{Collected, Outcome, Report, ReportRun};
use smoothlab::store::RunResult;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Four runs: ε ∈ {0, 0.1} × seeds 0, 1.
const SWEEP: &str = r#"{
  "name": "page",
  "dataset": { "name": "synthetic", "classes": 3, "features": 4, "train_size": 120, "test_size": 60, "class_sep": 1.0 },
  "model": { "name": "mlp", "hidden": [8] },
  "training": { "epochs": 2, "batch_size": 32 },
  "device": "cpu",
  "sweep": { "loss.smoothing": [0.0, 0.1], "seed": [0, 1] }
}"#;

/// The host and commit given to ε = 0.1 seed 0, with characters HTML must escape.
const OTHER_HOST: &str = "lab<1>&co";
const OTHER_COMMIT: &str = "feed<&>beef";

/// The reason given to the failed run (ε = 0.1 seed 1).
const FAILURE: &str = "loss became NaN at epoch 1 & <stopped>";

/// Runs the sweep, then marks ε = 0.1 seed 1 failed and moves ε = 0.1 seed 0 to another
/// machine and commit. Returns the experiment's results directory.
fn fixture(ws: &Workspace) -> PathBuf {
    let file = ws.write("page.json", SWEEP);
    let out = ws.run(&file, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dir = ws.results().join("page");
    for run in dirs_in(&dir) {
        let path = run.join("result.json");
        let mut result = json(&path);
        let smoothed = result["swept"]["loss.smoothing"].as_f64().unwrap() > 0.0;
        match (smoothed, result["swept"]["seed"].as_u64().unwrap()) {
            (true, 0) => {
                result["environment"]["hostname"] = json!(OTHER_HOST);
                result["environment"]["git_commit"] = json!(OTHER_COMMIT);
            }
            (true, _) => {
                result["status"] = json!("failed");
                result["error"] = json!(FAILURE);
                result.as_object_mut().unwrap().remove("metrics");
            }
            _ => continue,
        }
        std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    }
    dir
}

/// `smoothlab report DIR --plots PLOTS --html PAGE` at the `info` log level: the page,
/// stdout and stderr.
fn write_page(ws: &Workspace, dir: &Path, plots: &Path, page: &Path) -> (String, String, String) {
    let out = ws
        .command(&[
            "report",
            dir.to_str().unwrap(),
            "--plots",
            plots.to_str().unwrap(),
            "--html",
            page.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(page).unwrap();
    (text, stdout(&out), stderr(&out))
}

/// The page as an XML document (it is written well-formed: any unescaped `<` or `&`
/// would fail here).
fn parse(page: &str) -> roxmltree::Document<'_> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(page, options)
        .unwrap_or_else(|e| panic!("the page is not well-formed: {e}"))
}

/// All text under `node`, trimmed.
fn text(node: roxmltree::Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_string()
}

fn with_class<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    tag: &'a str,
    class: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> + 'a {
    doc.descendants().filter(move |n| {
        n.has_tag_name(tag)
            && n.attribute("class")
                .is_some_and(|c| c.split(' ').any(|c| c == class))
    })
}

/// The `<dd>` after the `<dt>` reading `term` in `list`.
fn definition(list: roxmltree::Node, term: &str) -> String {
    let dt = list
        .children()
        .find(|n| n.has_tag_name("dt") && text(*n) == term)
        .unwrap_or_else(|| panic!("no {term:?} in the list"));
    let dd = dt
        .next_siblings()
        .skip(1)
        .find(|n| n.is_element())
        .filter(|n| n.has_tag_name("dd"))
        .unwrap_or_else(|| panic!("{term:?} has no definition"));
    text(dd)
}

#[test]
fn the_page_has_a_header_figures_column_notes_and_every_run() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let (plots, path) = (ws.path().join("plots"), ws.path().join("report.html"));
    let (page, out, err) = write_page(&ws, &dir, &plots, &path);
    let doc = parse(&page);

    let facts = with_class(&doc, "dl", "facts")
        .next()
        .expect("the header's facts");
    assert_eq!(definition(facts, "experiment"), "page");
    assert_eq!(
        definition(facts, "plan"),
        "4 runs planned: 3 completed, 1 failed, 0 missing"
    );
    let code = definition(facts, "code");
    let version = concat!("smoothlab ", env!("CARGO_PKG_VERSION"), " @ ");
    assert!(code.starts_with("runs differ:"), "{code}");
    assert!(
        code.contains(&format!("{version}{OTHER_COMMIT}")) && code.contains("(2 run(s))"),
        "{code}"
    );
    let machine = definition(facts, "machine");
    assert!(machine.starts_with("runs differ:"), "{machine}");
    assert!(
        machine.contains(&format!("{OTHER_HOST}: cpu, ")),
        "{machine}"
    );
    let finished = definition(facts, "finished");
    assert!(
        finished.ends_with(" UTC") && finished.starts_with("20"),
        "{finished}"
    );

    // Every figure --plots wrote, in a figure of the grid with a caption, its SVG inline.
    let mut stems: Vec<String> = std::fs::read_dir(&plots)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".svg").map(str::to_string)
        })
        .collect();
    stems.sort();
    let grid = with_class(&doc, "div", "figures")
        .next()
        .expect("the figure grid");
    let figures: Vec<_> = grid.children().filter(|n| n.is_element()).collect();
    let mut ids: Vec<String> = figures
        .iter()
        .map(|f| f.attribute("id").expect("a figure's id").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, stems, "one figure per file of --plots");
    for figure in &figures {
        assert!(figure.has_tag_name("figure"));
        let caption = figure
            .children()
            .find(|n| n.has_tag_name("figcaption"))
            .expect("a figcaption");
        assert!(
            text(caption).len() > figure.attribute("id").unwrap().len(),
            "{}",
            text(caption)
        );
        assert_eq!(
            figure.children().filter(|n| n.has_tag_name("svg")).count(),
            1
        );
    }
    assert_eq!(page.matches("<svg").count(), stems.len(), "no other SVG");
    let caption_of = |id: &str| {
        let figure = figures
            .iter()
            .find(|f| f.attribute("id") == Some(id))
            .unwrap();
        text(
            figure
                .children()
                .find(|n| n.has_tag_name("figcaption"))
                .unwrap(),
        )
    };
    assert!(
        caption_of("reliability-smoothing-0.0").starts_with("Reliability diagram: smoothing-0.0")
    );
    assert!(caption_of("ece-vs-smoothing").starts_with("ECE against label smoothing ε"));

    // Every heading of the group table has a tooltip and a note below the table.
    let table = doc.descendants().find(|n| n.has_tag_name("table")).unwrap();
    let headings: Vec<_> = table
        .descendants()
        .filter(|n| n.has_tag_name("th"))
        .collect();
    let columns = with_class(&doc, "dl", "columns")
        .next()
        .expect("the column notes");
    for th in &headings {
        let heading = text(*th);
        let title = th
            .attribute("title")
            .unwrap_or_else(|| panic!("{heading} has no tooltip"));
        assert_eq!(definition(columns, &heading), title);
    }
    let note = |heading: &str| definition(columns, heading);
    assert!(note("mean ± std").contains("sample standard deviation"));
    assert!(note("[low, high]").contains("bootstrap") && note("[low, high]").contains("pooled"));
    assert!(note("ECE").contains("15 equal-width"), "{}", note("ECE"));
    assert!(note("ECE after T").contains("temperature scaling"));
    assert!(note("T").contains("validation"));
    assert!(note("logit gap").contains("z_y"));
    assert!(note("loss.smoothing").contains("`loss.smoothing`"));

    // The per-run table, folded: every planned run, its status, the failed one's reason.
    let details = doc
        .descendants()
        .find(|n| n.has_tag_name("details"))
        .expect("details");
    assert_eq!(details.attribute("open"), None, "folded away by default");
    let rows: Vec<_> = details
        .descendants()
        .filter(|n| n.has_tag_name("tr") && n.parent().is_some_and(|p| p.has_tag_name("tbody")))
        .collect();
    let run_ids: Vec<String> = dirs_in(&dir)
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(rows.len(), run_ids.len());
    for id in &run_ids {
        let row = rows
            .iter()
            .find(|r| {
                r.descendants()
                    .any(|n| n.has_tag_name("code") && text(n) == *id)
            })
            .unwrap_or_else(|| panic!("no row for {id}"));
        let cells: Vec<String> = row
            .children()
            .filter(|n| n.is_element())
            .map(text)
            .collect();
        assert_eq!(
            cells.len(),
            1 + 1 + 1 + 5,
            "id, ε, status, five metrics: {cells:?}"
        );
        if row.attribute("class") == Some("failed") {
            assert_eq!(cells[2], format!("failed: {FAILURE}"));
            assert!(cells[3..].iter().all(|c| c == "-"), "{cells:?}");
        } else {
            assert_eq!(cells[2], "completed");
            assert!(cells[3].parse::<f64>().is_ok(), "accuracy {cells:?}");
        }
    }

    // Escaped where it is shown, never raw.
    for raw in [OTHER_HOST, OTHER_COMMIT, FAILURE] {
        assert!(!page.contains(raw), "{raw} unescaped");
    }
    assert!(page.contains("lab&lt;1&gt;&amp;co"));
    for fetch in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
    ] {
        assert!(!page.contains(fetch), "the page fetches nothing: {fetch}");
    }

    // stdout is the table alone; the page's path is logged on stderr like the figures'.
    let line = format!("report page written to {}", path.display());
    assert!(err.contains(&line), "{err}");
    assert!(
        err.contains(&format!("figure(s) written to {}", plots.display())),
        "{err}"
    );
    assert!(
        !out.contains("written to") && out.contains("smoothing"),
        "{out}"
    );
}

/// A run of a report built by hand, with `id`, a `tag` key and `outcome`.
fn run(id: &str, tag: &str, outcome: Outcome) -> ReportRun {
    ReportRun {
        experiment: "odd".to_string(),
        run_id: id.to_string(),
        dir: PathBuf::from(format!("/results/odd/{id}")),
        config: json!({ "tag": tag }),
        outcome,
    }
}

#[test]
fn run_ids_keys_reasons_and_stems_are_escaped() {
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let completed = dirs_in(&dir)
        .into_iter()
        .map(|d| json(&d.join("result.json")))
        .find(|r| r["status"] == "completed")
        .unwrap();
    let result: RunResult = serde_json::from_value(completed).unwrap();
    let (id, tag, reason, stem) = ("run<1>&", "a<b & \"c\"", "NaN <here> & there", "fig<&>");
    let collected = Collected {
        runs: vec![
            run(id, tag, Outcome::Completed(Box::new(result))),
            run(
                "r2",
                tag,
                Outcome::Failed {
                    reason: reason.to_string(),
                },
            ),
            run(
                "r3",
                "x&y",
                Outcome::Missing {
                    state: "pending".to_string(),
                },
            ),
        ],
        swept: vec!["tag".to_string()],
        experiments: vec!["odd".to_string()],
        not_in_plan: vec![],
    };
    let report = Report::new(collected, vec!["tag".to_string()]).unwrap();
    let svg = r#"<svg width="10" height="10" viewBox="0 0 10 10" xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>"#;
    let figures = [NamedFigure {
        stem: stem.to_string(),
        figure: Figure {
            svg: svg.to_string(),
            png: vec![],
            width: 10,
            height: 10,
        },
    }];
    let page = smoothlab::report::html::page("report: <odd> & more", &report, &figures);
    let doc = parse(&page);
    for raw in [id, tag, reason, stem, "x&y", "<odd>"] {
        assert!(!page.contains(raw), "{raw} unescaped");
    }
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.is_element())
        .map(|n| text(n))
        .collect();
    assert!(texts.iter().any(|t| t == id), "the run id as text");
    assert!(texts.iter().any(|t| t == tag), "the key as text");
    assert!(
        texts.iter().any(|t| t == &format!("failed: {reason}")),
        "the reason as text"
    );
    assert!(
        texts.iter().any(|t| t == "report: <odd> & more"),
        "the title as text"
    );
    let figure = doc
        .descendants()
        .find(|n| n.has_tag_name("figure"))
        .unwrap();
    assert_eq!(figure.attribute("id"), Some(stem));
    assert!(text(figure).contains(stem), "{}", text(figure));
}

/// Chromium, which renders the page in the browser test.
fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("chromium"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "chromium is not installed: this test renders the report page in Debian's \
                 headless Chromium; install it with `apt-get install -y chromium` (.ci/run does)"
            )
        })
}

/// What a headless Chromium run printed.
struct Rendered {
    stdout: String,
    stderr: String,
}

/// Opens `page` in a fresh headless Chromium `width`×`height` px wide with `args`, and
/// fails if it is not done within a minute. Its output goes to files: a DOM dump is
/// larger than a pipe holds.
fn render(page: &Path, width: u32, height: u32, args: &[&str]) -> Rendered {
    let scratch = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!(
            "--user-data-dir={}",
            scratch.path().join("profile").display()
        ))
        .arg(format!("--window-size={width},{height}"))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!(
                "chromium did not finish within 60 s:\n{}",
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let rendered = Rendered {
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    };
    assert!(
        status.success(),
        "chromium failed ({status}):\n{}",
        rendered.stderr
    );
    rendered
}

/// The lines of Chromium's log that come from the page: console messages and
/// uncaught errors.
fn console_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// The page with a script that writes where the figures landed into the DOM, for
/// `--dump-dom` to show: the number of distinct figure columns, and whether the page
/// is wider than the window.
fn with_layout_probe(page: &str) -> String {
    const PROBE: &str = "<script>\
        const lefts = new Set([...document.querySelectorAll('.figures > figure')]\
            .map(f => Math.round(f.getBoundingClientRect().left)));\
        document.body.dataset.figureColumns = lefts.size;\
        document.body.dataset.overflows = document.documentElement.scrollWidth > window.innerWidth;\
        </script>";
    page.replace("</body>", &format!("{PROBE}</body>"))
}

/// The value of `data-<name>` on the dumped `<body>`.
fn body_data<'a>(dom: &'a str, name: &str) -> &'a str {
    let body = &dom[dom.find("<body").expect("a body in the dump")..];
    let body = &body[..body.find('>').unwrap()];
    let key = format!("data-{name}=\"");
    let start = body
        .find(&key)
        .unwrap_or_else(|| panic!("no data-{name} on {body}"))
        + key.len();
    &body[start..start + body[start..].find('"').unwrap()]
}

#[test]
fn chromium_renders_the_page() {
    let browser = chromium();
    let ws = Workspace::new();
    let dir = fixture(&ws);
    let (plots, path) = (ws.path().join("plots"), ws.path().join("report.html"));
    let (page, _, _) = write_page(&ws, &dir, &plots, &path);
    let probed = ws.write("probed.html", &with_layout_probe(&page));
    let start = Instant::now();

    // The probe only sets two data attributes, so what is drawn and logged is the page's.
    let shot = ws.path().join("shot.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let [wide, phone] = std::thread::scope(|s| {
        [
            s.spawn(|| render(&probed, 1400, 2000, &[&screenshot, "--dump-dom"])),
            s.spawn(|| render(&probed, 400, 800, &["--dump-dom"])),
        ]
        .map(|t| t.join().unwrap())
    });
    eprintln!(
        "{}: two renders in {:.1?}",
        browser.display(),
        start.elapsed()
    );

    for rendered in [&wide, &phone] {
        let console = console_lines(&rendered.stderr);
        assert!(
            console.is_empty(),
            "the page logged to the console:\n{}",
            console.join("\n")
        );
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("a screenshot"),
    ));
    let mut reader = decoder.read_info().expect("a PNG screenshot");
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    assert_eq!((info.width, info.height), (1400, 2000));
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels: Vec<&[u8]> = buffer[..info.buffer_size()]
        .chunks_exact(info.color_type.samples())
        .collect();
    let drawn = pixels.iter().filter(|p| p[..3] != [255; 3]).count();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    assert!(
        drawn * 20 >= pixels.len() && colours.len() >= 16,
        "a blank screenshot: {drawn} of {} pixels drawn, {} colours",
        pixels.len(),
        colours.len()
    );

    assert_eq!(
        wide.stdout.matches("<svg").count(),
        page.matches("<svg").count(),
        "every SVG survives parsing"
    );
    assert_eq!(
        body_data(&wide.stdout, "figure-columns"),
        "2",
        "two columns at 1400 px"
    );
    assert_eq!(
        body_data(&phone.stdout, "figure-columns"),
        "1",
        "one column on a phone"
    );
    assert_eq!(
        body_data(&phone.stdout, "overflows"),
        "false",
        "nothing wider than a phone"
    );
}
