//! Shared helpers for tests that need the assets fetched by `scripts/setup`.
#![allow(dead_code)]

use std::path::PathBuf;

pub use stylize_engines::runtime::assets_dir;

/// Path of a fetched asset, or `None` (test skipped) when absent outside CI.
/// With `CI` set a missing asset fails the test: CI must have run the setup.
pub fn asset(relative: &str) -> Option<PathBuf> {
    let path = assets_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: run scripts/setup", path.display());
    }
    eprintln!(
        "skipping: {} is missing (run scripts/setup)",
        path.display()
    );
    None
}

pub fn python() -> Option<PathBuf> {
    asset("venv/bin/python")
}

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts")).join(name)
}
