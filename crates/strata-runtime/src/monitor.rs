//! The per-container monitor: the one process that owns a running container.
//!
//! It becomes a child subreaper, takes `monitor.lock`, runs `<runtime> create` — handing the
//! container a pipe for each of stdout and stderr (and stdin with `-i`), or, with `-t`, a
//! pseudo-terminal whose master it receives over `--console-socket` — then `<runtime>
//! start`, records `running` with the pid, copies the output into the json-file log (and,
//! attached, to its own stdout/stderr), reaps the container's init (reparented to it when
//! `create` exits), records the exit status (128 + N for a signal, as Docker), deletes the
//! runtime's record and hands over to the caller's `on_exit` (unmount, `--rm`) with the lock
//! still held, so that `wait` returns once the root filesystem is unmounted. A monitor that
//! cannot take the lock (another one has it) or cannot start the container touches nothing
//! else: the `start` waiting for its report holds the container's lifecycle lock and cleans up.
//!
//! Detached (`run -d`, `start`), it is the `strata` binary started by [`start_detached`] in a
//! session of its own with no stdio, reporting `ok PID` or `err MESSAGE` over a pipe on fd 3
//! so that the command that started it can return the runtime's own error. Attached (`run`
//! without `-d`, `start -a`), the `strata` process itself is the monitor ([`run_attached`]),
//! forwarding its stdin and the signals it gets to the container.
//!
//! `exec -d` gets a monitor of its own ([`exec_detached`]) that reaps the exec'd process.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
use rustix::pipe::{PipeFlags, pipe_with};

use crate::cleanup;
use crate::logs::{LogDriver, LogWriter, Stream};
use crate::runc::{Runtime, RuntimeError, io_err, last_error};
use crate::state::{self, ContainerState, Status};

/// The environment variable naming the fd the detached monitor reports on.
const SYNC_FD_ENV: &str = "STRATA_MONITOR_SYNC_FD";

/// How long output is still read after the container's init exited (its last writes).
const DRAIN: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub id: String,
    /// The bundle and state directory.
    pub dir: PathBuf,
    pub runtime: Runtime,
    pub tty: bool,
    pub open_stdin: bool,
    pub log_path: PathBuf,
    /// What becomes of the output: the json-file log (rotated per its options), or nothing.
    pub log: LogDriver,
}

/// Starts a monitor process (`monitor_exe monitor_args...`) for the container and returns
/// the container's pid once it runs, or the runtime's error if it could not start (the
/// monitor has then exited, and has left the root filesystem to the caller).
pub fn start_detached(
    monitor_exe: &Path,
    monitor_args: &[OsString],
    cfg: &MonitorConfig,
) -> Result<i32, RuntimeError> {
    let report = spawn_reporting(monitor_exe, monitor_args, None, cfg)?;
    report.parse().map_err(|_| RuntimeError::Failed {
        op: "start",
        message: format!("bad monitor report {report:?}"),
    })
}

/// Runs `monitor_exe monitor_args...` in a session of its own with no stdio (`input` on its
/// stdin) and fd 3 a pipe it reports on; what follows its `ok `, or its `err OP MESSAGE` as
/// the runtime's error. The child is waited for unless it reported success.
fn spawn_reporting(
    monitor_exe: &Path,
    monitor_args: &[OsString],
    input: Option<&[u8]>,
    cfg: &MonitorConfig,
) -> Result<String, RuntimeError> {
    let (reader, writer) = pipe_with(PipeFlags::CLOEXEC)
        .map_err(|e| io_err("create a pipe for", &cfg.dir)(e.into()))?;
    let raw = writer.as_raw_fd();
    let mut c = Command::new(monitor_exe);
    c.args(monitor_args)
        .env(SYNC_FD_ENV, "3")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        c.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // dup2 onto itself would keep CLOEXEC; clear it either way.
            if raw != 3 && libc::dup2(raw, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = c.spawn().map_err(|source| RuntimeError::Spawn {
        binary: monitor_exe.to_owned(),
        source,
    })?;
    drop(writer);
    if let (Some(mut stdin), Some(input)) = (child.stdin.take(), input) {
        // A monitor that fails early does not read it; its report says why.
        let _ = stdin.write_all(input);
    }
    let mut report = String::new();
    File::from(reader)
        .read_to_string(&mut report)
        .map_err(io_err("read the monitor's report for", &cfg.dir))?;
    if let Some(ok) = report.strip_prefix("ok ") {
        return Ok(ok.trim().to_owned());
    }
    let status = child.wait().map_err(|source| RuntimeError::Spawn {
        binary: monitor_exe.to_owned(),
        source,
    })?;
    if let Some(message) = report.strip_prefix("err ") {
        let (op, message) = match message.split_once(' ') {
            Some(("create", m)) => ("create", m),
            Some(("start", m)) => ("start", m),
            Some(("exec", m)) => ("exec", m),
            _ => ("start", message),
        };
        return Err(RuntimeError::Failed {
            op,
            message: message.trim().to_owned(),
        });
    }
    Err(RuntimeError::Failed {
        op: "start",
        message: format!(
            "the container monitor exited ({status}) before the container started; see {}",
            cfg.dir.join("state.json").display()
        ),
    })
}

/// Writes `err OP MESSAGE` for the process waiting on the monitor's report.
fn report_failure(sync: &mut Option<File>, e: &RuntimeError) {
    if let Some(s) = sync {
        let _ = match e {
            RuntimeError::Failed { op, message } => write!(s, "err {op} {message}"),
            e => write!(s, "err start {e}"),
        };
    }
}

/// The fd `start_detached` put there for us to report on, kept from the runtime's processes.
fn sync_fd() -> Option<File> {
    let fd = std::env::var(SYNC_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
        // SAFETY: fcntl on an fd number only queries or sets its flags.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } >= 0)?;
    // SAFETY: the fd is open (checked above) and ours alone: `spawn_reporting` made it.
    Some(unsafe { File::from_raw_fd(fd) })
}

/// The detached monitor's body (the hidden `strata` subcommand calls it): runs the container
/// to its end, then `on_exit` with the final state and the monitor's lock (still held: the
/// container counts as running until `on_exit` drops it). A monitor that cannot take the lock
/// or start the container returns its error without `on_exit`: it leaves the root
/// filesystem to the `start` that is waiting for its report.
pub fn monitor_main(
    cfg: MonitorConfig,
    on_exit: impl FnOnce(&ContainerState, File),
) -> Result<(), RuntimeError> {
    let mut sync = sync_fd();
    // SAFETY: plain libc calls setting signal dispositions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let monitor = match Monitor::new(&cfg) {
        Ok(m) => m,
        Err(e) => {
            report_failure(&mut sync, &e);
            return Err(e);
        }
    };
    let finished = monitor.run(&cfg, sync, None, || {})?;
    on_exit(&finished.state, finished.lock);
    finished.error.map_or(Ok(()), Err)
}

/// Runs the container attached to this process's stdio; returns when it exits, with the
/// monitor's lock still held. `on_running` is called once `running` is recorded.
pub fn run_attached(
    cfg: &MonitorConfig,
    on_running: impl FnOnce(),
) -> Result<Finished, RuntimeError> {
    install_forwarding();
    let raw = RawTerminal::enter(cfg.tty);
    let result = Monitor::new(cfg).and_then(|m| m.run(cfg, None, Some(Attach), on_running));
    drop(raw);
    result
}

/// A container that ran and exited.
#[derive(Debug)]
pub struct Finished {
    pub state: ContainerState,
    /// `monitor.lock`, held until dropped.
    pub lock: File,
    /// Recording the exit failed.
    pub error: Option<RuntimeError>,
}

/// `exec -d` through a monitor of its own (as Podman runs a conmon per exec session): a
/// process in a session of its own that is a child subreaper, runs `<runtime> exec
/// --detach`, reports, and then reaps the exec'd process — reparented to it when the runtime
/// exits — so that it never stays a zombie. Returns the runtime's exit code.
pub fn exec_detached(
    monitor_exe: &Path,
    monitor_args: &[OsString],
    cfg: &MonitorConfig,
    process: &oci_spec::runtime::Process,
) -> Result<i32, RuntimeError> {
    let json = serde_json::to_vec(process)
        .map_err(|e| io_err("encode the exec process for", &cfg.dir)(io::Error::other(e)))?;
    let report = spawn_reporting(monitor_exe, monitor_args, Some(&json), cfg)?;
    report.parse().map_err(|_| RuntimeError::Failed {
        op: "exec",
        message: format!("bad exec monitor report {report:?}"),
    })
}

/// The exec monitor's body: the process (JSON) on stdin; see [`exec_detached`].
pub fn exec_monitor_main(cfg: MonitorConfig) -> Result<(), RuntimeError> {
    let mut sync = sync_fd();
    // SAFETY: plain libc calls setting signal dispositions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let started = rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| io_err("become subreaper for", &cfg.dir)(e.into()))
        .and_then(|()| {
            let mut json = Vec::new();
            io::stdin()
                .read_to_end(&mut json)
                .map_err(io_err("read the exec process for", &cfg.dir))?;
            serde_json::from_slice::<oci_spec::runtime::Process>(&json)
                .map_err(|e| io_err("parse the exec process for", &cfg.dir)(io::Error::other(e)))
        })
        .and_then(|process| {
            let opts = crate::runc::ExecOptions {
                detach: true,
                ..Default::default()
            };
            cfg.runtime.exec(&cfg.id, &process, &opts)
        });
    match started {
        Ok(outcome) => {
            if let Some(s) = &mut sync {
                let _ = write!(s, "ok {}", outcome.exit_code);
            }
        }
        Err(e) => {
            report_failure(&mut sync, &e);
            return Err(e);
        }
    }
    drop(sync);
    reap_all();
    Ok(())
}

/// Reaps every child (and every orphan reparented to this subreaper) until none is left.
fn reap_all() {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Attached: output also to this process's stdout/stderr, its stdin to the container.
#[derive(Debug)]
struct Attach;

struct Monitor {
    lock: File,
    log: LogWriter,
}

/// A start that failed: the runtime's remains removed, the failure recorded (Docker's exit
/// code and message) and reported; the error to return.
fn not_started(
    cfg: &MonitorConfig,
    sync: &mut Option<File>,
    mut st: ContainerState,
    e: RuntimeError,
) -> RuntimeError {
    if let Err(d) = cleanup::force_delete(&cfg.runtime, &cfg.id, &cfg.dir) {
        tracing::warn!("delete {} from the runtime: {d}", cfg.id);
    }
    st.exit_code = Some(e.exit_code());
    st.error = Some(e.to_string());
    st.monitor_pid = None;
    let _ = state::write(&cfg.dir, &st);
    report_failure(sync, &e);
    e
}

/// What `create` gave the monitor to hold.
struct Stdio3 {
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    /// The pty master (`-t`).
    pty: Option<OwnedFd>,
    /// The write end of the container's stdin (`-i` without `-t`).
    stdin: Option<OwnedFd>,
}

impl Monitor {
    /// Takes the lock and opens the log; touches nothing of the container's on failure.
    fn new(cfg: &MonitorConfig) -> Result<Monitor, RuntimeError> {
        let lock = state::lock_for_monitor(&cfg.dir)?;
        let log =
            LogWriter::open(&cfg.log_path, &cfg.log).map_err(io_err("open log", &cfg.log_path))?;
        Ok(Monitor { lock, log })
    }

    fn run(
        mut self,
        cfg: &MonitorConfig,
        mut sync: Option<File>,
        attach: Option<Attach>,
        on_running: impl FnOnce(),
    ) -> Result<Finished, RuntimeError> {
        let mut st = ContainerState {
            monitor_pid: Some(std::process::id() as i32),
            ..ContainerState::default()
        };
        let launched = rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .map_err(|e| io_err("become subreaper for", &cfg.dir)(e.into()))
            .and_then(|()| launch(cfg));
        let (pid, io) = match launched {
            Ok(x) => x,
            Err(e) => return Err(not_started(cfg, &mut sync, st, e)),
        };
        st.status = Status::Running;
        st.pid = Some(pid);
        st.started_at = Some(SystemTime::now());
        if let Err(e) = state::write(&cfg.dir, &st) {
            // Unrecorded, it would run unsupervised: stop it.
            let _ = cfg.runtime.kill(&cfg.id, libc::SIGKILL, true);
            st.status = Status::Created;
            st.pid = None;
            return Err(not_started(cfg, &mut sync, st, e));
        }
        if let Some(mut s) = sync.take() {
            let _ = write!(s, "ok {pid}");
        }
        on_running();
        let code = self.supervise(pid, io, attach.is_some());
        st.status = Status::Exited;
        st.pid = None;
        st.exit_code = Some(code);
        st.finished_at = Some(SystemTime::now());
        let _ = self.log.flush();
        let recorded = state::write(&cfg.dir, &st);
        if let Err(e) = cleanup::force_delete(&cfg.runtime, &cfg.id, &cfg.dir) {
            tracing::warn!("delete {} from the runtime: {e}", cfg.id);
        }
        Ok(Finished {
            state: st,
            lock: self.lock,
            error: recorded.err(),
        })
    }

    /// Copies output until the container's init has exited and its output is drained;
    /// returns its exit code.
    fn supervise(&mut self, pid: i32, io: Stdio3, attached: bool) -> i32 {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(reap(pid));
        });
        let Stdio3 {
            out,
            err,
            pty,
            stdin,
        } = io;
        let mut sources: Vec<(OwnedFd, Stream)> = Vec::new();
        sources.extend(out.map(|f| (f, Stream::Stdout)));
        sources.extend(err.map(|f| (f, Stream::Stderr)));
        // Detached, the stdin pipe is only held open, so that a shell started with -i does
        // not see the end of its input.
        let (mut input, _keep) = if attached {
            (
                stdin.or_else(|| pty.as_ref().and_then(|p| p.try_clone().ok())),
                None,
            )
        } else {
            (None, stdin)
        };
        sources.extend(pty.map(|f| (f, Stream::Stdout)));
        let mut exit: Option<(i32, Instant)> = None;
        let mut stdin_open = attached && input.is_some();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Ok(code) = rx.try_recv() {
                exit = Some((code, Instant::now()));
            }
            if let Some((code, at)) = exit
                && (sources.is_empty() || at.elapsed() > DRAIN)
            {
                return code;
            }
            forward_signal(pid);
            let mut fds: Vec<PollFd<'_>> = sources
                .iter()
                .map(|(f, _)| PollFd::new(f, PollFlags::IN))
                .collect();
            let stdin_fd = io::stdin();
            if stdin_open {
                fds.push(PollFd::new(&stdin_fd, PollFlags::IN));
            }
            let timeout = rustix::event::Timespec {
                tv_sec: 0,
                tv_nsec: 50_000_000,
            };
            if poll(&mut fds, Some(&timeout)).is_err() {
                continue;
            }
            let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
            drop(fds);
            if stdin_open && ready.last().copied().unwrap_or(false) {
                match rustix::io::read(&stdin_fd, &mut buf) {
                    Ok(n) if n > 0 => {
                        if let Some(w) = &input {
                            let _ = rustix::io::write(w, &buf[..n]);
                        }
                    }
                    _ => {
                        // End of our input: the container's stdin closes too.
                        stdin_open = false;
                        input = None;
                    }
                }
            }
            let mut closed = Vec::new();
            for (i, (fd, stream)) in sources.iter().enumerate() {
                if !ready[i] {
                    continue;
                }
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) | Err(_) => closed.push(i),
                    Ok(n) => {
                        let _ = self.log.write(*stream, &buf[..n]);
                        if attached {
                            let _ = match stream {
                                Stream::Stdout => io::stdout()
                                    .lock()
                                    .write_all(&buf[..n])
                                    .and_then(|()| io::stdout().flush()),
                                Stream::Stderr => io::stderr().lock().write_all(&buf[..n]),
                            };
                        }
                    }
                }
            }
            for i in closed.into_iter().rev() {
                sources.remove(i);
            }
        }
    }
}

/// Waits for the container's init (our child once the runtime's `create` has exited);
/// other orphans reparented to us are reaped on the way.
fn reap(pid: i32) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid pointer.
        let got = unsafe { libc::waitpid(-1, &mut status, 0) };
        if got < 0 {
            if io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            // No children: the container is gone without our seeing its status.
            return 255;
        }
        if got == pid {
            return if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                255
            };
        }
    }
}

/// `<runtime> create` and `start`; the container's pid and its stdio.
fn launch(cfg: &MonitorConfig) -> Result<(i32, Stdio3), RuntimeError> {
    // Made empty and the owner's before the runtime appends to it (runc would make it 0644).
    let log = cfg.dir.join("runtime.log");
    let _ = fs::remove_file(&log);
    let _ = crate::files::create_new(&log, crate::files::PRIVATE);
    let pid_file = cfg.dir.join("init.pid");
    let _ = fs::remove_file(&pid_file);
    let mut c = cfg.runtime.command(Some(&cfg.dir));
    c.arg("create")
        .arg("--bundle")
        .arg(&cfg.dir)
        .arg("--pid-file")
        .arg(&pid_file);
    let mut io = Stdio3 {
        out: None,
        err: None,
        pty: None,
        stdin: None,
    };
    if cfg.tty {
        // A fresh 0700 directory: no other user can put a socket there first or connect to
        // ours (and the bundle's path can be longer than a socket path may be).
        let private = tempfile::Builder::new()
            .prefix("strata-console-")
            .permissions(fs::Permissions::from_mode(crate::files::DIR))
            .tempdir()
            .map_err(io_err(
                "create a directory for the console socket in",
                &std::env::temp_dir(),
            ))?;
        let sock = private.path().join("console.sock");
        let listener = UnixListener::bind(&sock).map_err(io_err("listen on", &sock))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err("listen on", &sock))?;
        c.arg("--console-socket").arg(&sock).arg(&cfg.id);
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = spawn(cfg, &mut c)?;
        let master = loop {
            match listener.accept() {
                Ok((conn, _)) => {
                    break Some(receive_fd(&conn).map_err(io_err("receive the pty from", &sock))?);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if child.try_wait().ok().flatten().is_some() {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(io_err("accept on", &sock)(e)),
            }
        };
        drop(private);
        io.pty = master;
        wait_runtime(cfg, child, "create")?;
    } else {
        let pipe = || {
            pipe_with(PipeFlags::CLOEXEC)
                .map_err(|e| io_err("create a pipe for", &cfg.dir)(e.into()))
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        if cfg.open_stdin {
            let (in_r, in_w) = pipe()?;
            c.stdin(Stdio::from(in_r));
            io.stdin = Some(in_w);
        } else {
            c.stdin(Stdio::null());
        }
        c.arg(&cfg.id)
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        let child = spawn(cfg, &mut c)?;
        // Our copies of the write ends go with the command, so EOF means the container's did.
        drop(c);
        io.out = Some(out_r);
        io.err = Some(err_r);
        wait_runtime(cfg, child, "create")?;
    }
    let pid: i32 = fs::read_to_string(&pid_file)
        .map_err(io_err("read", &pid_file))?
        .trim()
        .parse()
        .map_err(|_| io_err("parse", &pid_file)(io::Error::from(io::ErrorKind::InvalidData)))?;
    // The runtime writes it world-readable; the store's files are its owner's.
    let _ = fs::set_permissions(&pid_file, fs::Permissions::from_mode(crate::files::PRIVATE));
    let mut start = cfg.runtime.command(Some(&cfg.dir));
    start
        .args(["start", &cfg.id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = spawn(cfg, &mut start)?;
    wait_runtime(cfg, child, "start")?;
    Ok((pid, io))
}

fn spawn(cfg: &MonitorConfig, c: &mut Command) -> Result<std::process::Child, RuntimeError> {
    c.spawn().map_err(|source| RuntimeError::Spawn {
        binary: cfg.runtime.binary().to_owned(),
        source,
    })
}

/// Waits for a runtime command; its failure carries the runtime's own message.
fn wait_runtime(
    cfg: &MonitorConfig,
    mut child: std::process::Child,
    op: &'static str,
) -> Result<(), RuntimeError> {
    let mut stderr = Vec::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_end(&mut stderr);
    }
    let status = child.wait().map_err(|source| RuntimeError::Spawn {
        binary: cfg.runtime.binary().to_owned(),
        source,
    })?;
    if status.success() {
        return Ok(());
    }
    let message =
        last_error(&cfg.dir.join("runtime.log")).unwrap_or_else(|| crate::runc::message(&stderr));
    Err(RuntimeError::Failed { op, message })
}

/// One fd sent with `SCM_RIGHTS` (the runtime's `--console-socket` protocol).
fn receive_fd(conn: &impl AsFd) -> io::Result<OwnedFd> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut data)];
    for _ in 0..1000 {
        match recvmsg(conn, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(_) => break,
            Err(rustix::io::Errno::AGAIN) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e.into()),
        }
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(fd);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no file descriptor in the console socket message",
    ))
}

/// The last signal this process got that should go to the container (attached mode).
static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn note_signal(sig: libc::c_int) {
    PENDING_SIGNAL.store(sig, Ordering::SeqCst);
}

/// Attached, `strata run` forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to
/// the container instead of dying of them (Docker's `--sig-proxy`).
fn install_forwarding() {
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            libc::signal(sig, note_signal as *const () as libc::sighandler_t);
        }
    }
}

fn forward_signal(pid: i32) {
    let sig = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
    if sig != 0 {
        // SAFETY: kill(2) on the container's init.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// This process's terminal in raw mode while attached to a container's pty.
struct RawTerminal(Option<rustix::termios::Termios>);

impl RawTerminal {
    fn enter(tty: bool) -> RawTerminal {
        let stdin = io::stdin();
        if !tty || !rustix::termios::isatty(&stdin) {
            return RawTerminal(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return RawTerminal(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw);
        RawTerminal(Some(saved))
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}
