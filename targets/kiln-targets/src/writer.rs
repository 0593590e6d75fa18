//! Builds a generated file line by line, remembering which model values
//! (JSON pointers) each line came from, for `kiln explain` and `kiln diff`.
//!
//! The pointers are stored as runs of lines sharing one pointer set, and each
//! distinct set of a file once ([`Lines`], [`Pointers`]): a line costs no
//! allocation unless its pointers are new to the file.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kiln_core::{Artifact, Lines, Pointers};

#[derive(Debug, Default)]
pub struct Writer {
    text: String,
    lines: Lines,
    /// Every pointer set of this file so far, by the hash of its pointers.
    interned: HashMap<u64, Vec<Pointers>, BuildHasherDefault<Prehashed>>,
}

/// The keys of `interned` are hashes already: used as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }
}

/// A fast, non-cryptographic hash of a pointer set (FNV-1a over 8-byte words).
fn hash_of<S: AsRef<str>>(from: &[S]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ from.len() as u64;
    for p in from {
        let b = p.as_ref().as_bytes();
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            h = (h ^ u64::from_le_bytes(c.try_into().expect("8 bytes"))).wrapping_mul(PRIME);
        }
        let mut last = [0u8; 8];
        last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        h = (h ^ u64::from_le_bytes(last) ^ ((b.len() as u64) << 56)).wrapping_mul(PRIME);
        h ^= h >> 29;
    }
    h
}

fn same<S: AsRef<str>>(p: &Pointers, from: &[S]) -> bool {
    p.len() == from.len() && p.iter().zip(from).all(|(a, b)| a == b.as_ref())
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// The shared pointer set equal to `from` (stored once per file).
    pub fn pointers<S: AsRef<str>>(&mut self, from: &[S]) -> Pointers {
        if from.is_empty() {
            return Pointers::default();
        }
        if let Some(last) = self.lines.last()
            && same(last, from)
        {
            return last.clone();
        }
        let bucket = self.interned.entry(hash_of(from)).or_default();
        if let Some(p) = bucket.iter().find(|p| same(p, from)) {
            return p.clone();
        }
        let p = Pointers::new(from.iter().map(|s| s.as_ref().to_owned()).collect());
        bucket.push(p.clone());
        p
    }

    /// The shared pointer set equal to `from`: `from` itself unless the file already
    /// holds an equal set (stored once per file, no copy).
    pub fn pointers_of(&mut self, from: &Pointers) -> Pointers {
        if from.is_empty() {
            return Pointers::default();
        }
        if let Some(last) = self.lines.last()
            && (last.ptr_eq(from) || **last == **from)
        {
            return last.clone();
        }
        let bucket = self.interned.entry(hash_of(from)).or_default();
        if let Some(p) = bucket.iter().find(|p| p.ptr_eq(from) || ***p == **from) {
            return p.clone();
        }
        bucket.push(from.clone());
        from.clone()
    }

    /// Appends one line (no newline inside) produced from the given model pointers.
    pub fn line(&mut self, line: impl AsRef<str>, from: &[&str]) {
        let line = line.as_ref();
        debug_assert!(!line.contains('\n'), "one line at a time: {line:?}");
        self.text.push_str(line.trim_end());
        self.text.push('\n');
        let from = self.pointers(from);
        self.lines.push(from);
    }

    /// Appends one line written by `write` into the file's text (no newline inside;
    /// trailing white space is trimmed), produced from the shared pointers `from`.
    pub fn line_with(&mut self, from: &Pointers, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        debug_assert!(
            !self.text[start..].contains('\n'),
            "one line at a time: {:?}",
            &self.text[start..]
        );
        let kept = self.text[start..].trim_end().len();
        self.text.truncate(start + kept);
        self.text.push('\n');
        self.lines.push(from.clone());
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

    pub fn finish(mut self, path: impl Into<String>) -> Artifact {
        // A build holds every file of every environment until it is written:
        // give back what the doubling growth left unused.
        self.text.shrink_to_fit();
        self.lines.shrink_to_fit();
        Artifact {
            path: path.into(),
            text: self.text,
            lines: self.lines,
        }
    }
}
