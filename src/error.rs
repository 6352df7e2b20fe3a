//! Errors per layer and the exit codes they map to.

use std::path::PathBuf;

/// Exit code for a failure of a tool or a check.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad input: nothing was written or changed.
pub const EXIT_INPUT: u8 = 2;
/// Exit code after Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Bad input: a value, a combination of values, or a lab that does not match the inputs.
/// Always exit code 2, and always raised before anything is written.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum InputError {
    /// One value is not allowed.
    #[error("{}", invalid(origin, value, allowed))]
    Invalid {
        /// Where the value came from, e.g. `environment variable worker_count`.
        origin: String,
        /// The value as given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The lower- and upper-case spelling of one variable are both set, to different values.
    #[error(
        "environment variables {lower}={lower_value:?} and {upper}={upper_value:?} are the same \
         setting but differ: unset one of them"
    )]
    Conflict {
        lower: String,
        lower_value: String,
        upper: String,
        upper_value: String,
    },
    /// The values are each fine but do not fit together (a topology rule).
    #[error("{0}")]
    Rule(String),
    /// The inputs differ from the lab that exists in the lab directory.
    #[error(
        "the lab in {dir} was created with other inputs:\n{changes}\n\
         Unset or change these back, or run `k0slab --dir {dir} destroy` first"
    )]
    LabChanged { dir: String, changes: String },
}

/// The message of [`InputError::Invalid`]: a flag given without its value (`plan --network`)
/// or an empty variable says so instead of quoting `""`.
fn invalid(origin: &str, value: &str, allowed: &str) -> String {
    match value {
        "" if origin.starts_with("flag ") => format!("{origin} needs a value: expected {allowed}"),
        "" => format!("{origin} is set but empty: expected {allowed}"),
        _ => format!("{origin} has the value {value:?}, which is not allowed: expected {allowed}"),
    }
}

/// Everything that can go wrong in k0slab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a lab file k0slab can read: {reason}", path.display())]
    LabFile { path: PathBuf, reason: String },
    /// A file of the user's or another tool's (a kubeconfig, Tart's VM configuration) that
    /// k0slab reads but did not write.
    #[error("{} is not {what} k0slab can read: {reason}", path.display())]
    Unreadable {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    /// `lab.json` is damaged (not another version's): what to do is part of the message.
    #[error(
        "{} is damaged: {reason}. If you edited it, put it right; otherwise `k0slab destroy` \
         removes the lab (its VMs, and the files k0slab wrote, known from k0slab's copy of the \
         record, {copy}), and `k0slab up` makes a new one",
        path.display()
    )]
    DamagedRecord {
        path: PathBuf,
        reason: String,
        copy: &'static str,
    },
    #[error("rendering {name}: {reason}")]
    Render { name: String, reason: String },
    #[error("SSH key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("{tool} is needed but not found ({reason}); install it with: {hint}")]
    ToolMissing {
        tool: &'static str,
        reason: String,
        hint: &'static str,
    },
    #[error("tools are missing:\n{0}")]
    ToolsMissing(String),
    /// An external command failed.
    #[error("{description} failed: `{command}` {status}{}", stderr_suffix(stderr))]
    CommandFailed {
        description: String,
        command: String,
        status: String,
        stderr: String,
    },
    /// A step of the lab failed (after its tool's error was shown).
    #[error("{0}")]
    Step(String),
    /// A check found the lab unhealthy.
    #[error("{0}")]
    Unhealthy(String),
    #[error("interrupted")]
    Interrupted,
    /// Another k0slab command holds the lab's lock.
    #[error(
        "the lab in {dir} is busy: {holder} is changing it (waited {waited}s). Wait for it to \
         finish, or stop it; a lock of a process that is gone never blocks"
    )]
    Busy {
        dir: String,
        holder: String,
        waited: u64,
    },
    /// Exit with this code and no message (the child process already spoke).
    #[error("")]
    Exit(u8),
}

fn stderr_suffix(stderr: &str) -> String {
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        String::new()
    } else {
        let tail: Vec<&str> = trimmed.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(":\n{}", tail.join("\n"))
    }
}

impl Error {
    /// The process exit code for this error: 2 for input errors, 130 for an interruption
    /// (the signal's own code comes from [`crate::exit_code`]), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) => EXIT_INPUT,
            Error::Interrupted => EXIT_INTERRUPTED,
            Error::Exit(code) => *code,
            _ => EXIT_FAILURE,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
