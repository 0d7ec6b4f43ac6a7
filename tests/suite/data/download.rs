//! Downloading a missing MNIST, through a run, from an HTTP server on loopback that
//! serves the real files (`SMOOTHLAB_DOWNLOAD_URL` points the run at it): the files land
//! in `dataset.dir` as served, only the missing part is fetched, and a failed or bad
//! download stops the run with the URL and leaves nothing behind.
//!
//! Each test has its own server and directory; the downloads happen in the `smoothlab`
//! processes, so no test changes this process's environment.

use crate::common::{assert_exit, mnist_dir, stderr, Workspace};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

const FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Serves `files` (URL path → body) over HTTP/1.1, 404 for anything else, and records
/// every path asked for. It lives until the test process ends.
struct Server {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(files: BTreeMap<String, Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let path = request.split(' ').nth(1).unwrap_or("").to_string();
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap() <= 2 {
                        break;
                    }
                }
                seen.lock().unwrap().push(path.clone());
                let (status, body) = match files.get(&path) {
                    Some(body) => ("200 OK", body.as_slice()),
                    None => ("404 Not Found", &b"not here"[..]),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        Self { url, requests }
    }

    /// The real MNIST's four files, with `change` applied to the map.
    fn mnist(change: impl FnOnce(&mut BTreeMap<String, Vec<u8>>)) -> Self {
        let real = mnist_dir();
        let mut files: BTreeMap<String, Vec<u8>> = FILES
            .iter()
            .map(|f| (format!("/mnist/{f}"), std::fs::read(real.join(f)).unwrap()))
            .collect();
        change(&mut files);
        Self::start(files)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// A one-epoch run of a small MLP on the first 600 training and 200 test images of the
/// MNIST in `dir`, its downloads from `server`.
fn run(ws: &Workspace, dir: &Path, server: &Server) -> std::process::Output {
    let experiment = ws.write(
        "mnist.json",
        &format!(
            r#"{{
            "name": "mnist",
            "dataset": {{ "name": "mnist", "dir": {:?}, "train_subset": 600, "test_subset": 200 }},
            "model": {{ "name": "mlp", "hidden": [16] }},
            "training": {{ "epochs": 1, "batch_size": 100 }}
        }}"#,
            dir.to_str().unwrap()
        ),
    );
    ws.run_command(&experiment, &["--force"])
        .env("SMOOTHLAB_DOWNLOAD_URL", &server.url)
        .output()
        .unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_missing_mnist_is_downloaded_into_its_directory_as_served() {
    let ws = Workspace::new();
    let server = Server::mnist(|_| {});
    let dir = ws.path().join("data/mnist");
    let output = run(&ws, &dir, &server);
    assert_exit!(output, 0);
    let mut expected: Vec<String> = FILES.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(
        names_in(&dir),
        expected,
        "the four files and no scratch directory"
    );
    for file in FILES {
        assert_eq!(
            std::fs::read(dir.join(file)).unwrap(),
            std::fs::read(mnist_dir().join(file)).unwrap(),
            "{file} as served"
        );
    }
    let fetched = server.requests();
    assert_eq!(fetched.len(), 4, "{fetched:?}");

    // The next run reads them locally.
    assert_exit!(run(&ws, &dir, &server), 0);
    assert_eq!(server.requests().len(), 4, "nothing downloaded again");
}

#[test]
fn only_the_missing_part_is_downloaded() {
    let ws = Workspace::new();
    let server = Server::mnist(|_| {});
    let dir = ws.path().join("mnist");
    std::fs::create_dir(&dir).unwrap();
    for file in &FILES[..2] {
        std::fs::copy(mnist_dir().join(file), dir.join(file)).unwrap();
    }
    assert_exit!(run(&ws, &dir, &server), 0);
    assert_eq!(
        server.requests(),
        [
            "/mnist/t10k-images-idx3-ubyte.gz",
            "/mnist/t10k-labels-idx1-ubyte.gz"
        ]
    );
}

#[test]
fn a_failed_download_names_the_url_and_leaves_nothing() {
    let ws = Workspace::new();
    let server = Server::mnist(|files| {
        files.remove("/mnist/train-labels-idx1-ubyte.gz");
    });
    let dir = ws.path().join("mnist");
    let output = run(&ws, &dir, &server);
    assert_exit!(output, 2);
    let message = stderr(&output);
    for expected in [
        format!("{}: no MNIST-format files here", dir.display()),
        format!(
            "downloading {}/mnist/train-labels-idx1-ubyte.gz",
            server.url
        ),
        "404".into(),
        "Put the four MNIST files".into(),
    ] {
        assert!(message.contains(&expected), "{expected:?} in {message}");
    }
    assert!(
        !dir.exists(),
        "{} was made for the download and is gone again",
        dir.display()
    );
}

#[test]
fn a_bad_download_is_checked_like_a_local_file_and_not_kept() {
    let ws = Workspace::new();
    let server = Server::mnist(|files| {
        // An error page where the labels should be.
        files.insert(
            "/mnist/t10k-labels-idx1-ubyte.gz".into(),
            b"<html>Service Unavailable</html>".to_vec(),
        );
    });
    let dir = ws.path().join("mnist");
    let output = run(&ws, &dir, &server);
    assert_exit!(output, 2);
    let message = stderr(&output);
    for expected in [
        format!(
            "checking the mnist files downloaded from {}/mnist",
            server.url
        ),
        "t10k-labels-idx1-ubyte.gz".into(),
    ] {
        assert!(message.contains(&expected), "{expected:?} in {message}");
    }
    // The training part had downloaded correctly and is kept; the bad test part is not.
    assert_eq!(
        names_in(&dir),
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    );
}

#[test]
fn a_directory_that_cannot_be_written_still_gets_the_run_its_data() {
    let ws = Workspace::new();
    let server = Server::mnist(|_| {});
    // Permissions do not stop root, who may run the tests; a directory in /proc can be
    // created by nobody, and it is "missing", not unreadable.
    let output = run(&ws, Path::new("/proc/smoothlab-mnist"), &server);
    assert_exit!(output, 0);
    assert!(
        stderr(&output).contains("the downloaded mnist files are used without a local copy"),
        "{}",
        stderr(&output)
    );
    // Fetched by the check before the run and again by the run's worker: nothing kept.
    assert_eq!(server.requests().len(), 8, "{:?}", server.requests());
}
