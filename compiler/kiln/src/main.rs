use std::process::ExitCode;

fn main() -> ExitCode {
    let root = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let env = std::env::args().nth(2).unwrap_or_else(|| "production".into());
    let mut loader = |p: &str| std::fs::read_to_string(std::path::Path::new(&root).join(p)).map_err(|e| e.to_string());
    let (project, mut diags) = kiln_core::project::load(&mut loader);
    let (model, mut d2) = kiln_core::resolve::resolve(&project, &env);
    diags.append(&mut d2);
    eprint!("{}", kiln_core::diagnostic::render(&diags, &project.sources, Default::default()));
    if let Some(m) = model {
        println!("{}", serde_json::to_string_pretty(&m.to_json()).unwrap());
    }
    ExitCode::SUCCESS
}
