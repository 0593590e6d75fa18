//! One rule per file: its docs (`RULE`) and its `check`.

pub mod ciphers;
pub mod protocols;
