//! `include`: files are read breadth first and parsed a generation at a time (in parallel);
//! the order of files and diagnostics is that of a one-file-at-a-time walk.

use kiln_core::project;

fn load(files: &[(&str, &str)]) -> (Vec<String>, Vec<(String, String)>) {
    let mut loader = |p: &str| {
        files
            .iter()
            .find(|(name, _)| *name == p)
            .map(|(_, text)| (*text).to_owned())
            .ok_or_else(|| "no such file".to_owned())
    };
    let (project, diags) = project::load(&mut loader);
    let names = project
        .files
        .iter()
        .map(|&f| project.sources.get(f).name.clone())
        .collect();
    let found = diags
        .iter()
        .map(|d| (d.code.clone(), d.message.clone()))
        .collect();
    (names, found)
}

#[test]
fn includes_are_read_breadth_first_once_each() {
    let (files, diags) = load(&[
        ("kiln.kdl", "project p\ninclude \"a.kdl\" \"b.kdl\"\n"),
        ("a.kdl", "include \"c.kdl\" \"missing.kdl\"\n"),
        ("b.kdl", "include \"c.kdl\" \"kiln.kdl\"\n"),
        ("c.kdl", "include \"a.kdl\"\n"),
    ]);
    assert_eq!(files, ["kiln.kdl", "a.kdl", "b.kdl", "c.kdl"]);
    let codes: Vec<(&str, &str)> = diags
        .iter()
        .map(|(c, m)| (c.as_str(), m.as_str()))
        .filter(|(c, _)| c.starts_with("include-"))
        .collect();
    assert_eq!(
        codes,
        [
            ("include-missing", "cannot read `missing.kdl`: no such file"),
            (
                "include-twice",
                "`c.kdl` is already included by `a.kdl`; it is read once"
            ),
            (
                "include-cycle",
                "`kiln.kdl` includes itself: kiln.kdl → b.kdl → kiln.kdl"
            ),
            (
                "include-cycle",
                "`a.kdl` includes itself: a.kdl → c.kdl → a.kdl"
            ),
        ]
    );
}

/// Issue 12, D19: any file may include others (a second `include` node was a `duplicate`
/// error), and a cycle through several files is reported as the cycle it is.
#[test]
fn nested_includes_and_real_cycles() {
    let (files, diags) = load(&[
        (
            "kiln.kdl",
            "project p\ninclude \"envs/a.kdl\"\ninclude \"envs/b.kdl\"\n",
        ),
        (
            "envs/a.kdl",
            "include \"shared/x.kdl\"\ninclude \"shared/y.kdl\"\n",
        ),
        ("envs/b.kdl", "include \"../envs/a.kdl\"\n"),
        ("envs/shared/x.kdl", "include \"../b.kdl\"\n"),
        (
            "envs/shared/y.kdl",
            "include \"../../secrets.env\" \"y.kdl\"\n",
        ),
    ]);
    assert_eq!(
        files,
        [
            "kiln.kdl",
            "envs/a.kdl",
            "envs/b.kdl",
            "envs/shared/x.kdl",
            "envs/shared/y.kdl"
        ]
    );
    let found: Vec<(&str, &str)> = diags
        .iter()
        .map(|(c, m)| (c.as_str(), m.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            // Reported once, at the include that closed it (`envs/b.kdl`'s); x → b is part
            // of the same cycle, so not a second diagnostic.
            (
                "include-cycle",
                "`envs/a.kdl` includes itself: envs/a.kdl → envs/shared/x.kdl → envs/b.kdl → envs/a.kdl"
            ),
            ("include-not-kdl", "`secrets.env` is not a spec file"),
            (
                "include-cycle",
                "`envs/shared/y.kdl` includes itself: envs/shared/y.kdl → envs/shared/y.kdl"
            ),
        ]
    );
}

#[test]
fn many_includes_keep_their_order() {
    let names: Vec<String> = (0..200).map(|i| format!("env-{i:03}.kdl")).collect();
    let root = format!(
        "project p\ninclude {}\n",
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut files = vec![("kiln.kdl".to_owned(), root)];
    for (i, n) in names.iter().enumerate() {
        files.push((
            n.clone(),
            format!("environment e{i} tier=\"development\"\n"),
        ));
    }
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (read, _) = load(&refs);
    assert_eq!(read[0], "kiln.kdl");
    assert_eq!(read[1..], names[..]);
}
