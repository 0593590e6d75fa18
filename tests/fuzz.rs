//! Mutation fuzzing: specs damaged at random (deleted, duplicated and swapped
//! characters, stray tokens, control-character escapes) and grown (nesting hundreds
//! of levels deep, lines of tens of thousands of characters), with mutations stacked
//! on mutations, must never make kiln panic or overflow its stack — anywhere in the
//! pipeline: parse, schema, layering, resolution, emitters, diagnostic rendering.

mod common;

/// xorshift64*: deterministic, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "\"",
    "=",
    "#null",
    "#true",
    "(remove)",
    "(replace)",
    "\n",
    " ",
    "-",
    "/",
    "0",
    "99999999999999999999",
    "é",
    ";",
    "service",
    "env",
    "\"\\u{0}\"",
    "\"\\u{1b}[2J\\u{7}\"",
    "/-",
    "\\",
    "extends=base",
    "include \"x.kdl\"",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for _ in 0..1 + rng.below(3) {
        if chars.is_empty() {
            break;
        }
        let i = rng.below(chars.len());
        match rng.below(7) {
            0 => {
                let len = 1 + rng.below(20);
                chars.drain(i..(i + len).min(chars.len()));
            }
            1 => {
                let len = 1 + rng.below(40);
                let piece: Vec<char> = chars[i..(i + len).min(chars.len())].to_vec();
                let at = rng.below(chars.len());
                chars.splice(at..at, piece);
            }
            2 => {
                let j = rng.below(chars.len());
                chars.swap(i, j);
            }
            // Nesting: `a {` k times here, closed at the end of the line (D7).
            3 => {
                let k = [1, 10, 63, 64, 65, 200, 5_000][rng.below(7)];
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |p| i + p);
                chars.splice(end..end, "}".repeat(k).chars());
                chars.splice(i..i, "a {".repeat(k).chars());
            }
            // A long line: a string value of up to 100 000 characters, or a piece of the
            // spec repeated on one line (D8).
            4 => {
                let long: String = match rng.below(2) {
                    0 => format!(" \"{}\" ", "x".repeat(1 + rng.below(100_000))),
                    _ => {
                        let len = 1 + rng.below(30);
                        let piece: String = chars[i..(i + len).min(chars.len())]
                            .iter()
                            .filter(|&&c| c != '\n')
                            .collect();
                        piece.repeat(1 + rng.below(3_000))
                    }
                };
                chars.splice(i..i, long.chars());
            }
            _ => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                chars.splice(i..i, tok.chars());
            }
        }
    }
    chars.into_iter().collect()
}

const MUTATIONS_PER_FILE: usize = 100;
/// How many mutations may be stacked on one another (each run picks 1 to this many).
const MAX_GENERATIONS: usize = 6;

#[test]
fn mutated_specs_never_panic() {
    use rayon::prelude::*;
    let files = common::spec_files();
    let runs: usize = files
        .par_iter()
        .enumerate()
        .map(|(i, path)| fuzz_file(path, 0x6b69_6c6e_2024 + i as u64))
        .sum();
    assert!(
        runs >= files.len() * MUTATIONS_PER_FILE,
        "too few mutations ran: {runs}"
    );
}

fn fuzz_file(path: &std::path::Path, seed: u64) -> usize {
    let mut rng = Rng(seed);
    let mut runs = 0;
    {
        let original = std::fs::read_to_string(path).expect("readable");
        for _ in 0..MUTATIONS_PER_FILE {
            let seed = rng.0;
            let mut text = original.clone();
            for _ in 0..1 + rng.below(MAX_GENERATIONS) {
                text = mutate(&text, &mut rng);
            }
            let result = std::panic::catch_unwind(|| {
                let (project, diags) = common::load_text(&text);
                let b = kiln::build::build(project, diags, &[]);
                let rendered = kiln_core::diagnostic::render(
                    &b.diagnostics,
                    &b.project.sources,
                    Default::default(),
                );
                (b.files().len(), rendered.len())
            });
            assert!(
                result.is_ok(),
                "kiln panicked on a mutation of {} (seed {seed:#x}):\n{text}",
                path.display()
            );
            runs += 1;
        }
    }
    runs
}
