//! Logging set-up. Logs go to stderr so that commands whose stdout is for scripts stay clean.

use std::io::IsTerminal as _;

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber; later calls (in tests) are ignored.
///
/// The filter is `RUST_LOG` when it is set (the variable every Rust program's operators know),
/// else `ROSTER_LOG`, whose default keeps Roster's own lines at INFO and every library's —
/// the migrator's forty lines at start-up among them — at WARN.
pub fn init(config: &LogConfig) {
    let wanted = std::env::var("RUST_LOG")
        .ok()
        .filter(|filter| !filter.trim().is_empty())
        .unwrap_or_else(|| config.log.clone());
    let filter =
        EnvFilter::try_new(&wanted).unwrap_or_else(|_| EnvFilter::new(crate::config::DEFAULT_LOG));
    // Colours only for a terminal: a container's log or a file gets plain text.
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
