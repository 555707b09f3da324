//! Records the build date, which the agent treats as the earliest plausible wall time:
//! a PC whose clock says otherwise has a dead CMOS battery or a wrong setting.

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    // One day of slack so that a build made just before midnight in another zone does
    // not make a correct clock look wrong.
    println!(
        "cargo:rustc-env=JEJAK_BUILD_EPOCH_SECS={}",
        secs.saturating_sub(86_400)
    );
}
