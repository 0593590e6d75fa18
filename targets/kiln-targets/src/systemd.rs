//! The `systemd` target.

use crate::Output;
use kiln_core::model::Model;

pub fn emit(_model: &Model) -> Output {
    Output::default()
}
