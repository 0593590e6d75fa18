//! One rule per file: its docs (`RULE`) and its `check`.

pub mod allowed_hosts;
pub mod cors_origins;
pub mod debug_off;
pub mod email_tls;
pub mod health_check;
pub mod https_redirect;
