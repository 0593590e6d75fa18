//! One rule per file: its docs (`RULE`) and its `check`.

pub mod auth;
pub mod backups;
pub mod replica_tls;
