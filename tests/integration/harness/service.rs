//! A `tradeflow` subcommand running as a child process: killed (SIGKILL) on drop, and by a
//! watcher once the test process is gone (a kill -9 of the test binary skips every drop).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Service {
    pub name: String,
    child: Option<Child>,
}

/// Starts `bin` through a shell that execs it (the child's pid is `bin`'s) after leaving a watcher
/// behind: once this test process is gone, the watcher kills `bin` (as `scripts/kafka/node.sh`
/// does for the broker nodes the harness starts).
fn owned(bin: &Path) -> Command {
    const WATCH: &str = r#"owner=$1; shift
( exec </dev/null >/dev/null 2>&1
  while kill -0 "$owner" 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 1; done
  kill -KILL $$ 2>/dev/null ) &
exec "$@""#;
    let mut cmd = Command::new("bash");
    cmd.args(["-c", WATCH, "tradeflow"]).arg(std::process::id().to_string()).arg(bin);
    cmd
}

impl Service {
    /// Starts `tradeflow <args>` with `envs`; stderr goes to `<log_dir>/<name>.log`.
    pub fn start(name: &str, args: &[&str], envs: &[(&str, String)], log_dir: &Path) -> Self {
        std::fs::create_dir_all(log_dir).expect("log dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir.join(format!("{name}.log")))
            .expect("service log");
        let mut cmd = owned(&super::tradeflow_bin());
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting tradeflow {args:?}: {e}"));
        Self { name: name.to_owned(), child: Some(child) }
    }

    /// `tradeflow producer <args>` writing into `logs`.
    pub fn producer(args: &[&str], logs: &Path, log_dir: &Path) -> Self {
        let mut all = vec!["producer"];
        all.extend_from_slice(args);
        Self::start("producer", &all, &[("TRADE_LOG_DIR", logs.display().to_string())], log_dir)
    }

    /// Runs `tradeflow producer <args>` writing into `logs` to completion (it must succeed).
    pub fn produce_logs(args: &[&str], logs: &Path) {
        let status = owned(&super::tradeflow_bin())
            .arg("producer")
            .args(args)
            .env("TRADE_LOG_DIR", logs)
            .env("RUST_LOG", "warn")
            .status()
            .expect("run producer");
        assert!(status.success(), "tradeflow producer {args:?} failed");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: no chance to flush or save anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let Some(mut c) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status.success();
            }
            if std::time::Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it has exited with success (`None`: still running, or killed already).
    pub fn exited_successfully(&mut self) -> Option<bool> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()).map(|s| s.success())
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Waits (polling, with a deadline) until the process has exited by itself.
    pub async fn exited(&mut self, what: &str, timeout: Duration) {
        super::eventually(what, timeout, || {
            let done = !self.running();
            async move { done.then_some(()) }
        })
        .await
    }

    /// Peak resident memory (VmHWM) in KiB, from /proc.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill9();
    }
}
