//! Captures the commit the binary is built from, for `roster --version`.
//!
//! `ROSTER_GIT_COMMIT` wins (the container build passes it, since its context has no `.git`);
//! otherwise `git` is asked; a tree that is no clone (a source tarball) says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=ROSTER_GIT_COMMIT");
    let commit = std::env::var("ROSTER_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| {
            // Build again when HEAD moves: a new commit, a checkout (worktrees included).
            for file in ["HEAD", "logs/HEAD"] {
                if let Some(path) = git(&["rev-parse", "--git-path", file]) {
                    println!("cargo:rerun-if-changed={path}");
                }
            }
            git(&["rev-parse", "--short=12", "HEAD"])
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ROSTER_GIT_COMMIT={commit}");
}
