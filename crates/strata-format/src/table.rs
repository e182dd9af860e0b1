//! Go's `text/tabwriter` column algorithm, which Docker's tables go through
//! with `NewWriter(out, 10, 1, 3, ' ', 0)`.
//!
//! Text is split into cells at `\t` (and `\v`); a line ends at `\n` (or
//! `\f`). Cells are tab-terminated, so the last cell of a line belongs to no
//! column. A column block is a run of consecutive lines that have a cell in
//! that column; its width is the widest cell plus the padding, and at least
//! the minimum width. Blocks are found column by column, left to right, so
//! a short line ends the blocks of every column it does not reach.

/// One cell of buffered text.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    /// Length in bytes.
    size: usize,
    /// Width in characters.
    width: usize,
    /// Terminated by a tab (not `\v`).
    htab: bool,
}

/// A port of Go's `tabwriter.Writer` with flags 0: text in, aligned text out.
///
/// ```
/// let mut tw = strata_format::TabWriter::docker();
/// tw.write_str("CONTAINER ID\tSIZE\nabc\t1kB\n");
/// assert_eq!(tw.flush(), "CONTAINER ID   SIZE\nabc            1kB\n");
/// ```
#[derive(Debug, Clone)]
pub struct TabWriter {
    minwidth: usize,
    tabwidth: usize,
    padding: usize,
    padchar: char,
    buf: String,
    cell: Cell,
    lines: Vec<Vec<Cell>>,
    widths: Vec<usize>,
    out: String,
}

impl TabWriter {
    /// Go's `tabwriter.NewWriter(out, minwidth, tabwidth, padding, padchar, 0)`.
    pub fn new(minwidth: usize, tabwidth: usize, padding: usize, padchar: char) -> Self {
        TabWriter {
            minwidth,
            tabwidth,
            padding,
            padchar,
            buf: String::new(),
            cell: Cell::default(),
            lines: vec![Vec::new()],
            widths: Vec::new(),
            out: String::new(),
        }
    }

    /// The writer Docker's tables use: minwidth 10, tabwidth 1, padding 3, spaces.
    pub fn docker() -> Self {
        Self::new(10, 1, 3, ' ')
    }

    /// Buffers text; complete blocks are formatted as soon as they are known.
    pub fn write_str(&mut self, text: &str) {
        let mut n = 0;
        for (i, ch) in text.char_indices() {
            if !matches!(ch, '\t' | '\u{b}' | '\n' | '\u{c}') {
                continue;
            }
            self.append(&text[n..i]);
            n = i + 1;
            let ncells = self.terminate_cell(ch == '\t');
            if ch == '\n' || ch == '\u{c}' {
                self.lines.push(Vec::new());
                if ch == '\u{c}' || ncells == 1 {
                    // A line with a single cell cannot affect the lines after
                    // it (its only cell is in no column): flush.
                    self.flush_buffered();
                }
            }
        }
        self.append(&text[n..]);
    }

    /// Formats everything buffered and returns all output not yet returned.
    pub fn flush(&mut self) -> String {
        self.flush_buffered();
        std::mem::take(&mut self.out)
    }

    fn append(&mut self, s: &str) {
        self.buf.push_str(s);
        self.cell.size += s.len();
        self.cell.width += s.chars().count();
    }

    fn terminate_cell(&mut self, htab: bool) -> usize {
        self.cell.htab = htab;
        let cell = std::mem::take(&mut self.cell);
        match self.lines.last_mut() {
            Some(line) => {
                line.push(cell);
                line.len()
            }
            None => {
                self.lines.push(vec![cell]);
                1
            }
        }
    }

    fn flush_buffered(&mut self) {
        if self.cell.size > 0 {
            self.terminate_cell(false);
        }
        let n = self.lines.len();
        self.format(0, 0, n);
        self.buf.clear();
        self.cell = Cell::default();
        self.lines = vec![Vec::new()];
        self.widths.clear();
    }

    /// Go's `format`: lays out lines `line0..line1` given the widths of the
    /// columns left of `self.widths.len()`; returns the new buffer position.
    fn format(&mut self, pos0: usize, line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        let column = self.widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // This line has a cell in this column: a column block starts.
            pos = self.write_lines(pos, line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].width + self.padding);
                this += 1;
            }
            self.widths.push(width);
            pos = self.format(pos, line0, this);
            self.widths.pop();
            line0 = this;
            this += 1;
        }
        self.write_lines(pos, line0, line1)
    }

    fn write_lines(&mut self, pos0: usize, line0: usize, line1: usize) -> usize {
        let mut pos = pos0;
        for i in line0..line1 {
            for (j, c) in self.lines[i].iter().enumerate() {
                if c.size > 0 {
                    self.out.push_str(&self.buf[pos..pos + c.size]);
                    pos += c.size;
                }
                if let Some(&w) = self.widths.get(j) {
                    write_padding(&mut self.out, self.padchar, self.tabwidth, c.width, w);
                }
            }
            if i + 1 == self.lines.len() {
                // The last buffered line: write the pending partial cell.
                self.out.push_str(&self.buf[pos..pos + self.cell.size]);
                pos += self.cell.size;
            } else {
                self.out.push('\n');
            }
        }
        pos
    }
}

fn write_padding(out: &mut String, padchar: char, tabwidth: usize, textw: usize, cellw: usize) {
    if padchar == '\t' {
        if tabwidth == 0 {
            return;
        }
        let cellw = cellw.div_ceil(tabwidth) * tabwidth;
        let n = cellw.saturating_sub(textw);
        out.extend(std::iter::repeat_n('\t', n.div_ceil(tabwidth)));
        return;
    }
    out.extend(std::iter::repeat_n(padchar, cellw.saturating_sub(textw)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docker(text: &str) -> String {
        let mut tw = TabWriter::docker();
        tw.write_str(text);
        tw.flush()
    }

    #[test]
    fn two_columns_docker_style() {
        assert_eq!(
            docker("CONTAINER ID\tSIZE\nabc123\t1.23kB\ndef\t10MB\n"),
            concat!(
                "CONTAINER ID   SIZE\n", // 12 chars + 3 padding = 15
                "abc123         1.23kB\n",
                "def            10MB\n",
            )
        );
    }

    #[test]
    fn minwidth_applies_to_narrow_columns() {
        // Widest cell 2 + padding 3 = 5 < minwidth 10.
        assert_eq!(docker("a\tb\nab\tc\n"), "a         b\nab        c\n");
    }

    #[test]
    fn last_cell_of_a_line_is_not_a_column() {
        // The long trailing cells do not widen anything.
        assert_eq!(
            docker("x\tvery long trailing text\ny\tz\n"),
            "x         very long trailing text\ny         z\n"
        );
    }

    #[test]
    fn column_blocks_end_at_shorter_lines() {
        // Line 0 has three cells, line 1 two: column 1's block is line 0
        // alone, column 0's block spans both lines.
        assert_eq!(
            docker("a\tb\tc\naaaaaaaaaaaa\tb\n"),
            "a              b         c\naaaaaaaaaaaa   b\n"
        );
    }

    #[test]
    fn a_single_cell_line_separates_blocks() {
        // "b" is not widened to the first block's 19 columns.
        assert_eq!(
            docker("aaaaaaaaaaaaaaaa\tx\nsingle\nb\ty\n"),
            "aaaaaaaaaaaaaaaa   x\nsingle\nb         y\n"
        );
    }

    #[test]
    fn blocks_nest_per_column() {
        // Column 0 spans all three lines; column 1 only the first two, whose
        // widest cell is 12 wide.
        let out = docker("a\tbbbbbbbbbbbb\tc\nd\te\tf\ng\th\n");
        assert_eq!(
            out,
            concat!(
                "a         bbbbbbbbbbbb   c\n",
                "d         e              f\n",
                "g         h\n",
            )
        );
    }

    #[test]
    fn empty_cells_are_padded() {
        assert_eq!(
            docker("\tx\nlonger-than-ten\ty\n"),
            "                  x\nlonger-than-ten   y\n"
        );
    }

    #[test]
    fn widths_count_characters() {
        assert_eq!(
            docker("héllo wörld\tx\na\ty\n"),
            "héllo wörld   x\na             y\n"
        );
    }

    #[test]
    fn partial_last_line_has_no_newline() {
        assert_eq!(docker("a\tb\nc\td"), "a         b\nc         d");
        assert_eq!(docker(""), "");
        assert_eq!(docker("no tabs at all\n"), "no tabs at all\n");
    }

    #[test]
    fn writes_may_split_cells_anywhere() {
        let mut tw = TabWriter::docker();
        for piece in ["CONT", "AINER ID\tSI", "ZE\na", "bc\t1kB", "\n"] {
            tw.write_str(piece);
        }
        assert_eq!(tw.flush(), "CONTAINER ID   SIZE\nabc            1kB\n");
    }

    #[test]
    fn vertical_tab_and_form_feed() {
        // \v terminates a cell like \t; \f ends the line and flushes.
        assert_eq!(docker("a\u{b}b\nc\u{b}d\n"), "a         b\nc         d\n");
        assert_eq!(
            docker("aaaaaaaaaaaaaaaa\tx\u{c}b\ty\n"),
            "aaaaaaaaaaaaaaaa   x\nb         y\n"
        );
    }

    #[test]
    fn tab_padding() {
        let mut tw = TabWriter::new(0, 8, 1, '\t');
        tw.write_str("a\tb\nccccccccc\td\n");
        // Widest cell 9 + padding 1 = 10, rounded up to 16: a needs 2 tabs.
        assert_eq!(tw.flush(), "a\t\tb\nccccccccc\td\n");
    }

    #[test]
    fn flush_returns_only_new_output() {
        let mut tw = TabWriter::docker();
        tw.write_str("a\tb\n");
        assert_eq!(tw.flush(), "a         b\n");
        tw.write_str("c\td\n");
        assert_eq!(tw.flush(), "c         d\n");
    }

    #[test]
    fn random_input_keeps_text_and_lines() {
        let alphabet = ['a', 'é', ' ', '\t', '\n', '\u{b}', '\u{c}'];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let input: String = (0..len)
                .map(|k| alphabet[((state >> (k % 50)) as usize + k) % alphabet.len()])
                .collect();
            let out = docker(&input);
            let visible = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            assert_eq!(visible(&out), visible(&input), "{input:?}");
            let breaks = input
                .chars()
                .filter(|c| matches!(c, '\n' | '\u{c}'))
                .count();
            assert_eq!(out.matches('\n').count(), breaks, "{input:?} -> {out:?}");
        }
    }
}
