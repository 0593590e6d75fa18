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
            ("include-cycle", "`c.kdl` is included twice"),
            ("include-cycle", "`kiln.kdl` is included twice"),
            ("include-cycle", "`a.kdl` is included twice"),
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
