//! Builds a generated file line by line, remembering which model values
//! (JSON pointers) each line came from, for `kiln explain` and `kiln diff`.

use kiln_core::Artifact;

#[derive(Debug, Default)]
pub struct Writer {
    text: String,
    lines: Vec<Vec<String>>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Appends one line (no newline inside) produced from the given model pointers.
    pub fn line(&mut self, line: impl AsRef<str>, from: &[&str]) {
        let line = line.as_ref();
        debug_assert!(!line.contains('\n'), "one line at a time: {line:?}");
        self.text.push_str(line.trim_end());
        self.text.push('\n');
        self.lines.push(from.iter().map(|s| s.to_string()).collect());
    }

    pub fn blank(&mut self) {
        self.line("", &[]);
    }

    /// Appends several lines from the same pointers.
    pub fn lines(&mut self, text: &str, from: &[&str]) {
        for l in text.lines() {
            self.line(l, from);
        }
    }

    pub fn finish(self, path: impl Into<String>) -> Artifact {
        Artifact { path: path.into(), text: self.text, lines: self.lines }
    }
}
