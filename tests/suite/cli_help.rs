//! `smoothlab --help` is complete: every argument has a description, no description
//! restates a default clap already shows, every subcommand has examples and every
//! example parses, and the top-level help covers logging and progress bars.

// The command line's types belong to the binary, not the library, so the test compiles
// the same source file; the fields that only `commands.rs` reads are unused here.
#[allow(dead_code)]
#[path = "../../src/cli/args.rs"]
mod args;

use args::Cli;
use clap::{CommandFactory, Parser};

/// The command tree as `--help` shows it (built: clap's own arguments and `help`
/// subcommands included), with each command's words after `smoothlab`.
fn visible_commands(mut root: clap::Command) -> Vec<(Vec<String>, clap::Command)> {
    root.build();
    let mut found = Vec::new();
    collect(&root, Vec::new(), &mut found);
    found
}

fn collect(
    command: &clap::Command,
    path: Vec<String>,
    found: &mut Vec<(Vec<String>, clap::Command)>,
) {
    found.push((path.clone(), command.clone()));
    for sub in command.get_subcommands() {
        // `help` is clap's own; hidden subcommands (the worker) are not for users.
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let mut sub_path = path.clone();
        sub_path.push(sub.get_name().to_string());
        collect(sub, sub_path, found);
    }
}

fn is_leaf(command: &clap::Command) -> bool {
    command
        .get_subcommands()
        .all(|sub| sub.get_name() == "help" || sub.is_hide_set())
}

fn invocation(path: &[String]) -> String {
    std::iter::once("smoothlab")
        .chain(path.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

fn argument_name(arg: &clap::Arg) -> String {
    match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => arg.get_id().to_string().to_uppercase(),
    }
}

/// clap's own `--help` and `--version`, whose text clap writes.
fn is_builtin(arg: &clap::Arg) -> bool {
    matches!(arg.get_id().as_str(), "help" | "version")
}

fn help_text(arg: &clap::Arg) -> String {
    arg.get_long_help()
        .or(arg.get_help())
        .map(|help| help.to_string())
        .unwrap_or_default()
}

fn after_help(command: &clap::Command) -> String {
    command
        .get_after_long_help()
        .or(command.get_after_help())
        .map(|text| text.to_string())
        .unwrap_or_default()
}

/// Splits a command line the way a POSIX shell does for the quoting examples use:
/// single quotes, double quotes (with `\` escaping `"`, `\`, `$` and `` ` ``), and `\`
/// outside quotes. It stops at a comment, a redirection, a pipe or a command separator:
/// what follows is the shell's, not smoothlab's arguments.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    // Whether a word has begun: `''` is an empty word, not none.
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed single quote in {line:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err(format!("unclosed double quote in {line:?}")),
                        },
                        Some(c) => word.push(c),
                        None => return Err(format!("unclosed double quote in {line:?}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err(format!("a trailing backslash in {line:?}")),
                }
            }
            '#' if !in_word => break,
            '>' | '<' | '|' | ';' | '&' => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The `smoothlab ...` command lines of a help text, each as its words: lines ending in
/// `\` continue on the next, and leading `NAME=value` environment settings are dropped.
fn example_commands(text: &str) -> Vec<(String, Result<Vec<String>, String>)> {
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(continued) = line.strip_suffix('\\') {
            pending.push_str(continued);
            pending.push(' ');
            continue;
        }
        pending.push_str(line);
        let command_line = std::mem::take(&mut pending);
        let words = shell_words(&command_line).map(|words| {
            words
                .into_iter()
                .skip_while(|word| is_environment_setting(word))
                .collect::<Vec<_>>()
        });
        let is_smoothlab = match &words {
            Ok(words) => words.first().is_some_and(|first| first == "smoothlab"),
            Err(_) => command_line.starts_with("smoothlab "),
        };
        if is_smoothlab {
            commands.push((command_line, words));
        }
    }
    commands
}

fn is_environment_setting(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// `smoothlab ARGS... --OPTION` for each argument without help text.
fn arguments_without_help(root: clap::Command) -> Vec<String> {
    let mut missing = Vec::new();
    for (path, command) in visible_commands(root) {
        for arg in command.get_arguments() {
            if is_builtin(arg) || arg.is_hide_set() {
                continue;
            }
            if help_text(arg).trim().is_empty() {
                missing.push(format!("{} {}", invocation(&path), argument_name(arg)));
            }
        }
    }
    missing
}

fn subcommands_without_about(root: clap::Command) -> Vec<String> {
    visible_commands(root)
        .into_iter()
        .filter(|(path, command)| {
            !path.is_empty()
                && command
                    .get_about()
                    .is_none_or(|about| about.to_string().trim().is_empty())
        })
        .map(|(path, _)| invocation(&path))
        .collect()
}

/// Arguments whose help text speaks of a default beside the `[default: ...]` that clap
/// prints: the default said twice, and possibly two different ones.
fn restated_defaults(root: clap::Command) -> Vec<String> {
    let mut restated = Vec::new();
    for (path, command) in visible_commands(root) {
        for arg in command.get_arguments() {
            let shows_default = arg.get_action().takes_values()
                && !arg.get_default_values().is_empty()
                && !arg.is_hide_default_value_set();
            if shows_default && help_text(arg).to_lowercase().contains("default") {
                let defaults: Vec<_> = arg
                    .get_default_values()
                    .iter()
                    .map(|value| value.to_string_lossy())
                    .collect();
                restated.push(format!(
                    "{} {} [default: {}]: {:?}",
                    invocation(&path),
                    argument_name(arg),
                    defaults.join(","),
                    help_text(arg)
                ));
            }
        }
    }
    restated
}

/// What is wrong with the leaf subcommands' examples: none, one not of that
/// subcommand, or one that `parse` refuses.
fn example_problems(
    root: clap::Command,
    parse: impl Fn(&[String]) -> Result<(), clap::Error>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, command) in visible_commands(root) {
        if path.is_empty() || !is_leaf(&command) {
            continue;
        }
        let name = invocation(&path);
        let examples = example_commands(&after_help(&command));
        if examples.is_empty() {
            problems.push(format!("{name}: no `{name} ...` example in its after-help"));
        }
        for (line, words) in examples {
            let words = match words {
                Ok(words) => words,
                Err(e) => {
                    problems.push(format!("{name}: example {line:?}: {e}"));
                    continue;
                }
            };
            if words[1..].iter().take(path.len()).ne(path.iter()) {
                problems.push(format!("{name}: example {line:?} is not of `{name}`"));
            }
            if let Err(e) = parse(&words) {
                problems.push(format!("{name}: example {line:?} does not parse:\n{e}"));
            }
        }
    }
    problems
}

fn parse_cli(words: &[String]) -> Result<(), clap::Error> {
    Cli::try_parse_from(words).map(drop)
}

#[test]
fn the_command_tree_passes_clap_debug_asserts() {
    Cli::command().debug_assert();
}

#[test]
fn every_argument_has_help() {
    let missing = arguments_without_help(Cli::command());
    assert!(
        missing.is_empty(),
        "arguments without help text (give each a /// doc comment):\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_subcommand_has_a_description() {
    let missing = subcommands_without_about(Cli::command());
    assert!(
        missing.is_empty(),
        "subcommands without a description:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn no_help_text_restates_a_default_clap_shows() {
    let restated = restated_defaults(Cli::command());
    assert!(
        restated.is_empty(),
        "help texts that speak of a default next to clap's [default: ...]:\n  {}",
        restated.join("\n  ")
    );
}

#[test]
fn every_subcommand_has_examples_that_parse() {
    let problems = example_problems(Cli::command(), parse_cli);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checks above find what they look for, and name where.
#[test]
fn the_checks_name_what_is_missing() {
    use clap::{Arg, Command};
    let flawed = || {
        Command::new("smoothlab")
            .subcommand(
                Command::new("run")
                    .about("Train.")
                    .arg(Arg::new("experiment").required(true))
                    .arg(
                        Arg::new("jobs")
                            .long("jobs")
                            .default_value("1")
                            .help("Runs at once (default 2)."),
                    )
                    .after_help("Examples:\n  smoothlab run e.json --jobz 2\n  smoothlab show r"),
            )
            .subcommand(Command::new("bench").subcommand(Command::new("train")))
    };
    let parse = |words: &[String]| flawed().try_get_matches_from(words).map(drop);
    assert_eq!(
        arguments_without_help(flawed()),
        ["smoothlab run EXPERIMENT"]
    );
    assert_eq!(
        subcommands_without_about(flawed()),
        ["smoothlab bench", "smoothlab bench train"]
    );
    let restated = restated_defaults(flawed());
    assert_eq!(restated.len(), 1);
    assert!(
        restated[0].starts_with("smoothlab run --jobs [default: 1]"),
        "{restated:?}"
    );
    let problems = example_problems(flawed(), parse);
    assert_eq!(problems.len(), 4, "{problems:#?}");
    assert!(problems[0]
        .starts_with("smoothlab run: example \"smoothlab run e.json --jobz 2\" does not parse"));
    assert!(problems[1]
        .starts_with("smoothlab run: example \"smoothlab show r\" is not of `smoothlab run`"));
    assert!(problems[2].starts_with("smoothlab run: example \"smoothlab show r\" does not parse"));
    assert_eq!(
        problems[3],
        "smoothlab bench train: no `smoothlab bench train ...` example in its after-help"
    );
}

#[test]
fn top_level_help_covers_logging_and_progress_bars() {
    let mut root = Cli::command();
    let help = root.render_long_help().to_string();
    for expected in ["RUST_LOG", "RUST_LOG=debug", "progress bar", "terminal"] {
        assert!(
            help.contains(expected) || help.to_lowercase().contains(expected),
            "`smoothlab --help` does not mention {expected:?}:\n{help}"
        );
    }
    for (line, words) in example_commands(&after_help(&root)) {
        let words = words.unwrap_or_else(|e| panic!("top-level example {line:?}: {e}"));
        if let Err(e) = parse_cli(&words) {
            panic!("top-level example {line:?} does not parse:\n{e}");
        }
    }
}

#[test]
fn shell_words_splits_like_a_shell() {
    let split = |line: &str| shell_words(line).unwrap();
    assert_eq!(
        split(r#"smoothlab runs results --where 'status == "failed"' --by ''"#),
        [
            "smoothlab",
            "runs",
            "results",
            "--where",
            r#"status == "failed""#,
            "--by",
            ""
        ]
    );
    assert_eq!(
        split(r#"smoothlab report "a b" c\ d --metrics x # a comment"#),
        ["smoothlab", "report", "a b", "c d", "--metrics", "x"]
    );
    assert_eq!(
        split("smoothlab slurm e.json --tasks 2 > job.sh"),
        ["smoothlab", "slurm", "e.json", "--tasks", "2"]
    );
    assert!(shell_words("smoothlab runs --where 'open").is_err());
    let examples = example_commands(
        "Examples:\n  RUST_LOG=debug smoothlab run \\\n      e.json --jobs 2\n  sbatch job.sh",
    );
    assert_eq!(examples.len(), 1);
    assert_eq!(
        examples[0].1.as_deref().unwrap(),
        ["smoothlab", "run", "e.json", "--jobs", "2"]
    );
}
