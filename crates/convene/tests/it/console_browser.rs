//! The web console end to end in a real headless Chromium driven over
//! WebDriver (chromedriver + fantoccini): log in, create a service account
//! and an API key (its token shown once), see a contact identified through
//! the ConveYour dialect, answer a conversation, read the reports, log out.
//! Screenshots of every page land in `CONVENE_SCREENSHOT_DIR` (default
//! `target/console-screenshots/`).
//!
//! Needs Debian's `chromium` and `chromium-driver` (`/usr/bin/chromium`,
//! `/usr/bin/chromedriver`): the test fails, loudly, without them.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::Method;
use serde_json::{Value, json};

use crate::ingest_support::{contact_by, wait_applied};
use crate::support::{MASTER, TestApp, spawn_app};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest any single wait may take.
const WAIT: Duration = Duration::from_secs(10);

const ADMIN_EMAIL: &str = "ada@example.com";
const ADMIN_PASSWORD: &str = "correct horse battery";

/// A chromedriver child process, killed (that process only) on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free local port (bound, then released).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("a local address").port()
}

/// Starts chromedriver on a free port and waits (10 s at most) until it accepts connections.
fn start_driver() -> Driver {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "the console browser test needs {CHROMIUM} and {CHROMEDRIVER}: install them with \
         `sudo apt-get install chromium chromium-driver`"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e} (install `chromium chromium-driver`)"));
    let mut driver = Driver { child, port };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + WAIT;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return driver;
        }
        if let Ok(Some(status)) = driver.child.try_wait() {
            panic!("chromedriver exited before listening on port {port}: {status}");
        }
        assert!(Instant::now() < deadline, "chromedriver does not listen on port {port} after 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where screenshots go (created).
fn screenshot_dir() -> PathBuf {
    let dir = match std::env::var_os("CONVENE_SCREENSHOT_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// A headless Chromium session with a fresh profile.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else { unreachable!("a JSON object literal") };
    let caps: Capabilities = caps;
    let mut builder = ClientBuilder::new(HttpConnector::new());
    builder.capabilities(caps);
    let url = format!("http://127.0.0.1:{}", driver.port);
    tokio::time::timeout(Duration::from_secs(20), builder.connect(&url))
        .await
        .expect("chromedriver starts a Chromium session within 20 s")
        .unwrap_or_else(|e| panic!("chromedriver refused a session (is chromium installed?): {e}"))
}

/// The browser and the server under test, with small helpers that fail
/// with a clear message.
struct Ui<'a> {
    c: &'a Client,
    app: &'a TestApp,
    shots: PathBuf,
}

impl Ui<'_> {
    async fn goto(&self, path: &str) {
        let url = self.app.url(path);
        self.c.goto(&url).await.unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    async fn wait_css(&self, css: &str) -> Element {
        match self.c.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no element `{css}` within 10 s on {}: {e}\n{}", self.url().await, self.source().await),
        }
    }

    async fn wait_xpath(&self, xpath: &str) -> Element {
        match self.c.wait().at_most(WAIT).for_element(Locator::XPath(xpath)).await {
            Ok(e) => e,
            Err(e) => panic!("no element `{xpath}` within 10 s on {}: {e}\n{}", self.url().await, self.source().await),
        }
    }

    /// Waits for the `<h1>` with exactly `text`.
    async fn heading(&self, text: &str) -> Element {
        self.wait_xpath(&format!("//h1[normalize-space()='{text}']")).await
    }

    async fn all(&self, css: &str) -> Vec<Element> {
        self.c.find_all(Locator::Css(css)).await.unwrap_or_else(|e| panic!("find_all `{css}`: {e}"))
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_css(css).await;
        field.clear().await.unwrap_or_else(|e| panic!("clear `{css}`: {e}"));
        field.send_keys(text).await.unwrap_or_else(|e| panic!("type into `{css}`: {e}"));
    }

    async fn click_css(&self, css: &str) {
        self.wait_css(css).await.click().await.unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Clicks the button whose text is exactly `text`.
    async fn click_button(&self, text: &str) {
        let xpath = format!("//button[normalize-space()='{text}']");
        self.wait_xpath(&xpath).await.click().await.unwrap_or_else(|e| panic!("click button '{text}': {e}"));
    }

    async fn text(&self, element: &Element) -> String {
        element.text().await.expect("an element's text")
    }

    async fn source(&self) -> String {
        self.c.source().await.unwrap_or_else(|e| format!("(no page source: {e})"))
    }

    async fn url(&self) -> String {
        self.c.current_url().await.map(|u| u.to_string()).unwrap_or_else(|e| format!("(no url: {e})"))
    }

    async fn path(&self) -> String {
        self.c.current_url().await.expect("the current URL").path().to_string()
    }

    async fn shot(&self, name: &str) {
        let png = self.c.screenshot().await.unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

#[tokio::test]
async fn console_end_to_end_in_chromium() {
    let driver = start_driver();
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    let (status, admin) = app
        .post(
            &format!("/v1/workspaces/{ws}/users"),
            MASTER,
            json!({"name": "Ada Admin", "email": ADMIN_EMAIL, "role": "admin", "password": ADMIN_PASSWORD}),
        )
        .await;
    assert_eq!(status, 201, "{admin}");
    let key = app.key(&ws, json!({"name": "api", "kind": "full"})).await;
    let token = key["token"].as_str().expect("a token").to_string();

    let profile = tempfile::tempdir().expect("a profile directory");
    let client = browser(&driver, profile.path()).await;
    let ui = Ui { c: &client, app: &app, shots: screenshot_dir() };
    let outcome = AssertUnwindSafe(async {
        tokio::time::timeout(Duration::from_secs(90), flow(&ui, &token))
            .await
            .expect("the browser flow finishes within 90 s")
    })
    .catch_unwind()
    .await;
    // Quit Chromium whatever happened; chromedriver dies with `driver`.
    let _ = client.close().await;
    drop(driver);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn flow(ui: &Ui<'_>, token: &str) {
    login(ui).await;
    let account = service_account(ui).await;
    api_key(ui, &account).await;
    let contact = contact(ui, token).await;
    conversation(ui, token, contact).await;
    reports(ui).await;
    phone(ui).await;
    logout(ui).await;
}

/// A wrong password is refused on the page; the right one lands on the inbox.
async fn login(ui: &Ui<'_>) {
    ui.goto("/console/conversations").await;
    ui.heading("Log in to convene").await;
    assert_eq!(ui.path().await, "/console/login", "a visitor without a session is sent to the login page");
    ui.shot("01-login").await;
    ui.fill("#email", ADMIN_EMAIL).await;
    ui.fill("#password", "not the password").await;
    ui.click_button("Log in").await;
    let error = ui.wait_css("p.error").await;
    assert_eq!(ui.text(&error).await, "Wrong email or password.");
    ui.fill("#email", ADMIN_EMAIL).await;
    ui.fill("#password", ADMIN_PASSWORD).await;
    ui.click_button("Log in").await;
    ui.heading("Conversations").await;
    assert_eq!(ui.path().await, "/console/conversations", "login returns to the page asked for");
    let who = ui.text(&ui.wait_css("header .who").await).await;
    assert!(who.contains("Ada Admin") && who.contains("admin"), "{who}");
}

/// Settings → Service accounts: creates one; returns its name.
async fn service_account(ui: &Ui<'_>) -> String {
    let name = "Sync robot";
    ui.click_css("header nav a[href='/console/settings']").await;
    ui.wait_xpath("//h2[normalize-space()='Service accounts']").await;
    ui.fill("#sa-name", name).await;
    ui.fill("#sa-description", "Nightly CRM sync").await;
    ui.fill("#sa-teams", "Sales").await;
    ui.click_css("input[type=checkbox][name=scopes][value='contacts:read']").await;
    ui.click_button("Create service account").await;
    ui.heading(&format!("Service account: {name}")).await;
    let notice = ui.text(&ui.wait_css("p.notice").await).await;
    assert_eq!(notice, "Service account created.");
    let checked: Vec<String> = {
        let mut out = Vec::new();
        for b in ui.all("input[type=checkbox][name=scopes]").await {
            if b.is_selected().await.expect("checkbox state") {
                out.push(b.attr("value").await.expect("value").unwrap_or_default());
            }
        }
        out
    };
    assert_eq!(checked, ["contacts:read"], "the account holds exactly the ticked permission");
    let teams = ui.wait_css("#sa-teams").await.prop("value").await.expect("teams value");
    assert_eq!(teams.as_deref(), Some("Sales"));
    ui.shot("02-service-account").await;

    ui.click_css("nav.filters a[href='/console/settings/service-accounts']").await;
    let row = ui.wait_xpath(&format!("//table//tr[td/a[normalize-space()='{name}']]")).await;
    let row_text = ui.text(&row).await;
    assert!(
        row_text.contains("Nightly CRM sync") && row_text.contains("Sales") && row_text.contains("contacts:read"),
        "{row_text}"
    );
    ui.shot("03-service-accounts").await;
    name.to_string()
}

/// Settings → API keys: a full key for the account; its token is shown
/// once, works on the API, and is gone from the list afterwards.
async fn api_key(ui: &Ui<'_>, account: &str) {
    ui.click_css("nav.filters a[href='/console/settings/keys']").await;
    ui.wait_xpath("//h2[normalize-space()='Create API key']").await;
    ui.fill("#key-name", "CRM sync key").await;
    ui.click_css("input[type=radio][name=kind][value=full]").await;
    ui.wait_css("#key-account")
        .await
        .select_by_label(account)
        .await
        .unwrap_or_else(|e| panic!("choose the service account '{account}': {e}"));
    ui.click_button("Create API key").await;
    let shown = ui.wait_css("#new-token").await;
    let new_token = ui.text(&shown).await.trim().to_string();
    assert!(new_token.starts_with("cvn_"), "the token is shown: {new_token:?}");
    let warning = ui.text(&ui.wait_css("p.warning").await).await;
    assert!(warning.contains("will not be shown again"), "{warning}");
    let preview = ui.text(&ui.wait_xpath("//p[contains(., 'preview')]/code").await).await;
    assert!(!preview.is_empty() && preview != new_token, "a preview, not the token: {preview:?}");
    ui.shot("04-keys-new-token").await;

    ui.goto("/console/settings/keys").await;
    ui.wait_xpath("//h2[normalize-space()='API keys']").await;
    let row = ui.wait_xpath("//table//tr[td[normalize-space()='CRM sync key']]").await;
    let row_text = ui.text(&row).await;
    assert!(row_text.contains(&preview) && row_text.contains(account) && row_text.contains("full"), "{row_text}");
    let source = ui.source().await;
    assert!(!source.contains(&new_token), "the token is shown once only");
    assert!(ui.all("#new-token").await.is_empty());
    ui.shot("05-keys").await;

    let (status, body) = ui.app.get("/v1/contacts", &new_token).await;
    assert_eq!(status, 200, "the new key reads contacts: {body}");
    let (status, body) = ui.app.get("/v1/conversations", &new_token).await;
    assert_eq!(status, 403, "the new key holds only contacts:read: {body}");

    ui.click_css("nav.filters a[href='/console/settings/fields']").await;
    ui.wait_xpath("//h2[normalize-space()='Create field']").await;
    assert!(!ui.all("table tbody tr td code").await.is_empty(), "the fields table lists fields");
    ui.shot("06-fields").await;

    ui.click_css("nav.filters a[href='/console/settings/users']").await;
    ui.wait_xpath("//h2[normalize-space()='Add user']").await;
    ui.wait_xpath(&format!("//table//tr[td[normalize-space()='{ADMIN_EMAIL}']]")).await;
    ui.shot("07-users").await;
}

/// A contact identified through the ConveYour dialect shows up in the list
/// after a refresh; its page opens. Returns its id.
async fn contact(ui: &Ui<'_>, token: &str) -> i64 {
    let email = "zoe@example.com";
    ui.click_css("header nav a[href='/console/contacts']").await;
    ui.heading("Contacts").await;
    assert!(!ui.source().await.contains(email));

    let r = ui
        .app
        .req(Method::POST, "/compat/conveyour/api/analytics/identify")
        .header("x-conveyour-token", token)
        .header("x-conveyour-appkey", "ignored")
        .json(&json!({"id": "$email", "traits": {"email": email, "first_name": "Zoe", "plan": "pro", "tags": ["vip"]}}))
        .send()
        .await
        .expect("the identify request is answered");
    assert_eq!(r.status().as_u16(), 200);
    let job = r.headers().get("convene-job-id").and_then(|v| v.to_str().ok()).expect("a job id").to_string();
    wait_applied(ui.app, token, &job).await;
    let id = contact_by(ui.app, token, "email", email).await["id"].as_i64().expect("a contact id");

    ui.c.refresh().await.expect("refresh the contacts page");
    let link = ui.wait_xpath(&format!("//table//a[normalize-space()='{email}']")).await;
    ui.shot("08-contacts").await;
    link.click().await.expect("open the contact");
    ui.heading(email).await;
    assert_eq!(ui.path().await, format!("/console/contacts/{id}"));
    let identity = ui.text(&ui.wait_css("dl.props").await).await;
    assert!(identity.contains(&id.to_string()), "{identity}");
    let source = ui.source().await;
    assert!(source.contains("Zoe") && source.contains("pro") && source.contains("vip"), "traits and tags shown");
    ui.shot("09-contact").await;
    id
}

/// A conversation made over the API, answered in the console.
async fn conversation(ui: &Ui<'_>, token: &str, contact: i64) {
    let subject = "Where is my order?";
    let (status, conv) =
        ui.app.post("/v1/conversations", token, json!({"contact_id": contact, "subject": subject})).await;
    assert_eq!(status, 201, "{conv}");
    let id = conv["id"].as_str().expect("a conversation id").to_string();
    let (status, m) = ui
        .app
        .post(
            &format!("/v1/conversations/{id}/messages"),
            token,
            json!({"content": "My parcel has not arrived.", "type": "incoming"}),
        )
        .await;
    assert_eq!(status, 201, "{m}");

    ui.click_css("header nav a[href='/console/conversations']").await;
    ui.heading("Conversations").await;
    let link = ui.wait_xpath(&format!("//table//a[normalize-space()='{subject}']")).await;
    let row = ui.text(&ui.wait_xpath(&format!("//table//tr[td/a[normalize-space()='{subject}']]")).await).await;
    assert!(row.contains("zoe@example.com") && row.contains("open"), "{row}");
    ui.shot("10-inbox").await;
    link.click().await.expect("open the conversation");
    ui.heading(subject).await;
    assert_eq!(ui.path().await, format!("/console/conversations/{id}"));
    let incoming = ui.text(&ui.wait_css("ol.thread li.incoming").await).await;
    assert!(incoming.contains("My parcel has not arrived."), "{incoming}");
    assert!(ui.all("ol.thread li.outgoing").await.is_empty() && ui.all("ol.thread li.note").await.is_empty());

    let reply = "Sorry about that, Zoe: it ships today.";
    ui.fill("#m-content", reply).await;
    ui.click_button("Send reply").await;
    let outgoing = ui.text(&ui.wait_css("ol.thread li.outgoing").await).await;
    assert!(outgoing.contains(reply) && outgoing.contains("Ada Admin"), "{outgoing}");
    assert_eq!(ui.text(&ui.wait_css("p.notice").await).await, "Reply sent.");

    let note = "Checked with the warehouse.";
    ui.fill("#m-content", note).await;
    ui.click_button("Add private note").await;
    let noted = ui.text(&ui.wait_css("ol.thread li.note").await).await;
    assert!(noted.contains(note) && noted.contains("Private note"), "{noted}");
    assert!(!noted.contains(reply));
    assert_eq!(ui.all("ol.thread li.outgoing").await.len(), 1, "the note is not a reply");

    ui.click_button("Resolve").await;
    ui.wait_xpath("//span[@id='status' and normalize-space()='resolved']").await;
    let activity = ui.text(&ui.wait_css("ol.thread li.activity").await).await;
    assert!(activity.contains("Conversation resolved") && activity.contains("Ada Admin"), "{activity}");
    ui.wait_xpath("//button[normalize-space()='Reopen']").await;
    ui.shot("11-thread").await;

    let (_, all) = ui.app.get(&format!("/v1/conversations/{id}/messages"), token).await;
    let kinds: Vec<&str> =
        all["data"].as_array().expect("messages").iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(kinds, ["incoming", "outgoing", "note", "activity"], "{all}");
}

/// Reports: the dashboard draws at least one SVG chart.
async fn reports(ui: &Ui<'_>) {
    ui.click_css("header nav a[href='/console/reports']").await;
    ui.heading("Reports").await;
    let charts = ui.all("main svg").await;
    assert!(!charts.is_empty(), "the reports page draws an svg chart:\n{}", ui.source().await);
    ui.shot("12-reports").await;
}

/// The inbox at phone width.
async fn phone(ui: &Ui<'_>) {
    ui.c.set_window_size(390, 844).await.expect("a phone-sized window");
    ui.goto("/console/conversations").await;
    ui.heading("Conversations").await;
    ui.wait_xpath("//table//a[normalize-space()='Where is my order?']").await;
    let width: Value =
        ui.c.execute("return document.documentElement.scrollWidth - window.innerWidth;", vec![])
            .await
            .expect("measure the page");
    ui.shot("13-inbox-phone").await;
    assert!(width.as_i64().is_some_and(|w| w <= 0), "the inbox does not scroll sideways at 390 px: {width}");
    ui.c.set_window_size(1280, 900).await.expect("back to a desktop window");
}

/// Log out; the console asks for a login again.
async fn logout(ui: &Ui<'_>) {
    ui.click_button("Log out").await;
    ui.heading("Log in to convene").await;
    ui.goto("/console/conversations").await;
    ui.heading("Log in to convene").await;
    assert_eq!(ui.path().await, "/console/login", "the session is over");
    assert!(ui.all("header nav").await.is_empty());
}
