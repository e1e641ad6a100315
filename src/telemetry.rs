//! The one place the process's tracing subscriber is built, for every command.

use tracing_subscriber::EnvFilter;

/// What a command's log output should look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `imgpipe serve`: a long-running service; info and above on stdout, beside its status lines.
    Serve,
    /// `imgpipe process`: a progress bar on stderr and a summary on stdout. Only warnings and
    /// errors are logged, on stderr, so that the bar is not buried and the summary stays clean.
    Process,
}

impl Profile {
    /// The filter used when `RUST_LOG` is unset or unreadable.
    pub fn default_filter(self) -> &'static str {
        match self {
            Profile::Serve => "info",
            Profile::Process => "warn",
        }
    }
}

/// Installs the global subscriber for `profile`; `RUST_LOG` overrides its level. A second call
/// (or a subscriber installed by someone else) leaves the first one in place.
pub fn init(profile: Profile) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| profile.default_filter().into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match profile {
        Profile::Serve => builder.try_init(),
        Profile::Process => builder.with_writer(std::io::stderr).try_init(),
    };
    // Already installed: the first subscriber keeps serving, which is what a caller wants.
    drop(installed);
}
