//! What the emitter tests share: a model from one spec text, a file of an output.

use kiln_core::model::Model;

/// Resolves environment `env` of the one-file project `spec`.
pub fn resolve(spec: &str, env: &str) -> (Option<Model>, Vec<kiln_core::Diagnostic>) {
    let mut loader = |p: &str| match p {
        "kiln.kdl" => Ok(spec.to_owned()),
        _ => Err("no such file".to_owned()),
    };
    let (project, mut diags) = kiln_core::project::load(&mut loader);
    let (model, d) = kiln_core::resolve::resolve(&project, env);
    diags.extend(d);
    (model, diags)
}

/// The model of environment `env`, which must resolve without errors.
pub fn model(spec: &str, env: &str) -> Model {
    let (model, diags) = resolve(spec, env);
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    model.expect("a model")
}

/// The text of the output file whose path ends with `suffix`.
#[allow(dead_code)] // not every test binary reads files
pub fn file<'a>(out: &'a kiln_targets::Output, suffix: &str) -> &'a str {
    &out.artifacts
        .iter()
        .find(|a| a.path.ends_with(suffix))
        .unwrap_or_else(|| {
            let paths: Vec<&str> = out.artifacts.iter().map(|a| a.path.as_str()).collect();
            panic!("no {suffix} in {paths:?}")
        })
        .text
}
