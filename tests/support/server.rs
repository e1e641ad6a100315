//! A running `imgpipe serve`: the real binary on a free loopback port, killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `imgpipe serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT`, as the server announced it.
    pub base: String,
    /// The data directory, when the server owns it (removed after the server is killed).
    _data: Option<tempfile::TempDir>,
}

impl Server {
    /// Serves `data` with two workers and a 3 s lease (a message a killed server held comes
    /// back quickly), plus `extra` flags.
    pub fn start(data: &Path, extra: &[&str]) -> Server {
        Server::start_with_workers(data, 2, extra)
    }

    /// [`Server::start`] with `workers` kernel threads.
    pub fn start_with_workers(data: &Path, workers: usize, extra: &[&str]) -> Server {
        let workers = workers.to_string();
        // IMGPIPE_TEST_BIN runs the tests against another build (e.g. one from before a fix,
        // to see a test fail on the bug it is about).
        let binary = std::env::var_os("IMGPIPE_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_imgpipe").into());
        let mut child = Command::new(binary)
            .args(["serve", "--addr", "127.0.0.1:0", "--data", data.to_str().unwrap(), "--workers", &workers])
            .args(["--lease-seconds", "3"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("the listening line").to_owned();
        Server { child, base, _data: None }
    }

    /// Serves a fresh temporary data directory, removed with the server.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub fn in_temp_dir() -> Server {
        let data = tempfile::tempdir().unwrap();
        let mut server = Server::start(data.path(), &[]);
        server._data = Some(data);
        server
    }

    /// SIGKILL: no chance to clean up.
    #[allow(dead_code)]
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
