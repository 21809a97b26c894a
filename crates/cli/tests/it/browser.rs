//! The console in a real browser: Debian's chromium, headless, driven through chromedriver
//! (scripts/test.sh installs both). After the quickstart, a newcomer's path: the overview shows
//! the three demo tables, a fourth table is defined in the form, loaded with its button, and
//! the table's page updates itself (htmx) to show the run and its rows, which the Delta table
//! holds. Screenshots of the main pages go to `DATALOADER_TEST_SCREENSHOTS` (test.sh prints
//! the folder), at a desktop and at a phone's width.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dataloader_lake::DeltaDestination;
use fantoccini::{Client, ClientBuilder, Locator};

use crate::console::serve;
use crate::dataloader;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free port, and a headless chromium session through it.
async fn browser(profile: &std::path::Path) -> (Driver, Client) {
    let port = dataloader_testkit::free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    // The flags this machine needs: no sandbox as root, and no background traffic, which its
    // closed network refuses.
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"binary": CHROMIUM, "args": args}),
    );
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => return (driver, client),
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no chromium session through chromedriver: {e}"),
        }
    }
}

/// Where screenshots go: the folder test.sh names, or one beside the other temporary files.
fn screenshots() -> std::path::PathBuf {
    let dir = std::env::var_os("DATALOADER_TEST_SCREENSHOTS")
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("dataloader-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is not a PNG");
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until the page's text contains `text` (a live part reloads every 5 s).
async fn wait_for_text(client: &Client, text: &str, within: Duration) -> String {
    let started = Instant::now();
    loop {
        // One script call: a page that navigates or swaps meanwhile leaves no stale element.
        let body = client
            .execute(
                "return document.body ? document.body.innerText : '';",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        if body.contains(text) {
            return body;
        }
        assert!(
            started.elapsed() < within,
            "\"{text}\" never showed:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_sees_the_quickstart_defines_a_table_and_loads_it_in_chromium() {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        eprintln!("NOTICE: {CHROMIUM} or {CHROMEDRIVER} is missing: skipping the browser test (scripts/test.sh installs Debian's chromium and chromium-driver)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    dataloader(dir.path(), &["quickstart", "--dir", "qs"]).ok();
    let qs = dir.path().join("qs");
    let (_served, base, line) = serve(&qs, "127.0.0.1:0");
    assert!(line.contains("no token needed"), "{line}");
    let (_driver, client) = browser(&dir.path().join("profile")).await;
    client.set_window_size(1280, 900).await.unwrap();

    // The overview: the three demo tables, loaded; times in the viewer's zone, not UTC text.
    client.goto(&format!("{base}/")).await.unwrap();
    let overview = wait_for_text(&client, "All tables", Duration::from_secs(10)).await;
    assert!(
        overview.contains("3\nAll tables") || overview.contains("3 All tables"),
        "{overview}"
    );
    let shown_time = client
        .find(Locator::Css("time[datetime]"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !shown_time.contains("UTC"),
        "the script did not localise: {shown_time}"
    );
    shot(&client, "overview").await;
    client.goto(&format!("{base}/tables")).await.unwrap();
    let tables = wait_for_text(&client, "bronze.demo.products", Duration::from_secs(10)).await;
    for table in ["bronze.demo.customers", "bronze.demo.orders"] {
        assert!(tables.contains(table), "{table} not listed");
    }
    shot(&client, "tables").await;

    // A fourth table, defined in the form.
    client
        .find(Locator::LinkText("New table"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("form.define"))
        .await
        .unwrap();
    let field = |css| client.find(Locator::Css(css));
    field("[name=source]")
        .await
        .unwrap()
        .send_keys("orders")
        .await
        .unwrap();
    field("[name=destination]")
        .await
        .unwrap()
        .send_keys("bronze.demo.orders_snapshot")
        .await
        .unwrap();
    field("[name=strategy]")
        .await
        .unwrap()
        .select_by_value("full")
        .await
        .unwrap();
    shot(&client, "define-table").await;
    client
        .find(Locator::Css("form.define button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let defined = wait_for_text(&client, "The table was created.", Duration::from_secs(10)).await;
    assert!(defined.contains("never loaded"), "{defined}");

    // Loaded with its button; the page shows the run when it ends, without a reload.
    client
        .find(Locator::XPath("//button[text()='Load now']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "A load started.", Duration::from_secs(10)).await;
    let page = wait_for_text(&client, "5,000", Duration::from_secs(90)).await;
    assert!(page.contains("Succeeded"), "{page}");
    // Loaded again, the page reads the Delta table the load wrote.
    client.refresh().await.unwrap();
    let page = wait_for_text(&client, "version 0", Duration::from_secs(10)).await;
    assert!(page.contains("found by its path"), "{page}");
    shot(&client, "table").await;
    let url = format!(
        "file://{}/lakehouse/bronze/demo/orders_snapshot",
        qs.display()
    );
    let delta = DeltaDestination::new(&url, "bronze.demo.orders_snapshot")
        .unwrap()
        .read_all(&["order_id"])
        .await
        .unwrap();
    assert_eq!(delta.iter().map(|b| b.num_rows()).sum::<usize>(), 5000);

    // Its run.
    client
        .find(Locator::Css("a[href^='/runs/']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let run = wait_for_text(&client, "Rows written", Duration::from_secs(10)).await;
    assert!(run.contains("5,000") && run.contains("manual"), "{run}");
    shot(&client, "run").await;

    // At a phone's width the page itself does not scroll sideways (wide tables scroll in their
    // own box).
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&format!("{base}/")).await.unwrap();
    wait_for_text(&client, "All tables", Duration::from_secs(10)).await;
    let fits = client
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        serde_json::json!(true),
        "the overview is wider than a phone"
    );
    shot(&client, "overview-phone").await;
    client.close().await.unwrap();
}
