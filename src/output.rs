//! What k0slab prints, and how much. One type owns verbosity; tables are built here.

use std::io::IsTerminal;

use comfy_table::{presets, CellAlignment, ColumnConstraint, Table};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table for people
    Table,
    /// JSON for scripts
    Json,
}

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// The output of one k0slab run.
#[derive(Debug, Clone)]
pub struct Output {
    verbosity: Verbosity,
    /// `TERM=dumb`: a terminal that cannot move the cursor, so no progress bars.
    dumb_terminal: bool,
    /// Problems are shown only with --verbose: the caller says them in its own words.
    problems_as_details: bool,
}

impl Output {
    pub fn new(verbosity: Verbosity) -> Self {
        Self {
            verbosity,
            dumb_terminal: false,
            problems_as_details: false,
        }
    }

    /// This output with problems shown only as details (--verbose), for a caller that reports
    /// what went wrong in its own words.
    pub fn problems_as_details(mut self) -> Self {
        self.problems_as_details = true;
        self
    }

    /// With the terminal type of `TERM`: `dumb` gets plain lines, no cursor movement.
    pub fn with_term(mut self, term: Option<&str>) -> Self {
        self.dumb_terminal = term == Some("dumb");
        self
    }

    /// The result a command was asked for (a table, JSON): always printed, on stdout.
    pub fn result(&self, text: &str) {
        println!("{}", text.trim_end_matches('\n'));
    }

    /// Progress and notes for people, on stdout; not with --quiet.
    pub fn info(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            println!("{text}");
        }
    }

    /// A progress line on stderr; not with --quiet.
    pub fn progress(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("{text}");
        }
    }

    /// A warning on stderr; not with --quiet.
    pub fn warn(&self, text: &str) {
        if self.verbosity >= Verbosity::Normal {
            eprintln!("warning: {text}");
        }
    }

    /// A problem on stderr, always (even with --quiet): the details behind an error.
    pub fn problem(&self, text: &str) {
        if self.problems_as_details {
            self.detail(text);
        } else {
            eprintln!("{text}");
        }
    }

    /// Details on stderr, with --verbose only.
    pub fn detail(&self, text: &str) {
        if self.verbosity >= Verbosity::Verbose {
            eprintln!("{text}");
        }
    }

    /// Whether progress bars and colour make sense (stderr is a terminal, not quiet).
    pub fn interactive(&self) -> bool {
        self.verbosity >= Verbosity::Normal
            && !self.dumb_terminal
            && std::io::stderr().is_terminal()
    }
}

/// `512 B`, `4.0 KiB`, `1.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1 member`, `3 members`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// The first non-empty line of a tool's output (e.g. a version), trimmed.
pub fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// The last non-empty line of an error (where tools put the cause), at most 160 characters.
pub fn last_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(160)
        .collect()
}

/// A borderless, kubectl-style table with upper-case headers; columns listed in
/// `right_aligned` hold numbers.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>, right_aligned: &[usize]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        t.add_row(row);
    }
    for (i, column) in t.column_iter_mut().enumerate() {
        column.set_padding((0, 2));
        column.set_constraint(ColumnConstraint::ContentWidth);
        if right_aligned.contains(&i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn first_and_last_lines() {
        assert_eq!(
            super::first_line("\n  Vagrant 2.4.3\nmore\n"),
            "Vagrant 2.4.3"
        );
        assert_eq!(
            super::last_line("context\nUnable to connect\n\n"),
            "Unable to connect"
        );
        assert_eq!(super::last_line(""), "");
    }

    #[test]
    fn tables_are_aligned_and_trimmed() {
        let t = super::table(
            &["name", "cpus"],
            vec![
                vec!["control-plane-1".into(), "2".into()],
                vec!["w".into(), "16".into()],
            ],
            &[1],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "NAME             CPUS");
        assert_eq!(lines[1], "control-plane-1     2");
        assert_eq!(lines[2], "w                  16");
    }
}
