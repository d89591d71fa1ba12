//! Terminal facts (TTY, colours, width), aligned tables and progress bars. Pure apart from
//! [`Terminal::detect`].

use std::io::IsTerminal as _;

/// What the output may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terminal {
    /// stdout is a terminal: redraw in place, unicode bars.
    pub tty: bool,
    /// Colours (a terminal, no `--no-color`, `NO_COLOR` unset or empty).
    pub colour: bool,
    /// Columns.
    pub width: usize,
}

impl Terminal {
    /// Looks at stdout and the environment.
    pub fn detect(no_color: bool) -> Terminal {
        let tty = std::io::stdout().is_terminal();
        let colour = colour_allowed(tty, no_color, std::env::var_os("NO_COLOR").as_deref());
        console::set_colors_enabled(colour);
        let width = console::Term::stdout().size_checked().map_or(120, |(_, w)| usize::from(w));
        Terminal { tty, colour, width }
    }

    /// Not a terminal: no colours, ASCII bars (tests and pipes).
    pub fn plain() -> Terminal {
        Terminal { tty: false, colour: false, width: 120 }
    }
}

/// Colours only on a terminal, without `--no-color` and without a non-empty `NO_COLOR`
/// (<https://no-color.org>).
pub fn colour_allowed(tty: bool, no_color_flag: bool, no_color_env: Option<&std::ffi::OsStr>) -> bool {
    tty && !no_color_flag && no_color_env.is_none_or(|v| v.is_empty())
}

/// A progress bar of `cells` cells for `percent` (clamped to 0..=100): `████░░░░` on a
/// terminal, `####----` otherwise.
pub fn bar(percent: i64, cells: usize, unicode: bool) -> String {
    let percent = usize::try_from(percent.clamp(0, 100)).unwrap_or(0);
    let filled = percent * cells / 100;
    let (full, empty) = if unicode { ('█', '░') } else { ('#', '-') };
    std::iter::repeat_n(full, filled).chain(std::iter::repeat_n(empty, cells - filled)).collect()
}

/// How a cell is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
    Info,
    Dim,
}

/// One cell: its text and tone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub tone: Tone,
}

impl Cell {
    /// A plain cell.
    pub fn new(text: impl Into<String>) -> Cell {
        Cell { text: text.into(), tone: Tone::Plain }
    }

    /// A coloured cell.
    pub fn toned(text: impl Into<String>, tone: Tone) -> Cell {
        Cell { text: text.into(), tone }
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell::new(text)
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::new(text)
    }
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table as kubectl prints them: upper-case headers, columns separated by three spaces.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these columns.
    pub fn new(headers: &[(&str, Align)]) -> Table {
        Table { headers: headers.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are empty).
    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The lines: header first. Colours only when `colour`.
    pub fn lines(&self, colour: bool) -> Vec<String> {
        let mut widths: Vec<usize> = self.headers.iter().map(|(h, _)| console::measure_text_width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(widths.len()) {
                widths[i] = widths[i].max(console::measure_text_width(&cell.text));
            }
        }
        let header: Vec<Cell> = self.headers.iter().map(|(h, _)| Cell::new(h.clone())).collect();
        std::iter::once(&header).chain(&self.rows).map(|row| self.line(row, &widths, colour)).collect()
    }

    fn line(&self, row: &[Cell], widths: &[usize], colour: bool) -> String {
        let mut out = String::new();
        for (i, (_, align)) in self.headers.iter().enumerate() {
            let empty = Cell::new("");
            let cell = row.get(i).unwrap_or(&empty);
            let pad = widths[i].saturating_sub(console::measure_text_width(&cell.text));
            let text = paint(&cell.text, cell.tone, colour);
            let last = i + 1 == self.headers.len();
            match align {
                Align::Left if last => out.push_str(&text),
                Align::Left => {
                    out.push_str(&text);
                    out.push_str(&" ".repeat(pad));
                }
                Align::Right => {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(&text);
                }
            }
            if !last {
                out.push_str("   ");
            }
        }
        out.trim_end().to_owned()
    }
}

/// `text` in the colour of `tone` (unchanged without colours).
pub fn paint(text: &str, tone: Tone, colour: bool) -> String {
    if !colour || text.is_empty() {
        return text.to_owned();
    }
    let style = console::Style::new().force_styling(true);
    let style = match tone {
        Tone::Plain => return text.to_owned(),
        Tone::Good => style.green(),
        Tone::Bad => style.red().bold(),
        Tone::Warn => style.yellow(),
        Tone::Info => style.cyan(),
        Tone::Dim => style.dim(),
    };
    style.apply_to(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_in_proportion_and_clamp() {
        assert_eq!(bar(0, 10, false), "----------");
        assert_eq!(bar(42, 10, false), "####------");
        assert_eq!(bar(100, 10, false), "##########");
        assert_eq!(bar(250, 4, false), "####");
        assert_eq!(bar(-3, 4, false), "----");
        assert_eq!(bar(50, 4, true), "██░░");
    }

    #[test]
    fn colours_need_a_terminal_and_no_opt_out() {
        use std::ffi::OsStr;
        let cases = [
            (true, false, None, true),
            (false, false, None, false),
            (true, true, None, false),
            (true, false, Some(OsStr::new("1")), false),
            (true, false, Some(OsStr::new("")), true),
        ];
        for (tty, flag, env, want) in cases {
            assert_eq!(colour_allowed(tty, flag, env), want, "{tty} {flag} {env:?}");
        }
    }

    #[test]
    fn tables_align_columns_and_colour_only_when_asked() {
        let mut t = Table::new(&[("NAME", Align::Left), ("SENT", Align::Right), ("PHASE", Align::Left)]);
        t.row(vec!["a".into(), "5".into(), Cell::toned("Complete", Tone::Good)]);
        t.row(vec!["longer".into(), "1200".into(), Cell::toned("Running", Tone::Info)]);
        assert_eq!(t.lines(false), ["NAME     SENT   PHASE", "a           5   Complete", "longer   1200   Running"]);
        let coloured = t.lines(true);
        assert!(coloured[1].contains("\u{1b}["), "{coloured:?}");
        assert_eq!(console::strip_ansi_codes(&coloured[1]), "a           5   Complete");
    }
}
