//! Where the checkout under test is. A path baked in at compile time (`env!`) names the
//! checkout that built the test binary, and a target directory shared between checkouts (as
//! `.ci/run` shares one) can hand another checkout's binary to this run; so the checkout is
//! found at run time from `CARGO_MANIFEST_DIR`, which cargo and nextest set for every test.

use std::path::{Path, PathBuf};

/// The workspace root of the checkout whose tests are running: the nearest ancestor of the
/// running package's directory holding `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    package
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map_or_else(|| package.join(".."), Path::to_path_buf)
}
