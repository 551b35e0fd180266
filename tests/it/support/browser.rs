//! Headless Chromium driven through chromedriver (WebDriver), for the status page's tests.
//!
//! The browser is not part of the Rust toolchain: without `chromium` and `chromedriver` a
//! browser test says on stderr that it is NOT RUN (naming the script that installs them) and
//! passes, so a plain `cargo test --workspace` works anywhere. With
//! `POLARIS_PLUGIN_REQUIRE_BROWSER=1` (as `.ci/run` sets) a missing browser fails the test.

use std::{
    future::Future,
    io::{BufRead as _, BufReader, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator, error::CmdError};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use serde_json::json;

/// What installs the browser (as root, from Debian's packages).
pub const INSTALL: &str = ".ci/install-browser";
/// Set to `1` to make a missing browser a failure instead of a test not run.
pub const REQUIRE: &str = "POLARIS_PLUGIN_REQUIRE_BROWSER";

/// The programs a browser test needs.
pub struct Tools {
    pub chromedriver: PathBuf,
    pub chromium: PathBuf,
}

/// The browser's programs, or `None` after saying on stderr that `test` is not run; a
/// panic instead when [`REQUIRE`] is `1`.
pub fn tools_or_not_run(test: &str) -> Option<Tools> {
    let chromedriver = in_path("chromedriver");
    let chromium = in_path("chromium").or_else(|| in_path("chromium-browser"));
    let missing: Vec<&str> = [
        ("chromedriver", chromedriver.is_none()),
        ("chromium", chromium.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, missing)| missing.then_some(name))
    .collect();
    if let (Some(chromedriver), Some(chromium)) = (chromedriver, chromium) {
        return Some(Tools {
            chromedriver,
            chromium,
        });
    }
    let missing = format!(
        "{} not installed (install with {INSTALL}, as root)",
        missing.join(" and ")
    );
    if std::env::var_os(REQUIRE).is_some_and(|v| v == "1") {
        panic!("{test}: {missing}, and {REQUIRE}=1 requires the browser tests to run");
    }
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(std::io::stderr(), "{test}: NOT RUN: {missing}");
    None
}

fn in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// A WebDriver session in a headless Chromium of its own (fresh profile). Dropping it kills
/// chromedriver and the browser; [`close`](Self::close) ends the session first.
pub struct Browser {
    pub client: Client,
    driver: Driver,
}

/// chromedriver in a process group of its own (the browser it starts joins it), and the
/// browser's profile directory.
struct Driver {
    child: Child,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group is the one this test created for chromedriver: it and its browser.
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium whose viewport is `width` x `height`.
    pub async fn start(tools: &Tools, scratch: &Path, width: u32, height: u32) -> Browser {
        let profile = scratch.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(&tools.chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().unwrap();
        let driver = Driver { child, profile };
        let port = read_port(stdout);
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            // The closed network refuses the browser's own connections; ask for none.
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", driver.profile.display()),
            &format!("--window-size={width},{height}"),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": tools.chromium, "args": args }),
        );
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session in headless Chromium");
        // --window-size includes the browser's frame: make the viewport width x height.
        let frame = client
            .execute(
                "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];",
                vec![],
            )
            .await
            .unwrap();
        let frame: [u32; 2] = serde_json::from_value(frame).unwrap();
        client
            .set_window_size(width + frame[0], height + frame[1])
            .await
            .unwrap();
        Browser { client, driver }
    }

    /// Ends the session (the browser exits), then chromedriver.
    pub async fn close(self) {
        let Browser { client, driver } = self;
        let _ = client.close().await;
        drop(driver);
    }
}

/// Reads chromedriver's stdout until it says its port; a thread drains the rest.
fn read_port(stdout: std::process::ChildStdout) -> u16 {
    const SAID: &str = "started successfully on port ";
    let mut reader = BufReader::new(stdout);
    let mut seen = Vec::new();
    loop {
        let buf = reader.fill_buf().expect("read chromedriver's stdout");
        assert!(
            !buf.is_empty(),
            "chromedriver exited before saying its port; it said: {}",
            String::from_utf8_lossy(&seen)
        );
        let n = buf.len();
        seen.extend_from_slice(buf);
        reader.consume(n);
        let text = String::from_utf8_lossy(&seen);
        if let Some((_, rest)) = text.split_once(SAID) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            // The port is complete once something other than a digit follows it.
            if digits.len() < rest.len() {
                std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
                return digits.parse().expect("chromedriver's port");
            }
        }
    }
}

/// Polls `probe` until it gives `Ok`, at most `timeout`; the panic message has what it
/// gave last. For the page, which changes on its own timer and has no event to wait on.
pub async fn until<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Clicks the element `css` finds, finding it again if the page replaced it meanwhile.
pub async fn click(client: &Client, css: &str) {
    until(
        Duration::from_secs(10),
        &format!("a click on {css}"),
        || async {
            let result = match client.find(Locator::Css(css)).await {
                Ok(element) => element.click().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => Ok(()),
                Err(e) if retry(&e) => Err(e.to_string()),
                Err(e) => panic!("click on {css}: {e}"),
            }
        },
    )
    .await
}

/// Errors that mean "not there yet" or "replaced meanwhile".
fn retry(e: &CmdError) -> bool {
    e.is_stale_element_reference() || e.is_no_such_element()
}

/// Checks `png` is a PNG image and gives its width and height.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: starts {:?}",
        &png[..png.len().min(16)]
    );
    assert_eq!(&png[12..16], b"IHDR", "a PNG starts with its IHDR chunk");
    let be = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}
