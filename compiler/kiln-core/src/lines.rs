//! The per-line provenance of a generated file, stored compactly.
//!
//! A build keeps every file of every environment until it is written, and a
//! file has thousands of lines whose model pointers mostly repeat (a YAML
//! block, a unit section, a config file in a ConfigMap). [`Lines`] stores runs
//! of consecutive lines with the same pointers, and each distinct pointer set
//! once ([`Pointers`] is a shared, immutable slice), instead of one
//! `Vec<String>` per line.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The model pointers behind one line: a cheap-to-clone, shared slice.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Pointers(Option<Arc<[String]>>);

impl Pointers {
    pub fn new(pointers: Vec<String>) -> Pointers {
        if pointers.is_empty() {
            Pointers(None)
        } else {
            Pointers(Some(pointers.into()))
        }
    }

    /// `true` when both share the same storage (or are both empty).
    pub fn ptr_eq(&self, other: &Pointers) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Deref for Pointers {
    type Target = [String];
    fn deref(&self) -> &[String] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl<'a> IntoIterator for &'a Pointers {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for Pointers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Pointers {
    fn eq(&self, other: &Vec<S>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl From<Vec<String>> for Pointers {
    fn from(v: Vec<String>) -> Pointers {
        Pointers::new(v)
    }
}

/// The pointers behind each line of a file (index 0 = line 1), as runs.
///
/// Canonical: two adjacent runs never hold equal pointer sets, so equal tables
/// compare equal.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Lines {
    /// The index of the first line of each run, increasing (the first is 0).
    starts: Vec<u32>,
    /// The pointers of each run.
    runs: Vec<Pointers>,
    len: u32,
}

impl Lines {
    pub fn new() -> Lines {
        Lines::default()
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pointers behind line `index + 1`.
    pub fn get(&self, index: usize) -> Option<&Pointers> {
        if index >= self.len() {
            return None;
        }
        let run = self.starts.partition_point(|&s| s as usize <= index) - 1;
        Some(&self.runs[run])
    }

    /// The pointers of the last line.
    pub fn last(&self) -> Option<&Pointers> {
        self.runs.last()
    }

    /// Appends one line behind `pointers` (shared, not copied).
    pub fn push(&mut self, pointers: Pointers) {
        self.push_run(pointers, 1);
    }

    /// Appends `count` lines behind the same `pointers`.
    pub fn push_run(&mut self, pointers: Pointers, count: usize) {
        if count == 0 {
            return;
        }
        let count = u32::try_from(count).expect("fewer than 2^32 lines");
        match self.runs.last() {
            Some(last) if last.ptr_eq(&pointers) || *last == pointers => {}
            _ => {
                self.starts.push(self.len);
                self.runs.push(pointers);
            }
        }
        self.len = self.len.checked_add(count).expect("fewer than 2^32 lines");
    }

    /// Appends one line behind the pointers of the last line (none when empty).
    pub fn repeat_last(&mut self) {
        match self.runs.last() {
            Some(_) => self.len += 1,
            None => self.push(Pointers::default()),
        }
    }

    /// Each line's pointers, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Pointers> + '_ {
        (0..self.len()).map(move |i| self.get(i).expect("in range"))
    }

    /// Each run: the first line's index, the number of lines, the pointers.
    pub fn runs(&self) -> impl Iterator<Item = (usize, usize, &Pointers)> + '_ {
        self.starts.iter().enumerate().map(move |(i, &s)| {
            let end = self.starts.get(i + 1).copied().unwrap_or(self.len);
            (s as usize, (end - s) as usize, &self.runs[i])
        })
    }

    /// Gives back unused capacity.
    pub fn shrink_to_fit(&mut self) {
        self.starts.shrink_to_fit();
        self.runs.shrink_to_fit();
    }
}

impl<'a> IntoIterator for &'a Lines {
    type Item = &'a Pointers;
    type IntoIter = Box<dyn ExactSizeIterator<Item = &'a Pointers> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

impl fmt::Debug for Lines {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<P: Into<Pointers>> FromIterator<P> for Lines {
    fn from_iter<I: IntoIterator<Item = P>>(iter: I) -> Lines {
        let mut lines = Lines::new();
        for p in iter {
            lines.push(p.into());
        }
        lines
    }
}

impl<S: AsRef<str>> PartialEq<Vec<Vec<S>>> for Lines {
    fn eq(&self, other: &Vec<Vec<S>>) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| *a == *b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_lookup() {
        let a = Pointers::new(vec!["/a".to_owned()]);
        let b = Pointers::new(vec!["/b".to_owned(), "/c".to_owned()]);
        let mut l = Lines::new();
        l.push(a.clone());
        l.push(a.clone());
        l.push(Pointers::new(vec!["/a".to_owned()]));
        l.push(Pointers::default());
        l.push_run(b.clone(), 3);
        l.repeat_last();
        assert_eq!(l.len(), 8);
        assert_eq!(l.runs().count(), 3);
        assert_eq!(l.get(0).map(|p| p.to_vec()), Some(vec!["/a".to_owned()]));
        assert_eq!(l.get(2), Some(&a));
        assert!(l.get(3).is_some_and(|p| p.is_empty()));
        assert_eq!(l.get(7), Some(&b));
        assert_eq!(l.get(8), None);
        assert_eq!(l.iter().count(), 8);
        assert_eq!(
            l,
            vec![
                vec!["/a"],
                vec!["/a"],
                vec!["/a"],
                vec![],
                vec!["/b", "/c"],
                vec!["/b", "/c"],
                vec!["/b", "/c"],
                vec!["/b", "/c"],
            ]
        );
        let same: Lines = (0..8)
            .map(|i| l.get(i).cloned().unwrap_or_default())
            .collect();
        assert_eq!(same, l);
    }
}
