//! A KDL v2 reader (<https://kdl.dev>, the grammar of `draft-marchan-kdl2`) that builds kiln's
//! [`Node`] tree directly, with the spans kiln's diagnostics need.
//!
//! Why not the `kdl` crate: it keeps every token's formatting, which costs about 600 bytes of
//! memory per byte of input, reads 0.4–4 MB/s, and recurses once per nesting level, so that a
//! 4 KB spec of 2 000 nested blocks overflows the stack (issue 12, D7 and D13). This reader
//! keeps only what kiln uses, runs in linear time with no recursion (nesting is an explicit
//! stack, capped at [`MAX_DEPTH`]), and reads comments at hundreds of MB/s. Its behaviour is
//! pinned to the `kdl` crate's by a differential test over the official KDL test suite and
//! kiln's own specs (`tests/reader.rs`).
//!
//! It stops at the first syntax error; everything after it would be guesswork.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};
use crate::syntax::{Layer, Node, Scalar, Value};

/// How many children blocks may nest. kiln's own specs nest five levels; later stages
/// (layering, lowering, formatting) walk trees recursively, so the cap also bounds their
/// stack.
pub const MAX_DEPTH: usize = 64;

/// A syntax error: where, what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub start: usize,
    pub end: usize,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl SyntaxError {
    fn with_help(mut self, help: impl Into<String>) -> SyntaxError {
        self.help = Some(help.into());
        self
    }
}

/// What reading a document gives: its nodes and the problems that are not syntax errors
/// (type annotations on values, integers out of range), or its first syntax error.
pub type ReadResult = Result<(Vec<Node>, Vec<Diagnostic>), SyntaxError>;

/// Reads one KDL document.
pub fn read(text: &str, file: FileId) -> ReadResult {
    let mut r = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        file,
        diags: Vec::new(),
        empty_layer: Layer::from(""),
        dropping: 0,
    };
    let nodes = r.document()?;
    Ok((nodes, r.diags))
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    file: FileId,
    diags: Vec<Diagnostic>,
    empty_layer: Layer,
    /// How many slashdashed elements the cursor is inside: their problems are not reported.
    dropping: usize,
}

/// A node whose children block is being read.
struct Frame {
    node: Node,
    /// The node is slashdashed (`/-node { … }`): read, then dropped.
    node_dropped: bool,
    /// This block is slashdashed (`node /-{ … }`).
    block_dropped: bool,
    /// The node already has a (kept) children block.
    has_block: bool,
    /// Where the block's `{` is.
    open: usize,
    children: Vec<Node>,
}

/// What follows a node's entries.
enum After {
    /// A children block, slashdashed or not.
    Block { dropped: bool },
    /// The node ends here.
    End,
}

fn is_unicode_space(c: char) -> bool {
    matches!(
        c,
        '\t' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

fn is_newline(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\u{85}' | '\u{b}' | '\u{c}' | '\u{2028}' | '\u{2029}'
    )
}

/// Code points that may not appear literally anywhere in a KDL document.
fn is_disallowed(c: char) -> bool {
    matches!(
        c,
        '\u{0}'..='\u{8}'
            | '\u{e}'..='\u{1f}'
            | '\u{7f}'
            | '\u{200e}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

fn is_identifier_char(c: char) -> bool {
    !(is_unicode_space(c)
        || is_newline(c)
        || is_disallowed(c)
        || matches!(
            c,
            '\\' | '/' | '(' | ')' | '{' | '}' | ';' | '[' | ']' | '"' | '#' | '='
        ))
}

impl<'a> Reader<'a> {
    // ---------------------------------------------------------------- low level

    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.text.get(self.pos + offset..)?.chars().next()
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn starts(&self, s: &str) -> bool {
        self.rest().starts_with(s)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(
        &self,
        start: usize,
        end: usize,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> SyntaxError {
        SyntaxError {
            start,
            end: end.max(start),
            message: message.into(),
            label: label.into(),
            help: None,
        }
    }

    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end - start)
    }

    /// The span of the character at the cursor (empty at the end).
    fn here(&self) -> (usize, usize) {
        (self.pos, self.pos + self.peek().map_or(0, char::len_utf8))
    }

    fn unexpected(&self, expected: &str) -> SyntaxError {
        let (start, end) = self.here();
        match self.peek() {
            None => self.error(
                start,
                end,
                format!("expected {expected}, found the end of the file"),
                "the file ends here",
            ),
            Some(c) if is_disallowed(c) => self.disallowed(start, c),
            Some(c) => self.error(
                start,
                end,
                format!("expected {expected}, found `{}`", c.escape_debug()),
                format!("expected {expected}"),
            ),
        }
    }

    fn disallowed(&self, at: usize, c: char) -> SyntaxError {
        self.error(
            at,
            at + c.len_utf8(),
            format!(
                "the character U+{:04X} may not appear in a KDL document",
                c as u32
            ),
            "not allowed here",
        )
        .with_help("remove it; control and text-direction characters are never allowed literally")
    }

    // ---------------------------------------------------------------- whitespace

    /// Skips a newline (CRLF counts as one); whether there was one.
    fn newline(&mut self) -> bool {
        if self.starts("\r\n") {
            self.pos += 2;
            return true;
        }
        match self.peek() {
            Some(c) if is_newline(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    /// The body of a `//` comment (the cursor just after `//`), up to its newline, which is
    /// left for the caller. A byte loop: comments are read at memory speed.
    fn line_comment_body(&mut self) -> Result<(), SyntaxError> {
        let bytes = self.bytes;
        let mut i = self.pos;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\n' | b'\r' | 0x0b | 0x0c => break,
                0x20..=0x7e | b'\t' => i += 1,
                _ if b < 0x80 => {
                    return Err(self.disallowed(i, b as char));
                }
                _ => {
                    // A multi-byte character: NEL, LS and PS end the comment; the
                    // disallowed ones are refused.
                    let c = self.text[i..].chars().next().expect("a character");
                    if is_newline(c) {
                        break;
                    }
                    if is_disallowed(c) {
                        return Err(self.disallowed(i, c));
                    }
                    i += c.len_utf8();
                }
            }
        }
        self.pos = i;
        Ok(())
    }

    /// A `/* … */` comment, nested ones included (the cursor at `/*`).
    fn block_comment(&mut self) -> Result<(), SyntaxError> {
        let open = self.pos;
        self.pos += 2;
        let mut depth = 1usize;
        let bytes = self.bytes;
        while self.pos < bytes.len() {
            match bytes[self.pos] {
                b'*' if bytes.get(self.pos + 1) == Some(&b'/') => {
                    self.pos += 2;
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                b'/' if bytes.get(self.pos + 1) == Some(&b'*') => {
                    self.pos += 2;
                    depth += 1;
                }
                b if b < 0x80 => {
                    if is_disallowed(b as char) {
                        return Err(self.disallowed(self.pos, b as char));
                    }
                    self.pos += 1;
                }
                _ => {
                    let c = self.peek().expect("a character");
                    if is_disallowed(c) {
                        return Err(self.disallowed(self.pos, c));
                    }
                    self.pos += c.len_utf8();
                }
            }
        }
        let e = self
            .error(
                open,
                open + 2,
                "this comment is never closed",
                "opened here",
            )
            .with_help("close it with `*/`");
        Err(e)
    }

    /// `ws*`: spaces and `/* */` comments. Whether anything was skipped.
    fn ws(&mut self) -> Result<bool, SyntaxError> {
        let start = self.pos;
        loop {
            match self.peek() {
                Some(' ' | '\t') => self.pos += 1,
                Some('/') if self.peek_at(1) == Some('*') => self.block_comment()?,
                Some(c) if is_unicode_space(c) => self.pos += c.len_utf8(),
                _ => return Ok(self.pos > start),
            }
        }
    }

    /// An escline (`\` ws* (comment | newline | eof)) at the cursor, if there is one.
    fn escline(&mut self) -> Result<bool, SyntaxError> {
        if self.peek() != Some('\\') {
            return Ok(false);
        }
        let at = self.pos;
        self.pos += 1;
        self.ws()?;
        if self.starts("//") {
            self.pos += 2;
            self.line_comment_body()?;
            self.newline();
            return Ok(true);
        }
        if self.newline() || self.pos == self.text.len() {
            return Ok(true);
        }
        let e = self
            .error(
                at,
                at + 1,
                "a `\\` outside a string must end its line",
                "line continuation",
            )
            .with_help("put nothing but spaces or a comment after `\\`, or remove it");
        Err(e)
    }

    /// `node-space*`: spaces, `/* */` comments and line continuations. Whether any.
    fn node_space(&mut self) -> Result<bool, SyntaxError> {
        let start = self.pos;
        loop {
            self.ws()?;
            if !self.escline()? {
                return Ok(self.pos > start);
            }
        }
    }

    /// `line-space*`: everything between nodes (not slashdashes).
    fn line_space(&mut self) -> Result<(), SyntaxError> {
        loop {
            self.node_space()?;
            if self.starts("//") {
                self.pos += 2;
                self.line_comment_body()?;
            } else if !self.newline() {
                return Ok(());
            }
        }
    }

    /// A slashdash (`/-` line-space*) at the cursor, if there is one.
    fn slashdash(&mut self) -> Result<bool, SyntaxError> {
        if !self.starts("/-") {
            return Ok(false);
        }
        self.pos += 2;
        self.line_space()?;
        if self.starts("/-") {
            let (s, e) = (self.pos, self.pos + 2);
            let err = self
                .error(
                    s,
                    e,
                    "a slashdash cannot comment out another slashdash",
                    "second `/-`",
                )
                .with_help("remove one `/-`");
            return Err(err);
        }
        Ok(true)
    }

    // ---------------------------------------------------------------- document

    fn document(&mut self) -> Result<Vec<Node>, SyntaxError> {
        if self.starts("\u{feff}") {
            self.pos += 3;
        }
        let mut root: Vec<Node> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        loop {
            self.line_space()?;
            match self.peek() {
                None => {
                    if let Some(frame) = stack.last() {
                        let e = self
                            .error(
                                frame.open,
                                frame.open + 1,
                                "this block is never closed",
                                "opened here",
                            )
                            .with_help("add the missing `}`");
                        return Err(e);
                    }
                    return Ok(root);
                }
                Some('}') => {
                    let Some(mut frame) = stack.pop() else {
                        let (s, e) = self.here();
                        let err = self
                            .error(s, e, "unexpected `}`", "no block to close")
                            .with_help("remove it, or add the `{` it closes");
                        return Err(err);
                    };
                    self.pos += 1;
                    if frame.block_dropped {
                        self.dropping -= 1;
                    } else {
                        frame.node.children.append(&mut frame.children);
                        frame.has_block = true;
                    }
                    frame.node.span.end = self.pos as u32;
                    // More blocks may follow (slashdashed ones; a kept one if none yet).
                    match self.after_block()? {
                        After::Block { dropped } => self.open_block(&mut stack, frame, dropped)?,
                        After::End => {
                            self.terminator(!stack.is_empty())?;
                            if frame.node_dropped {
                                self.dropping -= 1;
                            } else {
                                let parent =
                                    stack.last_mut().map_or(&mut root, |f| &mut f.children);
                                parent.push(frame.node);
                            }
                        }
                    }
                }
                Some(_) => {
                    let dropped = self.slashdash()?;
                    if dropped {
                        self.dropping += 1;
                    }
                    let (node, after) = self.node_header()?;
                    match after {
                        After::Block {
                            dropped: block_dropped,
                        } => {
                            let frame = Frame {
                                node,
                                node_dropped: dropped,
                                block_dropped: false,
                                has_block: false,
                                open: 0,
                                children: Vec::new(),
                            };
                            self.open_block(&mut stack, frame, block_dropped)?;
                        }
                        After::End => {
                            self.terminator(!stack.is_empty())?;
                            if dropped {
                                self.dropping -= 1;
                            } else {
                                let parent =
                                    stack.last_mut().map_or(&mut root, |f| &mut f.children);
                                parent.push(node);
                            }
                        }
                    }
                }
            }
        }
    }

    /// The cursor is at a block's `{`: pushes the node's frame.
    fn open_block(
        &mut self,
        stack: &mut Vec<Frame>,
        mut frame: Frame,
        dropped: bool,
    ) -> Result<(), SyntaxError> {
        if stack.len() >= MAX_DEPTH {
            let (s, e) = self.here();
            let err = self
                .error(
                    s,
                    e,
                    format!("blocks nest more than {MAX_DEPTH} deep"),
                    "one level too many",
                )
                .with_help("a kiln spec needs a handful of levels; flatten this");
            return Err(err);
        }
        if !dropped && frame.has_block {
            let (s, e) = self.here();
            let err = self
                .error(
                    s,
                    e,
                    "a node has at most one children block",
                    "a second block",
                )
                .with_help("merge the two blocks");
            return Err(err);
        }
        frame.open = self.pos;
        frame.block_dropped = dropped;
        frame.children = Vec::new();
        if dropped {
            self.dropping += 1;
        }
        self.pos += 1;
        stack.push(frame);
        Ok(())
    }

    /// After a children block: another block (`/-{` or `{`), or the end of the node.
    fn after_block(&mut self) -> Result<After, SyntaxError> {
        let save = self.pos;
        self.node_space()?;
        if self.starts("/-") {
            self.slashdash()?;
            if self.peek() == Some('{') {
                return Ok(After::Block { dropped: true });
            }
            return Err(self.entry_after_block());
        }
        match self.peek() {
            Some('{') => Ok(After::Block { dropped: false }),
            _ => {
                if self.pos == save || self.at_terminator() {
                    return Ok(After::End);
                }
                Err(self.entry_after_block())
            }
        }
    }

    fn entry_after_block(&self) -> SyntaxError {
        let (s, e) = self.here();

        self.error(
            s,
            e,
            "nothing but another block may follow a node's children block",
            "unexpected here",
        )
        .with_help(
            "put arguments and properties before the `{`, or end the node with a newline or `;`",
        )
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None | Some(';' | '}') => true,
            Some('/') => self.peek_at(1) == Some('/'),
            Some(c) => is_newline(c),
        }
    }

    /// A node terminator: newline, `;`, `//` comment, end of file, or (inside a block, not
    /// consumed) `}`.
    fn terminator(&mut self, in_block: bool) -> Result<(), SyntaxError> {
        match self.peek() {
            None => Ok(()),
            Some(';') => {
                self.pos += 1;
                Ok(())
            }
            Some('}') if in_block => Ok(()),
            Some('/') if self.peek_at(1) == Some('/') => {
                self.pos += 2;
                self.line_comment_body()
            }
            Some(c) if is_newline(c) => {
                self.newline();
                Ok(())
            }
            _ => Err(self.unexpected("the end of the node (a newline or `;`)")),
        }
    }

    // ---------------------------------------------------------------- nodes

    /// A node up to its children block or its end.
    fn node_header(&mut self) -> Result<(Node, After), SyntaxError> {
        let start = self.pos;
        let annotation = match self.peek() {
            Some('(') => {
                let ty = self.type_annotation()?;
                self.node_space()?;
                Some(ty)
            }
            _ => None,
        };
        let name_start = self.pos;
        let Some(name) = self.string()? else {
            return Err(self.unexpected("a node name"));
        };
        let name_span = self.span(name_start, self.pos);
        let mut node = Node {
            name,
            name_span,
            span: self.span(start, self.pos),
            annotation,
            args: Vec::new(),
            children: Vec::new(),
            from_prop: false,
            layer: self.empty_layer.clone(),
            overrides: Vec::new(),
        };
        loop {
            let spaced = self.node_space()?;
            if self.at_terminator() {
                node.span.end = self.pos as u32;
                return Ok((node, After::End));
            }
            match self.peek() {
                Some('{') => {
                    node.span.end = self.pos as u32;
                    return Ok((node, After::Block { dropped: false }));
                }
                Some('/') if self.peek_at(1) == Some('-') => {
                    self.slashdash()?;
                    if self.peek() == Some('{') {
                        node.span.end = self.pos as u32;
                        return Ok((node, After::Block { dropped: true }));
                    }
                    self.dropping += 1;
                    let entry = self.entry();
                    self.dropping -= 1;
                    entry?;
                }
                _ if !spaced => {
                    return Err(self.unexpected("a space before the next argument or property"));
                }
                _ => {
                    match self.entry()? {
                        Entry::Arg(arg) => node.args.push(arg),
                        Entry::Prop(prop) => node.children.push(prop),
                    }
                    node.span.end = self.pos as u32;
                }
            }
        }
    }

    /// `(string)`, with optional spaces inside; its string and the string's span.
    fn type_annotation(&mut self) -> Result<(String, Span), SyntaxError> {
        let open = self.pos;
        self.pos += 1;
        self.node_space()?;
        let start = self.pos;
        let Some(ty) = self.string()? else {
            return Err(self.unexpected("a type name after `(`"));
        };
        let span = self.span(start, self.pos);
        self.node_space()?;
        if self.peek() != Some(')') {
            let mut e = self.unexpected("`)`");
            e.label = format!("the `(` at byte {open} is not closed");
            return Err(e);
        }
        self.pos += 1;
        Ok((ty, span))
    }

    /// An argument or a property.
    fn entry(&mut self) -> Result<Entry, SyntaxError> {
        let start = self.pos;
        let ty = match self.peek() {
            Some('(') => {
                let ty = self.type_annotation()?;
                self.node_space()?;
                Some(ty)
            }
            _ => None,
        };
        let value_start = self.pos;
        let token = self.value()?;
        // A string followed by `=` is a property's key.
        if ty.is_none()
            && let Value::Str(key) = &token
        {
            let save = self.pos;
            self.node_space()?;
            if self.peek() == Some('=') {
                let key_span = self.span(value_start, save);
                self.pos += 1;
                self.node_space()?;
                let vty = match self.peek() {
                    Some('(') => {
                        let ty = self.type_annotation()?;
                        self.node_space()?;
                        Some(ty)
                    }
                    _ => None,
                };
                let vtoken_start = self.pos;
                if self.at_terminator() || self.peek() == Some('{') {
                    let mut e = self.unexpected("a property value after `=`");
                    e.help = Some(format!("write a value: `{key}=\"…\"`"));
                    return Err(e);
                }
                let value = self.value()?;
                let value_span = self.span(vtoken_start, self.pos);
                let entry_span = self.span(start, self.pos);
                if let Some((ty, ty_span)) = vty {
                    self.annotation_on_value(&ty, ty_span);
                }
                self.check_text(&value, entry_span);
                return Ok(Entry::Prop(Node {
                    name: key.clone(),
                    name_span: key_span,
                    span: entry_span,
                    annotation: None,
                    args: vec![Scalar {
                        value,
                        span: value_span,
                    }],
                    children: Vec::new(),
                    from_prop: true,
                    layer: self.empty_layer.clone(),
                    overrides: Vec::new(),
                }));
            }
            self.pos = save;
        }
        let span = self.span(start, self.pos);
        if let Some((ty, ty_span)) = ty {
            self.annotation_on_value(&ty, ty_span);
        }
        self.check_text(&token, span);
        Ok(Entry::Arg(Scalar { value: token, span }))
    }

    /// A string value holding a control character (written as an escape: a literal one is a
    /// syntax error) would be copied raw into generated files.
    fn check_text(&mut self, value: &Value, span: Span) {
        let Value::Str(s) = value else { return };
        if self.dropping > 0 {
            return;
        }
        if let Some(c) = s
            .chars()
            .find(|&c| c.is_control() && c != '\n' && c != '\t')
        {
            self.diags.push(
                Diagnostic::error(
                    "invalid-value",
                    format!("the string holds the control character U+{:04X}", c as u32),
                )
                .with_label(span, "not allowed in a value")
                .with_help("generated files and the programs that read them cannot take control characters (only newlines and tabs); remove it"),
            );
        }
    }

    fn annotation_on_value(&mut self, ty: &str, span: Span) {
        if self.dropping > 0 {
            return;
        }
        self.diags.push(
            Diagnostic::error(
                "invalid-annotation",
                format!("type annotation `({ty})` on a value"),
            )
            .with_label(span, "not allowed here")
            .with_help("annotations are only used on nodes: `(remove)` and `(replace)`"),
        );
    }

    // ---------------------------------------------------------------- values

    /// A value: string, number or keyword.
    fn value(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        match self.peek() {
            Some('#') => match self.peek_at(1) {
                Some('"' | '#') => self.raw_string().map(Value::Str),
                _ => self.keyword(),
            },
            Some('"') => self.quoted_string().map(Value::Str),
            Some(c) if c.is_ascii_digit() => self.number(start),
            Some('+' | '-') if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => {
                self.number(start)
            }
            Some(c) if is_identifier_char(c) => self.identifier().map(Value::Str),
            _ => Err(self.unexpected("a value")),
        }
    }

    /// A string (identifier, quoted or raw), or `None` when the cursor is at none.
    fn string(&mut self) -> Result<Option<String>, SyntaxError> {
        match self.peek() {
            Some('"') => self.quoted_string().map(Some),
            Some('#') if matches!(self.peek_at(1), Some('"' | '#')) => self.raw_string().map(Some),
            Some(c) if c.is_ascii_digit() => {
                Err(self.unexpected("a name (a name cannot start with a digit)"))
            }
            Some('+' | '-') if self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) => {
                Err(self.unexpected("a name (a name cannot look like a number)"))
            }
            Some(c) if is_identifier_char(c) => self.identifier().map(Some),
            _ => Ok(None),
        }
    }

    fn identifier(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        // `.1` and `+.1` look like numbers without their leading digit.
        let body = self.rest();
        let after_sign = body.strip_prefix(['+', '-']).unwrap_or(body);
        if let Some(rest) = after_sign.strip_prefix('.')
            && rest.starts_with(|c: char| c.is_ascii_digit())
        {
            let end = self.scan_identifier(start);
            let e = self
                .error(
                    start,
                    end,
                    format!(
                        "`{}` is neither a number nor a name",
                        &self.text[start..end]
                    ),
                    "not a value",
                )
                .with_help(
                    "a number needs a digit before the point (`0.5`); anything else must be quoted",
                );
            return Err(e);
        }
        let end = self.scan_identifier(start);
        self.pos = end;
        let word = &self.text[start..end];
        if let Some(keyword) = match word {
            "true" | "false" | "null" | "inf" | "-inf" | "nan" => Some(word),
            _ => None,
        } {
            let e = self
                .error(
                    start,
                    end,
                    format!("`{keyword}` is not a value in KDL v2"),
                    "a bare keyword",
                )
                .with_help(format!("write `#{keyword}`, or \"{keyword}\" for the text"));
            return Err(e);
        }
        Ok(word.to_owned())
    }

    /// The end of the identifier that starts at `start`.
    fn scan_identifier(&self, start: usize) -> usize {
        let bytes = self.bytes;
        let mut i = start;
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if b.is_ascii_alphanumeric()
                    || matches!(
                        b,
                        b'-' | b'_'
                            | b'.'
                            | b'+'
                            | b'*'
                            | b'!'
                            | b'?'
                            | b'$'
                            | b'%'
                            | b'&'
                            | b'\''
                            | b','
                            | b':'
                            | b'<'
                            | b'>'
                            | b'@'
                            | b'^'
                            | b'`'
                            | b'|'
                            | b'~'
                    )
                {
                    i += 1;
                    continue;
                }
                break;
            }
            let c = self.text[i..].chars().next().expect("a character");
            if !is_identifier_char(c) {
                break;
            }
            i += c.len_utf8();
        }
        i
    }

    fn keyword(&mut self) -> Result<Value, SyntaxError> {
        let start = self.pos;
        let end = self.scan_identifier(start + 1);
        let value = match &self.text[start..end] {
            "#true" => Value::Bool(true),
            "#false" => Value::Bool(false),
            "#null" => Value::Null,
            "#inf" => Value::Float(f64::INFINITY),
            "#-inf" => Value::Float(f64::NEG_INFINITY),
            "#nan" => Value::Float(f64::NAN),
            other => {
                let e = self.error(
                    start,
                    end.max(start + 1),
                    format!("`{other}` is not a KDL keyword"),
                    "unknown keyword",
                ).with_help("the keywords are #true, #false, #null, #inf, #-inf and #nan; quote text that starts with `#`");
                return Err(e);
            }
        };
        self.pos = end;
        Ok(value)
    }

    fn number(&mut self, start: usize) -> Result<Value, SyntaxError> {
        // The whole token, up to the next character that cannot be in an identifier: a
        // number glued to letters (`512mb`) is one bad token, not a number and a name.
        let end = self.scan_identifier(start);
        let token = &self.text[start..end];
        self.pos = end;
        let bad = |me: &Self| {
            let mut e = me.error(
                start,
                end,
                format!("`{token}` is not a number"),
                "not a number",
            );
            if token.contains(|c: char| c.is_ascii_alphabetic()) {
                e.message =
                    format!("`{token}` is not a number, and a bare name cannot start with a digit");
                e.help = Some(format!(
                    "a value with a unit is a string in KDL: write \"{token}\""
                ));
            }
            e
        };
        let (negative, digits) = match token.as_bytes()[0] {
            b'-' => (true, &token[1..]),
            b'+' => (false, &token[1..]),
            _ => (false, token),
        };
        let radix = match digits.get(..2) {
            Some("0x") => Some(16),
            Some("0o") => Some(8),
            Some("0b") => Some(2),
            _ => None,
        };
        if let Some(radix) = radix {
            let body = &digits[2..];
            if body.is_empty()
                || body.starts_with('_')
                || !body.chars().all(|c| c == '_' || c.is_digit(radix))
            {
                return Err(bad(self));
            }
            let clean: String = body.chars().filter(|&c| c != '_').collect();
            return match i128::from_str_radix(&clean, radix) {
                Ok(n) => self.integer(if negative { -n } else { n }, start, end),
                Err(_) => Err(self.out_of_range(start, end)),
            };
        }
        // decimal := integer ('.' integer)? exponent?, integer := digit (digit | '_')*
        let b = digits.as_bytes();
        let mut i = 0;
        let int = |i: &mut usize| {
            let s = *i;
            if *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
                while *i < b.len() && (b[*i].is_ascii_digit() || b[*i] == b'_') {
                    *i += 1;
                }
            }
            *i > s
        };
        if !int(&mut i) {
            return Err(bad(self));
        }
        let mut float = false;
        if i < b.len() && b[i] == b'.' {
            i += 1;
            if !int(&mut i) {
                return Err(bad(self));
            }
            float = true;
        }
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            i += 1;
            if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                i += 1;
            }
            if !int(&mut i) {
                return Err(bad(self));
            }
            float = true;
        }
        if i != b.len() {
            return Err(bad(self));
        }
        let clean: String = token.chars().filter(|&c| c != '_').collect();
        if float {
            return match clean.parse::<f64>() {
                Ok(f) => Ok(Value::Float(f)),
                Err(_) => Err(bad(self)),
            };
        }
        match clean.parse::<i128>() {
            Ok(n) => self.integer(n, start, end),
            Err(_) => Err(self.out_of_range(start, end)),
        }
    }

    fn integer(&mut self, n: i128, start: usize, end: usize) -> Result<Value, SyntaxError> {
        match i64::try_from(n) {
            Ok(n) => Ok(Value::Int(n)),
            Err(_) => Err(self.out_of_range(start, end)),
        }
    }

    fn out_of_range(&self, start: usize, end: usize) -> SyntaxError {
        self.error(
            start,
            end,
            "integer out of range",
            "does not fit in 64 bits",
        )
        .with_help("use a smaller number, or a string if this is not a number")
    }

    // ---------------------------------------------------------------- strings

    /// `"…"` or `"""…"""` (the cursor at the first `"`).
    fn quoted_string(&mut self) -> Result<String, SyntaxError> {
        if self.starts("\"\"\"") {
            return self.multi_line_string(0);
        }
        let open = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let chunk_start = self.pos;
            // Plain characters, copied in one go.
            let bytes = self.bytes;
            while self.pos < bytes.len() {
                let b = bytes[self.pos];
                if b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f || b >= 0x80 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.text[chunk_start..self.pos]);
            let Some(c) = self.peek() else {
                return Err(self.unclosed(open, "\""));
            };
            match c {
                '"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\\' => self.escape(&mut out)?,
                c if is_newline(c) => {
                    let e = self.error(
                        self.pos,
                        self.pos + c.len_utf8(),
                        "a quoted string cannot span lines",
                        "newline in a string",
                    ).with_help("write `\\n`, end the line with `\\` to continue it, or use a multi-line string (`\"\"\"`)");
                    return Err(e);
                }
                c if is_disallowed(c) => return Err(self.disallowed(self.pos, c)),
                c => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn unclosed(&self, open: usize, quote: &str) -> SyntaxError {
        self.error(
            open,
            open + quote.len(),
            "this string is never closed",
            "opened here",
        )
        .with_help(format!("close it with `{quote}`"))
    }

    /// One escape (the cursor at `\`), appended to `out`.
    fn escape(&mut self, out: &mut String) -> Result<(), SyntaxError> {
        let at = self.pos;
        self.pos += 1;
        let Some(c) = self.bump() else {
            return Err(self.unclosed(at, "\""));
        };
        out.push(match c {
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            '\\' => '\\',
            '"' => '"',
            'b' => '\u{8}',
            'f' => '\u{c}',
            's' => ' ',
            'u' => return self.unicode_escape(at, out),
            c if is_unicode_space(c) || is_newline(c) => {
                // Escaped whitespace: it and all that follows are dropped.
                while let Some(c) = self.peek() {
                    if is_unicode_space(c) || is_newline(c) {
                        self.pos += c.len_utf8();
                    } else {
                        break;
                    }
                }
                return Ok(());
            }
            c => {
                let e = self.error(at, self.pos, format!("`\\{}` is not an escape", c.escape_debug()), "unknown escape").with_help("the escapes are \\n \\r \\t \\\\ \\\" \\b \\f \\s and \\u{…}; write `\\\\` for a backslash");
                return Err(e);
            }
        });
        Ok(())
    }

    fn unicode_escape(&mut self, at: usize, out: &mut String) -> Result<(), SyntaxError> {
        let bad = |me: &Self| {
            me.error(
                at,
                me.pos,
                "invalid `\\u{…}` escape",
                "not an escape of a character",
            )
            .with_help("write 1 to 6 hex digits of a Unicode scalar value: `\\u{1F600}`")
        };
        if self.peek() != Some('{') {
            return Err(bad(self));
        }
        self.pos += 1;
        let hex_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = &self.text[hex_start..self.pos];
        if hex.is_empty() || hex.len() > 6 || self.peek() != Some('}') {
            return Err(bad(self));
        }
        self.pos += 1;
        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
            Some(c) => {
                out.push(c);
                Ok(())
            }
            None => Err(bad(self)),
        }
    }

    /// `#"…"#`, `##"…"##`, `#"""…"""#` (the cursor at the first `#`).
    fn raw_string(&mut self) -> Result<String, SyntaxError> {
        let open = self.pos;
        let hashes = self.rest().bytes().take_while(|&b| b == b'#').count();
        self.pos += hashes;
        if self.starts("\"\"\"") {
            return self.multi_line_string(hashes);
        }
        if self.peek() != Some('"') {
            return Err(self.unexpected("`\"` after `#` (a raw string)"));
        }
        self.pos += 1;
        let close = format!("\"{}", "#".repeat(hashes));
        let body_start = self.pos;
        let Some(len) = self.rest().find(close.as_str()) else {
            return Err(self.unclosed(open, &close));
        };
        let body = &self.text[body_start..body_start + len];
        if let Some((i, c)) = body
            .char_indices()
            .find(|&(_, c)| is_newline(c) || is_disallowed(c))
        {
            if is_newline(c) {
                let e = self
                    .error(
                        body_start + i,
                        body_start + i + c.len_utf8(),
                        "a raw string cannot span lines",
                        "newline in a string",
                    )
                    .with_help("use a multi-line raw string: `#\"\"\"` … `\"\"\"#`");
                return Err(e);
            }
            return Err(self.disallowed(body_start + i, c));
        }
        self.pos = body_start + len + close.len();
        Ok(body.to_owned())
    }

    /// A multi-line string (the cursor at its `"""`), raw with `hashes` > 0. Dedented by the
    /// whitespace of its last line, after whitespace escapes and before other escapes.
    fn multi_line_string(&mut self, hashes: usize) -> Result<String, SyntaxError> {
        let open = self.pos - hashes;
        let raw = hashes > 0;
        self.pos += 3;
        let close = format!("\"\"\"{}", "#".repeat(hashes));
        if !self.newline() {
            let e = self
                .error(
                    open,
                    self.pos,
                    "a multi-line string must start a new line after `\"\"\"`",
                    "text after the opening quotes",
                )
                .with_help("move the text to the next line, or use a single-line string");
            return Err(e);
        }
        // The body up to the closing quotes, with whitespace escapes resolved (not in raw
        // strings) and newlines normalized to LF; other escapes stay as written.
        let mut body = String::new();
        // Offsets in the source of each character kept, for errors that point into the body.
        loop {
            if self.starts(&close) {
                self.pos += close.len();
                break;
            }
            let Some(c) = self.peek() else {
                return Err(self.unclosed(open, &close));
            };
            if !raw && c == '\\' {
                match self.peek_at(1) {
                    Some(n) if is_unicode_space(n) || is_newline(n) => {
                        self.pos += 1;
                        while let Some(c) = self.peek() {
                            if is_unicode_space(c) || is_newline(c) {
                                self.pos += c.len_utf8();
                            } else {
                                break;
                            }
                        }
                    }
                    Some(n) => {
                        body.push('\\');
                        body.push(n);
                        self.pos += 1 + n.len_utf8();
                    }
                    None => return Err(self.unclosed(open, &close)),
                }
                continue;
            }
            if is_newline(c) {
                self.newline();
                body.push('\n');
                continue;
            }
            if is_disallowed(c) {
                return Err(self.disallowed(self.pos, c));
            }
            body.push(c);
            self.pos += c.len_utf8();
        }
        let end = self.pos;
        let bad_shape = |me: &Self, message: &str| {
            me.error(open, end, message.to_owned(), "this string").with_help("the closing `\"\"\"` goes on a line of its own, and each line starts with that line's indentation")
        };
        let (lines, last) = match body.rsplit_once('\n') {
            Some((lines, last)) => (Some(lines), last),
            None => (None, body.as_str()),
        };
        if !last.chars().all(is_unicode_space) {
            return Err(bad_shape(
                self,
                "the closing `\"\"\"` of a multi-line string must be on a line of its own",
            ));
        }
        let prefix = last;
        let mut out = String::with_capacity(body.len());
        if let Some(lines) = lines {
            for (i, line) in lines.split('\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                if line.chars().all(is_unicode_space) {
                    continue;
                }
                match line.strip_prefix(prefix) {
                    Some(rest) => out.push_str(rest),
                    None => {
                        return Err(bad_shape(
                            self,
                            "a line of this multi-line string does not start with the indentation of its closing line",
                        ));
                    }
                }
            }
        }
        if raw {
            return Ok(out);
        }
        // The escapes left in the dedented text.
        let mut value = String::with_capacity(out.len());
        let mut sub = Reader {
            text: &out,
            bytes: out.as_bytes(),
            pos: 0,
            file: self.file,
            diags: Vec::new(),
            empty_layer: self.empty_layer.clone(),
            dropping: 0,
        };
        while let Some(c) = sub.peek() {
            if c == '\\' {
                sub.escape(&mut value).map_err(|mut e| {
                    e.start = open;
                    e.end = end;
                    e
                })?;
            } else {
                value.push(c);
                sub.pos += c.len_utf8();
            }
        }
        Ok(value)
    }
}

enum Entry {
    Arg(Scalar),
    Prop(Node),
}
