//! The one way k0slab runs external commands (a wrapper around duct).
//!
//! Every command has a human description; its command line is echoed with `--verbose`; a
//! failure becomes [`Error::CommandFailed`] with the captured stderr. Children get exactly the
//! variables of k0slab's [`Environment`] plus their own. Running children are registered so
//! that Ctrl-C stops them.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::Output;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The signal that interrupted k0slab (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
static CHILDREN: Mutex<Vec<(u64, Arc<dyn Kill>)>> = Mutex::new(Vec::new());

trait Kill: Send + Sync {
    fn kill(&self);
}

impl Kill for duct::Handle {
    fn kill(&self) {
        let _ = duct::Handle::kill(self);
    }
}

impl Kill for duct::ReaderHandle {
    fn kill(&self) {
        let _ = duct::ReaderHandle::kill(self);
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP: stop every running child, then let the command unwind
/// to "interrupted" and exit 128 + the signal. Children run in process groups of their own
/// (see [`Cmd`]), so a terminal's Ctrl-C reaches only k0slab: not Vagrant, and not the
/// `tart run` that vagrant-tart starts in Vagrant's group (letiemble/vagrant-tart
/// `scripts/run.sh`), which would stop the VM on SIGINT (cirruslabs/tart
/// `Sources/tart/Root.swift`). Killing a child does not reach its VMs either. A second signal
/// ends k0slab at once.
pub fn install_interrupt_handler() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            for signal in signals.forever() {
                if INTERRUPTED.swap(true, Ordering::SeqCst) {
                    eprintln!("interrupted");
                    std::process::exit(128 + signal);
                }
                SIGNAL.store(signal, Ordering::SeqCst);
                let children = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
                for (_, child) in children {
                    child.kill();
                }
            }
        });
    });
}

/// Whether a signal interrupted k0slab.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The exit code for an interruption: 128 + the signal (130 for SIGINT, 143 for SIGTERM,
/// 129 for SIGHUP).
pub fn interrupted_exit_code() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        s @ 1..=127 => 128 + s as u8,
        _ => 130,
    }
}

/// Fails with [`Error::Interrupted`] once a signal came.
pub fn check_interrupted() -> Result<()> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

struct Registered(u64);

impl Registered {
    fn new(child: Arc<dyn Kill>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = CHILDREN.lock() {
            c.push((id, child));
        }
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut c) = CHILDREN.lock() {
            c.retain(|(id, _)| *id != self.0);
        }
    }
}

/// One external command, built up and then run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    dir: Option<PathBuf>,
    description: String,
}

impl Cmd {
    pub fn new(program: &Path, description: impl Into<String>) -> Self {
        Self {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            description: description.into(),
        }
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// The command line as a person would type it (tool name, shell-quoted arguments).
    pub fn command_line(&self) -> String {
        let name = self.program.file_name().map_or_else(
            || self.program.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        std::iter::once(name)
            .chain(self.args.iter().map(|a| shell_quote(&a.to_string_lossy())))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn expression(&self, env: &Environment, interactive: bool) -> duct::Expression {
        let mut vars: std::collections::HashMap<String, String> =
            env.vars().clone().into_iter().collect();
        vars.extend(self.env.iter().cloned());
        let mut e = duct::cmd(&self.program, &self.args)
            .full_env(vars)
            .unchecked();
        if !interactive {
            // A process group of its own: signals for k0slab do not reach it (see
            // `install_interrupt_handler`).
            e = e.before_spawn(|cmd| {
                std::os::unix::process::CommandExt::process_group(cmd, 0);
                Ok(())
            });
        }
        if let Some(dir) = &self.dir {
            e = e.dir(dir);
        }
        e
    }

    fn failed(&self, status: &std::process::ExitStatus, stderr: String) -> Error {
        Error::CommandFailed {
            description: self.description.clone(),
            command: self.command_line(),
            status: match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was stopped by a signal".to_string(),
            },
            stderr,
        }
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        Error::CommandFailed {
            description: self.description.clone(),
            command: self.command_line(),
            status: "could not be started".into(),
            stderr: e.to_string(),
        }
    }

    /// Runs the command and returns its stdout; stderr goes into the error on failure.
    pub fn output(&self, env: &Environment, out: &Output) -> Result<String> {
        self.output_bounded(env, out, None, None)
    }

    /// [`Cmd::output`], calling `tick` about five times a second while the command runs (to
    /// show the progress of what it writes).
    pub fn output_watching(
        &self,
        env: &Environment,
        out: &Output,
        tick: &mut dyn FnMut(),
    ) -> Result<String> {
        self.output_bounded(env, out, None, Some(tick))
    }

    /// [`Cmd::output`] with a deadline: a command still running after `limit` is killed with
    /// its whole process group (it runs in one of its own, see [`Cmd::expression`], so what it
    /// started goes too: `vagrant ssh` runs `ssh` in its own group, hashicorp/vagrant v2.3.4
    /// `lib/vagrant/util/ssh.rb` lines 237-252), and the error says how long it was given.
    pub fn output_within(
        &self,
        env: &Environment,
        out: &Output,
        limit: std::time::Duration,
    ) -> Result<String> {
        self.output_bounded(env, out, Some(limit), None)
    }

    fn output_bounded(
        &self,
        env: &Environment,
        out: &Output,
        limit: Option<std::time::Duration>,
        mut tick: Option<&mut dyn FnMut()>,
    ) -> Result<String> {
        check_interrupted()?;
        out.detail(&format!("$ {}", self.command_line()));
        let handle = Arc::new(
            self.expression(env, false)
                .stdin_null()
                .stdout_capture()
                .stderr_capture()
                .start()
                .map_err(|e| self.spawn_error(e))?,
        );
        let _registered = Registered::new(handle.clone());
        if limit.is_some() || tick.is_some() {
            let deadline = limit.map(|l| std::time::Instant::now() + l);
            let mut last_tick = std::time::Instant::now();
            while handle
                .try_wait()
                .map_err(|e| self.spawn_error(e))?
                .is_none()
            {
                if let Some(tick) = tick.as_mut() {
                    if last_tick.elapsed() >= std::time::Duration::from_millis(200) {
                        tick();
                        last_tick = std::time::Instant::now();
                    }
                }
                if let Some(limit) =
                    limit.filter(|_| deadline.is_some_and(|d| std::time::Instant::now() >= d))
                {
                    for pid in handle.pids() {
                        // SAFETY: kill(2) of the process group this command leads.
                        unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
                    }
                    let _ = handle.wait();
                    check_interrupted()?;
                    return Err(Error::CommandFailed {
                        description: self.description.clone(),
                        command: self.command_line(),
                        status: format!(
                            "did not finish within {} and was stopped",
                            crate::progress::format_duration(limit)
                        ),
                        stderr: String::new(),
                    });
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let result = handle.wait().map_err(|e| self.spawn_error(e))?;
        check_interrupted()?;
        let stdout = String::from_utf8_lossy(&result.stdout).into_owned();
        if result.status.success() {
            Ok(stdout)
        } else {
            let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
            Err(self.failed(
                &result.status,
                if stderr.trim().is_empty() {
                    stdout
                } else {
                    stderr
                },
            ))
        }
    }

    /// Runs the command, handing each line of its output (stdout and stderr merged) to
    /// `on_line` as it comes. On failure the last lines are attached to the error.
    pub fn stream(
        &self,
        env: &Environment,
        out: &Output,
        mut on_line: impl FnMut(&str),
    ) -> Result<()> {
        check_interrupted()?;
        out.detail(&format!("$ {}", self.command_line()));
        let reader = Arc::new(
            self.expression(env, false)
                .stdin_null()
                .stderr_to_stdout()
                .reader()
                .map_err(|e| self.spawn_error(e))?,
        );
        let _registered = Registered::new(reader.clone());
        let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut lines = BufReader::new(&*reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match lines.read_until(b'\n', &mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']);
                    on_line(line);
                    if tail.len() == 40 {
                        tail.pop_front();
                    }
                    tail.push_back(line.to_string());
                }
                Err(e) => return Err(self.spawn_error(e)),
            }
        }
        check_interrupted()?;
        let status = reader
            .try_wait()
            .map_err(|e| self.spawn_error(e))?
            .map(|o| o.status)
            .expect("the reader reached the end, so the child has exited");
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(&status, tail.into_iter().collect::<Vec<_>>().join("\n")))
        }
    }

    /// Runs the command attached to the terminal, `input` on its standard input (for `sudo`,
    /// which asks for a password on the terminal itself); returns its exit code.
    pub fn interactive_with_input(
        &self,
        env: &Environment,
        out: &Output,
        input: &[u8],
    ) -> Result<i32> {
        out.detail(&format!("$ {}", self.command_line()));
        let status = self
            .expression(env, true)
            .stdin_bytes(input.to_vec())
            .run()
            .map_err(|e| self.spawn_error(e))?
            .status;
        Ok(status.code().unwrap_or(1))
    }

    /// Runs the command attached to the terminal (for `ssh`); returns its exit code.
    pub fn interactive(&self, env: &Environment, out: &Output) -> Result<i32> {
        out.detail(&format!("$ {}", self.command_line()));
        let status = self
            .expression(env, true)
            .run()
            .map_err(|e| self.spawn_error(e))?
            .status;
        Ok(status.code().unwrap_or(1))
    }
}

/// A running command whose stdout is read as bytes: for streams too large to hold (an image
/// export). Read it to the end, then [`ByteReader::finish`].
pub struct ByteReader {
    handle: Arc<duct::ReaderHandle>,
    _registered: Registered,
    cmd: Cmd,
}

impl std::io::Read for ByteReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.handle).read(buf)
    }
}

impl ByteReader {
    /// The command's outcome, once its stdout was read to the end.
    pub fn finish(self) -> Result<()> {
        check_interrupted()?;
        let output = self
            .handle
            .try_wait()
            .map_err(|e| self.cmd.spawn_error(e))?
            .ok_or_else(|| {
                self.cmd
                    .spawn_error(std::io::Error::other("output not read to the end"))
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(self.cmd.failed(
                &output.status,
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ))
        }
    }
}

/// A running command that is fed bytes on its stdin: write them, then [`ByteWriter::finish`].
pub struct ByteWriter {
    handle: Arc<duct::Handle>,
    stdin: Option<os_pipe::PipeWriter>,
    _registered: Registered,
    cmd: Cmd,
}

impl std::io::Write for ByteWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.stdin {
            Some(w) => w.write(buf),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.stdin.as_mut().map_or(Ok(()), std::io::Write::flush)
    }
}

impl ByteWriter {
    /// Closes stdin and waits; the command's stdout, or its failure with stderr.
    pub fn finish(mut self) -> Result<String> {
        self.stdin = None;
        let output = self.handle.wait().map_err(|e| self.cmd.spawn_error(e))?;
        check_interrupted()?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            Err(self.cmd.failed(&output.status, stderr))
        }
    }
}

impl Cmd {
    /// Starts the command with its stdout as a byte stream (stderr kept for the error).
    pub fn read_bytes(&self, env: &Environment, out: &Output) -> Result<ByteReader> {
        check_interrupted()?;
        out.detail(&format!("$ {}", self.command_line()));
        let handle = Arc::new(
            self.expression(env, false)
                .stdin_null()
                .stderr_capture()
                .reader()
                .map_err(|e| self.spawn_error(e))?,
        );
        Ok(ByteReader {
            _registered: Registered::new(handle.clone()),
            handle,
            cmd: self.clone(),
        })
    }

    /// Starts the command with a pipe on its stdin (stdout and stderr captured).
    pub fn write_bytes(&self, env: &Environment, out: &Output) -> Result<ByteWriter> {
        check_interrupted()?;
        out.detail(&format!("$ {}", self.command_line()));
        let (reader, writer) = os_pipe::pipe().map_err(|e| self.spawn_error(e))?;
        let handle = Arc::new(
            self.expression(env, false)
                .stdin_file(reader)
                .stdout_capture()
                .stderr_capture()
                .start()
                .map_err(|e| self.spawn_error(e))?,
        );
        Ok(ByteWriter {
            _registered: Registered::new(handle.clone()),
            handle,
            stdin: Some(writer),
            cmd: self.clone(),
        })
    }
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> PathBuf {
        PathBuf::from("/bin/sh")
    }

    fn env() -> Environment {
        Environment::from_pairs([("PATH", "/usr/bin:/bin"), ("FROM_ENV", "yes")])
    }

    fn quiet() -> Output {
        Output::new(crate::output::Verbosity::Quiet)
    }

    #[test]
    fn output_and_failures() {
        let ok = Cmd::new(&sh(), "saying hello")
            .args(["-c", "echo hello $FROM_ENV $EXTRA"])
            .env("EXTRA", "there")
            .output(&env(), &quiet())
            .unwrap();
        assert_eq!(ok, "hello yes there\n");
        let err = Cmd::new(&sh(), "failing on purpose")
            .args(["-c", "echo out; echo broken >&2; exit 3"])
            .output(&env(), &quiet())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failing on purpose failed: `sh -c 'echo out; echo broken >&2; exit 3'` exited with status 3:\nbroken"
        );
        let err = Cmd::new(Path::new("/no/such/tool"), "running nothing")
            .output(&env(), &quiet())
            .unwrap_err();
        assert!(err.to_string().contains("could not be started"), "{err}");
    }

    #[test]
    fn a_deadline_stops_the_command_and_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("child-ran-on");
        // The shell starts a child that would write the marker after 2 s.
        let started = std::time::Instant::now();
        let err = Cmd::new(&sh(), "hanging on purpose")
            .args([
                "-c",
                &format!("(sleep 2; touch {}) & sleep 30", marker.display()),
            ])
            .output_within(&env(), &quiet(), std::time::Duration::from_millis(300))
            .unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "hanging on purpose failed: `sh -c '(sleep 2; touch {}) & sleep 30'` did not finish \
             within 0.3s and was stopped"
                .replace("{}", &marker.display().to_string())
        );
        std::thread::sleep(std::time::Duration::from_millis(2500));
        assert!(
            !marker.exists(),
            "the child in the command's group was stopped too"
        );
        let ok = Cmd::new(&sh(), "answering in time")
            .args(["-c", "echo quick"])
            .output_within(&env(), &quiet(), std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(ok, "quick\n");
    }

    #[test]
    fn streaming_sees_every_line_of_both_streams() {
        let mut seen = Vec::new();
        Cmd::new(&sh(), "streaming")
            .args(["-c", "echo one; echo two >&2; echo three"])
            .stream(&env(), &quiet(), |l| seen.push(l.to_string()))
            .unwrap();
        assert_eq!(seen, ["one", "two", "three"]);
        let err = Cmd::new(&sh(), "streaming a failure")
            .args(["-c", "echo last words; exit 1"])
            .stream(&env(), &quiet(), |_| {})
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("exited with status 1:\nlast words"),
            "{err}"
        );
    }

    #[test]
    fn children_see_only_the_given_environment() {
        let out = Cmd::new(&sh(), "env")
            .args(["-c", "echo ${HOME:-unset}"])
            .output(&env(), &quiet())
            .unwrap();
        assert_eq!(out, "unset\n");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("plain-1.2/x"), "plain-1.2/x");
        assert_eq!(shell_quote("two words"), "'two words'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
