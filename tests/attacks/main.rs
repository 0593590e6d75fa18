//! Attacks on kiln, one module per defence. Each test is a reproduction of an attack that
//! once worked (issue 12's audit) or one of the same shape: a hostile branch controls every
//! file of the project (specs, includes, symlinks, `kiln.lock`, outputs, policy modules) and
//! any cache a CI system restores. Each test states the attack, then what kiln must do.

#[path = "../common.rs"]
mod common;

mod atomic;
mod bounds;
mod gate;
mod modules;
mod paths;
mod secrets;
mod support;
