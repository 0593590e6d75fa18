//! Plain settings (`schema::NodeSpec::plain`) reach their emitter through the model's
//! `options` with no lowering code of their own: `gzip { vary … }` is the first.

mod support;

use kiln_targets::nginx;
use support::file;

fn site_conf(gzip: &str) -> String {
    let spec = format!(
        r#"
project shop {{ output "generated" }}
environment production {{
    tier production
    service web preset=django-web {{
        image "ghcr.io/shop/app:1.0.0"
        port 8000
        health "/healthz/"
    }}
    site "shop.example.com" upstream=web {{
        tls acme
        {gzip}
    }}
    targets nginx
}}
"#
    );
    let model = support::model(&spec, "production");
    file(&nginx::emit(&model), "nginx/sites/shop.example.com.conf").to_owned()
}

#[test]
fn gzip_vary_follows_its_declaration() {
    assert!(
        site_conf("gzip #true").contains("gzip_vary on;"),
        "on by default"
    );
    assert!(site_conf("gzip #true { vary #true }").contains("gzip_vary on;"));
    assert!(
        site_conf("gzip #true vary=#true").contains("gzip_vary on;"),
        "as a property"
    );
    let off = site_conf("gzip #true { vary #false }");
    assert!(
        off.contains("gzip on;") && !off.contains("gzip_vary"),
        "{off}"
    );
}

#[test]
fn a_plain_setting_has_provenance() {
    let spec = r#"
project shop { output "generated" }
environment production {
    tier production
    service web preset=django-web { image "ghcr.io/shop/app:1.0.0"; port 8000; health "/healthz/"; }
    site "shop.example.com" upstream=web { gzip #true { vary #false } }
    targets nginx
}
"#;
    let model = support::model(spec, "production");
    let json = serde_json::to_value(&model).unwrap();
    assert_eq!(
        json.pointer("/sites/shop.example.com/gzip/options/vary"),
        Some(&serde_json::json!(false))
    );
    assert!(
        model
            .provenance
            .map
            .contains_key("/sites/shop.example.com/gzip/options/vary")
    );
}
