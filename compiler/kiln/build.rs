//! Embeds the standard policy modules (`stdlib/policies/*.wasm`) in the binary.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib/policies");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut entries: Vec<(String, String)> = Vec::new();
    if let Ok(read) = std::fs::read_dir(&dir) {
        for entry in read.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "wasm") {
                println!("cargo:rerun-if-changed={}", path.display());
                let stem = path
                    .file_stem()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned();
                let abs = path
                    .canonicalize()
                    .expect("wasm path")
                    .to_string_lossy()
                    .into_owned();
                entries.push((stem, abs));
            }
        }
    }
    entries.sort();
    let mut code = String::from("&[\n");
    for (stem, path) in entries {
        code.push_str(&format!(
            "    ({stem:?}, include_bytes!({path:?}) as &[u8]),\n"
        ));
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("std_policies.rs");
    std::fs::write(out, code).expect("write std_policies.rs");
}
