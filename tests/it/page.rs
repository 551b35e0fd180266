//! The status page (`GET /` of the admin API) in a real headless Chromium: `polaris-plugin
//! run` with two companions, the page driven through chromedriver (WebDriver).
//!
//! Without chromium and chromedriver these tests say NOT RUN and pass (see
//! `support::browser`); `.ci/install-browser` installs them.

use std::{
    collections::HashMap,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, Locator};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use serde_json::{Value, json};

use crate::support::{
    bin,
    browser::{self, Browser, click, png_size, until},
    companion_yaml, scratch_dir,
};

/// How long the page may take to show a change (it refreshes every 2 s).
const SHOWS: Duration = Duration::from_secs(30);
/// How long companions may take to start.
const STARTS: Duration = Duration::from_secs(60);
/// The viewport: wide enough for the table's columns; the size of docs/status-page.png.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_every_plugin_and_its_buttons_work() {
    let Some(session) =
        Session::open("status_page_shows_every_plugin_and_its_buttons_work", None).await
    else {
        return;
    };
    let (host, page) = (&session.host, &session.browser.client);
    assert_eq!(page.title().await.unwrap(), "polaris-plugin host");

    let rows = wait_rows(page, "both plugins ready", |rows| {
        PLUGINS
            .iter()
            .all(|name| rows.get(*name).is_some_and(|r| r.state == "ready"))
    })
    .await;
    for name in PLUGINS {
        let row = &rows[name];
        assert_eq!(row.cell("Plugin"), format!("{name}\ncompanion"));
        assert_eq!(row.cell("PID"), host.plugin(name)["pid"].to_string());
        let badge = page
            .find(Locator::Css(&format!(
                "#plugins tr[data-plugin=\"{name}\"] .state"
            )))
            .await
            .unwrap();
        assert_eq!(badge.text().await.unwrap(), "ready");
    }

    // A few calls, so the numbers show (and docs/status-page.png has some).
    for (name, calls) in [(EAST, 7), (WEST, 3)] {
        for _ in 0..calls {
            host.call(name);
        }
        let shown = format!("{calls} / 0 / 0");
        wait_rows(page, &format!("{name}'s calls: {shown}"), |rows| {
            rows.get(name)
                .is_some_and(|r| r.cell("Calls ok / error / timeout") == shown)
        })
        .await;
    }

    // disable, enable, restart: by the buttons; seen in the table and through the API.
    click(page, &button(EAST, "disable")).await;
    wait_rows(page, "east disabled", |rows| rows[EAST].state == "disabled").await;
    assert_eq!(host.plugin(EAST)["state"], "disabled");
    assert_eq!(host.plugin(WEST)["state"], "ready", "only east is disabled");

    click(page, &button(EAST, "enable")).await;
    let rows = wait_rows(page, "east ready again", |rows| rows[EAST].state == "ready").await;
    let east = host.plugin(EAST);
    assert_eq!(east["state"], "ready");
    let pid = east["pid"].as_u64().expect("a running companion has a pid");
    assert_eq!(rows[EAST].cell("PID"), pid.to_string());

    click(page, &button(EAST, "restart")).await;
    let rows = wait_rows(page, "east restarted: ready with a new pid", |rows| {
        rows[EAST].state == "ready" && rows[EAST].cell("PID") != pid.to_string()
    })
    .await;
    let east = host.plugin(EAST);
    assert_eq!(east["state"], "ready");
    assert_ne!(
        east["pid"].as_u64(),
        Some(pid),
        "restart starts a new process"
    );
    assert_eq!(rows[EAST].cell("PID"), east["pid"].to_string());
    assert_eq!(text(page, "#error").await, "", "no error shown");

    // The events the buttons caused are listed.
    let events = until(SHOWS, "east's disable in the events", || async {
        let events = text(page, "#events").await;
        match events
            .lines()
            .any(|l| l.contains(EAST) && l.contains("disabled"))
        {
            true => Ok(events),
            false => Err(events),
        }
    })
    .await;
    assert!(events.contains(WEST), "{events}");
    let seqs = page
        .execute(
            "return Array.from(document.querySelectorAll('#events [data-seq]'), (e) => Number(e.dataset.seq));",
            vec![],
        )
        .await
        .unwrap();
    let seqs: Vec<u64> = serde_json::from_value(seqs).unwrap();
    assert!(
        !seqs.is_empty() && seqs.windows(2).all(|w| w[0] > w[1]),
        "events newest first, each once: {seqs:?}"
    );

    // The buttons stay the same elements across refreshes (a click cannot land on a
    // replaced one).
    let restart = page
        .find(Locator::Css(&button(WEST, "restart")))
        .await
        .unwrap();
    let meta = text(page, "#meta").await;
    until(SHOWS, "a refresh", || async {
        let now = text(page, "#meta").await;
        if now != meta { Ok(()) } else { Err(now) }
    })
    .await;
    let after = restart.text().await;
    assert!(
        matches!(&after, Ok(t) if t == "restart"),
        "the button was replaced by a refresh: {after:?}"
    );

    // What a person sees: every plugin's name in the rendered text, and a screenshot.
    let body = text(page, "body").await;
    for name in PLUGINS {
        assert!(body.contains(name), "{name} not on the page: {body}");
    }
    assert!(body.contains("2 of 2 plugins ready"), "{body}");
    let png = page.screenshot().await.unwrap();
    let (width, height) = png_size(&png);
    assert!(
        (WIDTH / 2..=WIDTH * 3).contains(&width) && (HEIGHT / 2..=HEIGHT * 3).contains(&height),
        "screenshot is {width}x{height}"
    );
    assert!(
        png.len() > 10_000,
        "a {} byte screenshot is blank",
        png.len()
    );
    // POLARIS_PLUGIN_SCREENSHOT=docs/status-page.png keeps it (how the docs' one was made).
    if let Some(path) = std::env::var_os("POLARIS_PLUGIN_SCREENSHOT") {
        std::fs::write(&path, &png).unwrap();
    }

    session.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_asks_for_the_token_and_then_shows_the_plugins() {
    let Some(session) = Session::open(
        "status_page_asks_for_the_token_and_then_shows_the_plugins",
        Some("page-test-token"),
    )
    .await
    else {
        return;
    };
    let page = &session.browser.client;

    let form = page.find(Locator::Id("token")).await.unwrap();
    until(SHOWS, "the token form shown", || async {
        match form.is_displayed().await {
            Ok(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let error = text(page, "#error").await;
    assert!(error.contains("token"), "{error}");
    assert!(
        read_rows(page).await.is_empty(),
        "no rows without the token"
    );

    page.find(Locator::Id("token-input"))
        .await
        .unwrap()
        .send_keys("page-test-token")
        .await
        .unwrap();
    click(page, "#token button[type=submit]").await;
    wait_rows(page, "both plugins with the token", |rows| {
        PLUGINS.iter().all(|name| rows.contains_key(*name))
    })
    .await;
    assert!(!form.is_displayed().await.unwrap(), "the form is hidden");
    assert_eq!(text(page, "#error").await, "");

    session.finish().await;
}

/// `polaris-plugin run` with the two companions, and its page open in a headless browser.
struct Session {
    browser: Browser,
    host: Host,
    dir: PathBuf,
}

impl Session {
    /// `None` when the browser is not installed (the test is then not run). With `token`,
    /// the admin API requires it (`admin.token-file`).
    async fn open(test: &str, token: Option<&str>) -> Option<Session> {
        let tools = browser::tools_or_not_run(test)?;
        let dir = scratch_dir("page");
        let top = match token {
            Some(token) => {
                std::fs::write(dir.join("token"), format!("{token}\n")).unwrap();
                "admin:\n  token-file: token\n"
            }
            None => "",
        };
        let host = Host::start(&dir, &two_plugins(top));
        let browser = Browser::start(&tools, &dir, WIDTH, HEIGHT).await;
        browser.client.goto(&host.url).await.unwrap();
        Some(Session { browser, host, dir })
    }

    /// Closes the browser, stops the host (it must exit 0) and removes the files.
    async fn finish(self) {
        let Session { browser, host, dir } = self;
        browser.close().await;
        assert!(host.stop().success(), "the host exits 0 on SIGTERM");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

const EAST: &str = "ratelimit-east";
const WEST: &str = "ratelimit-west";
const PLUGINS: [&str; 2] = [EAST, WEST];

/// A config with the two companions (the example rate-limit plugin twice) and `top` lines.
fn two_plugins(top: &str) -> String {
    let plugin = |name| companion_yaml(name, &bin("rate-limit-server-v2"), &[], "");
    let second = plugin(WEST);
    format!(
        "{top}{}{}",
        plugin(EAST),
        second.strip_prefix("plugins:\n").unwrap()
    )
}

fn button(plugin: &str, action: &str) -> String {
    format!("#plugins tr[data-plugin=\"{plugin}\"] button[data-action=\"{action}\"]")
}

/// The rendered text of the element `css` finds.
async fn text(page: &Client, css: &str) -> String {
    page.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A row of the page's table: its `data-plugin`, state badge, and cells by column title.
#[derive(Debug)]
struct Row {
    state: String,
    cells: HashMap<String, String>,
}

impl Row {
    fn cell(&self, column: &str) -> &str {
        self.cells
            .get(column)
            .unwrap_or_else(|| panic!("no column {column:?} in {self:?}"))
    }
}

/// The table now, by plugin (rows without `data-plugin` are left out). Read in one script,
/// so a refresh replacing the rows cannot tear it.
async fn read_rows(page: &Client) -> HashMap<String, Row> {
    const SCRIPT: &str = r##"
        const columns = Array.from(document.querySelectorAll("thead th"), (th) => th.innerText);
        return Array.from(document.querySelectorAll("#plugins tr"), (tr) => ({
            plugin: tr.dataset.plugin ?? null,
            state: tr.querySelector(".state")?.innerText ?? "",
            cells: Object.fromEntries(Array.from(tr.cells, (td, i) => [columns[i], td.innerText])),
        }));
    "##;
    let rows = page.execute(SCRIPT, vec![]).await.unwrap();
    let rows = rows.as_array().expect("the script returns a list");
    rows.iter()
        .filter_map(|row| {
            let plugin = row["plugin"].as_str()?.to_owned();
            let cells = serde_json::from_value(row["cells"].clone()).unwrap();
            let state = row["state"].as_str().unwrap_or_default().to_owned();
            Some((plugin, Row { state, cells }))
        })
        .collect()
}

/// Polls the table until `done` holds for it (bounded); returns it.
async fn wait_rows(
    page: &Client,
    what: &str,
    done: impl Fn(&HashMap<String, Row>) -> bool,
) -> HashMap<String, Row> {
    let done = &done;
    until(SHOWS, what, || async move {
        let rows = read_rows(page).await;
        let complete = PLUGINS.iter().all(|name| rows.contains_key(*name));
        match complete && done(&rows) {
            true => Ok(rows),
            false => Err(format!(
                "{rows:?}; the page's error: {:?}",
                text(page, "#error").await
            )),
        }
    })
    .await
}

/// `polaris-plugin run` with the admin API on a free port. Dropping it stops it (SIGTERM,
/// then SIGKILL if it lingers); its log is printed when a test fails.
struct Host {
    child: Child,
    url: String,
    log: PathBuf,
    /// The bearer token, when the test wrote one (`token` beside the config).
    token: Option<String>,
    /// Kept open: the host's stdout is a pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Host {
    fn start(dir: &Path, yaml: &str) -> Host {
        let config = dir.join("host.yaml");
        std::fs::write(&config, yaml).unwrap();
        let log = dir.join("host.log");
        let mut child = Command::new(bin("polaris-plugin"))
            .arg("run")
            .arg(&config)
            .args(["--admin-listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start polaris-plugin run");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        const SAYS: &str = "admin API and status page at ";
        let mut line = String::new();
        while !line.contains(SAYS) {
            line.clear();
            let n = stdout.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "polaris-plugin run did not say where its admin API is; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        let url = line.split_once(SAYS).unwrap().1.trim().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
        let host = Host {
            child,
            url,
            log,
            token: std::fs::read_to_string(dir.join("token")).ok(),
            _stdout: stdout,
        };
        host.wait_ready();
        host
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + STARTS;
        loop {
            let (status, body) = self.http("GET", "/readyz", None);
            if status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not ready after {STARTS:?}: {body}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `GET /maintain/v1/plugins/{name}` (with the token, if the host has one).
    fn plugin(&self, name: &str) -> Value {
        let (status, body) = self.http("GET", &format!("/maintain/v1/plugins/{name}"), None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// One call through the admin API; it must be allowed.
    fn call(&self, name: &str) {
        let request = json!({
            "message": "RateLimitPluginRequest",
            "json": {"type": "APIRatelimit", "key": "/users"},
        });
        let path = format!("/maintain/v1/plugins/{name}/call");
        let (status, body) = self.http("POST", &path, Some(&request));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reply"]["allow"], true, "{body}");
    }

    /// An HTTP/1.1 request to the admin API; its status and JSON body.
    fn http(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let authority = self.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(authority).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let token = match &self.token {
            Some(token) => format!("Authorization: Bearer {}\r\n", token.trim()),
            None => String::new(),
        };
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// SIGTERM, and its exit (at most 30 s).
    fn stop(mut self) -> ExitStatus {
        self.terminate()
            .expect("polaris-plugin run exits on SIGTERM")
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.terminate().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let _ = writeln!(std::io::stderr(), "polaris-plugin run's log:\n{log}");
        }
    }
}
