//! `kiln secrets check` never prints a secret value, whatever the env file looks like, in
//! any format (issue 12, D5, D21).

use crate::support::*;

/// D5: an env-file syntax error quoted up to 40 characters of the offending line; for
/// `KEY value==`, `KEY: value=` or a PEM/base64 line, that text is the secret.
#[test]
fn env_file_errors_cite_positions_not_text() {
    let dir = fixture("tulia");
    let markers = [
        "Zm9vYmFyLXNlY3JldC1vbmU",
        "c2Vjb25kLXNlY3JldC10d28",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC",
        "third-secret-3",
    ];
    let env = format!(
        "SECRET_KEY {}==\nDB_PASSWORD: {}=\n-----BEGIN PRIVATE KEY-----\n{}\n  export {} = x\n",
        markers[0], markers[1], markers[2], markers[3]
    );
    write(dir.path(), "prod.env", &env);
    for format in ["human", "json", "sarif", "github"] {
        let o = kiln(
            &[
                "secrets",
                "check",
                "--env",
                "production",
                "--env-file",
                "prod.env",
                "--format",
                format,
            ],
            dir.path(),
        );
        let all = format!("{}{}", stdout(&o), stderr(&o));
        assert_eq!(code(&o), 1, "{format}: {all}");
        for m in markers {
            assert!(!all.contains(m), "{format} printed secret text {m}:\n{all}");
            assert!(
                !all.contains(&m[..12]),
                "{format} printed part of {m}:\n{all}"
            );
        }
        assert!(
            all.contains("line 1, column 11"),
            "{format}: no position:\n{all}"
        );
        // D21: the machine formats are machine formats.
        match format {
            "json" | "sarif" => {
                serde_json::from_str::<serde_json::Value>(&stdout(&o))
                    .unwrap_or_else(|e| panic!("{format} is not JSON ({e}):\n{}", stdout(&o)));
            }
            "github" => assert!(
                stdout(&o).lines().all(|l| l.starts_with("::")),
                "{}",
                stdout(&o)
            ),
            _ => {}
        }
    }
}

/// D21: `\u{0}` in an env value was written raw into `.env.example`, and
/// `output "generated\u{0}"` was refused as "must be a string … this is a string".
#[test]
fn control_characters_never_reach_a_generated_file() {
    let dir = fixture("tulia");
    let spec = read(dir.path(), "kiln.kdl")
        .replace("output \"generated\"", "output \"generated\\u{0}\"")
        .replace(
            "DEBUG #false",
            "DEBUG #false\n        NOTE \"a\\u{0}b\\u{1b}[2J\"",
        );
    write(dir.path(), "kiln.kdl", &spec);
    let o = kiln(&["compile"], dir.path());
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert_eq!(
        err.matches("the string holds the control character U+0000")
            .count(),
        2,
        "{err}"
    );
    assert!(!err.contains("this is a string"), "{err}");
    assert!(!dir.path().join("generated").exists());
}
