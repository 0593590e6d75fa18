//! One rule per file: its docs (`RULE`) and its `check`.

pub mod add_header_inheritance;
