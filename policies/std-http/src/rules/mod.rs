//! One rule per file: its docs (`RULE`) and its `check`.

pub mod baseline_headers;
pub mod csp_asset_origins;
pub mod hsts;
