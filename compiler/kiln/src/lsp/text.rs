//! Offsets and positions: kiln's spans are byte offsets, the protocol counts lines and
//! UTF-16 code units.

use lsp_types::{Position, Range};

/// The line starts of a text, to turn byte offsets into positions and back.
pub struct LineIndex<'t> {
    text: &'t str,
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> LineIndex<'t> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    pub fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let character = self.text[start..floor_char(self.text, offset)]
            .chars()
            .map(char::len_utf16)
            .sum::<usize>();
        Position::new(to_u32(line), to_u32(character))
    }

    pub fn range(&self, start: usize, end: usize) -> Range {
        Range::new(self.position(start), self.position(end))
    }

    /// The byte offset of a position; past the end of a line is its end, past the last line
    /// the end of the text.
    pub fn offset(&self, position: Position) -> usize {
        let Some(&start) = self.starts.get(position.line as usize) else {
            return self.text.len();
        };
        let end = self
            .starts
            .get(position.line as usize + 1)
            .map_or(self.text.len(), |&next| next - 1);
        let mut units = 0usize;
        for (i, c) in self.text[start..end].char_indices() {
            if units >= position.character as usize {
                return start + i;
            }
            units += c.len_utf16();
        }
        end
    }

    /// The range of the whole text.
    pub fn all(&self) -> Range {
        self.range(0, self.text.len())
    }
}

fn floor_char(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_utf16_units() {
        let text = "a\n€x 𝄞y\n";
        let index = LineIndex::new(text);
        for (offset, line, character) in [(0, 0, 0), (2, 1, 0), (5, 1, 1), (7, 1, 3), (11, 1, 5)] {
            let p = index.position(offset);
            assert_eq!((p.line, p.character), (line, character), "offset {offset}");
            assert_eq!(index.offset(p), offset);
        }
        assert_eq!(index.offset(Position::new(0, 99)), 1);
        assert_eq!(index.offset(Position::new(9, 0)), text.len());
    }
}
