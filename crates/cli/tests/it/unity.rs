//! Unity Catalog end to end, against minilake (a local Databricks API emulator on DuckDB,
//! started by test.sh): a loaded table is an external Delta table in the catalog, queryable by
//! name through the SQL Statement API and equal to the source row by row; schema evolution
//! re-creates the registration; `catalog sync` reports and repairs drift; a catalog that fails
//! leaves a committed load succeeded, with a note, repaired by the next load.

use serde_json::{json, Value};

use crate::{dataloader_env, PgControl, Run};

const SOURCE: &str = "
    CREATE TABLE orders (id int PRIMARY KEY, customer text, amount numeric(10,2),
        updated_at timestamp(6) NOT NULL);
    INSERT INTO orders SELECT g, 'customer ' || g, g * 1.25, timestamp '2024-01-01' + g * interval '1 minute'
        FROM generate_series(1, 40) g;";

/// minilake's URL, or `None` (said on stderr) when test.sh could not start it.
fn unity_url() -> Option<String> {
    let url = std::env::var("DATALOADER_TEST_UNITY_URL").ok();
    if url.is_none() {
        eprintln!(
            "SKIPPED: DATALOADER_TEST_UNITY_URL is not set (scripts/test.sh starts minilake)"
        );
    }
    url
}

/// One call to the emulator's REST API, answered with JSON.
async fn api(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    api_as(None, method, url, body).await
}

/// [`api`] with a bearer token (a real workspace).
async fn api_as(
    token: Option<&str>,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, url);
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(b.to_string());
    }
    let response = request.send().await.expect("minilake answers");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// One statement run through the SQL Statement API, which must succeed; its answer.
async fn statement(base: &str, sql: &str) -> Value {
    let (_, warehouse) = api(
        reqwest::Method::POST,
        &format!("{base}/api/2.0/sql/warehouses"),
        Some(json!({"name": "tests"})),
    )
    .await;
    let (status, answer) = api(
        reqwest::Method::POST,
        &format!("{base}/api/2.0/sql/statements"),
        Some(json!({"statement": sql, "warehouse_id": warehouse["id"], "wait_timeout": "30s"})),
    )
    .await;
    assert_eq!(status, 200, "{sql}: {answer}");
    assert_eq!(answer["status"]["state"], "SUCCEEDED", "{sql}: {answer}");
    answer
}

/// Rows of `SELECT …` run by name through the SQL Statement API, every value as text.
async fn query(base: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    statement(base, sql).await["result"]["data_array"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
                .collect()
        })
        .collect()
}

struct Unity {
    pg: PgControl,
    base: String,
    catalog: String,
}

impl Unity {
    async fn new(prefix: &str) -> Option<Unity> {
        let base = unity_url()?;
        let pg = PgControl::new(prefix, SOURCE).await;
        // Each test its own catalog (minilake refuses the name `main`).
        let catalog = pg.source.name.replace('-', "_");
        let (status, answer) = api(
            reqwest::Method::POST,
            &format!("{base}/api/2.1/unity-catalog/catalogs"),
            Some(json!({"name": catalog})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        Some(Unity { pg, base, catalog })
    }

    fn run_with(&self, catalog: &str, args: &[&str]) -> Run {
        dataloader_env(
            self.pg.dir.path(),
            args,
            &[
                ("DATALOADER_CONTROL_DB", self.pg.url.as_str()),
                ("DATALOADER_CATALOG", catalog),
            ],
        )
    }

    /// [`Self::run`] with its lake at `lake_root`.
    fn run_in(&self, lake_root: &str, args: &[&str]) -> Run {
        let catalog = format!("unity:{}", self.base);
        dataloader_env(
            self.pg.dir.path(),
            args,
            &[
                ("DATALOADER_CONTROL_DB", self.pg.url.as_str()),
                ("DATALOADER_CATALOG", catalog.as_str()),
                ("DATALOADER_LAKE_ROOT", lake_root),
            ],
        )
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(&format!("unity:{}", self.base), args)
    }

    async fn table(&self, name: &str) -> (u16, Value) {
        api(
            reqwest::Method::GET,
            &format!("{}/api/2.1/unity-catalog/tables/{name}", self.base),
            None,
        )
        .await
    }
}

#[tokio::test]
async fn a_loaded_table_is_queryable_by_name_and_follows_schema_evolution() {
    let Some(u) = Unity::new("uc_e2e").await else {
        return;
    };
    let dest = format!("{}.sales.orders", u.catalog);
    u.run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.orders",
        "--dest",
        &dest,
        "--strategy",
        "incremental",
        "--primary-key",
        "id",
        "--incremental-column",
        "updated_at",
    ])
    .ok();
    let loaded = u.run(&["load", &dest, "--json"]).ok().json();
    assert_eq!(loaded["rows_read"], 40, "{loaded}");
    assert_eq!(
        loaded["notes"],
        json!([]),
        "no registration warning: {loaded}"
    );

    // An external Delta table at the table's location, saying where its rows come from.
    let (status, info) = u.table(&dest).await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["table_type"], "EXTERNAL");
    assert_eq!(info["data_source_format"], "DELTA");
    let shown = u.run(&["table", "show", &dest]).ok().json();
    assert_eq!(
        info["storage_location"], shown["catalog"]["location"],
        "{shown}"
    );
    assert_eq!(
        shown["catalog"]["registration"]["state"], "current",
        "{shown}"
    );
    assert_eq!(info["properties"]["dataloader.source.connection"], "pg");
    assert_eq!(
        info["properties"]["dataloader.source.object"],
        "public.orders"
    );
    assert_eq!(info["properties"]["dataloader.strategy"], "incremental");
    assert_eq!(info["properties"]["dataloader.managed_by"], "DataLoader");
    let columns: Vec<&str> = info["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "id",
            "customer",
            "amount",
            "updated_at",
            "_loaded_at",
            "_run_id"
        ]
    );

    // Read by name, the table equals the source.
    let compare = |extra: &'static str| {
        let sql = format!(
            "SELECT CAST(id AS VARCHAR), customer, CAST(amount AS VARCHAR){extra} FROM {dest} ORDER BY id"
        );
        let pg_sql = format!(
            "SELECT id::text, customer, amount::text{} FROM orders ORDER BY id",
            extra.replace("CAST(note AS VARCHAR)", "note")
        );
        (sql, pg_sql)
    };
    let (sql, pg_sql) = compare("");
    // Compared as sorted rows: the source's rows come back in text order.
    let mut by_name = query(&u.base, &sql).await;
    by_name.sort();
    let source = dataloader_testkit::pg_rows(
        &u.pg.source.client,
        &pg_sql,
        &[dataloader_testkit::Canon::Text; 3],
    )
    .await;
    let mut source = source;
    source.sort();
    assert_eq!(by_name, source);

    // A load that changes nothing in the schema leaves the registration as it is.
    let again = u.run(&["load", &dest, "--json"]).ok().json();
    assert_eq!(
        (&again["rows_read"], &again["notes"]),
        (&json!(0), &json!([])),
        "{again}"
    );
    assert_eq!(
        u.table(&dest).await.1["table_id"],
        info["table_id"],
        "not re-created"
    );

    // A new source column: the registration is re-created with it; the data stays.
    u.pg.source
        .client
        .batch_execute(
            "ALTER TABLE orders ADD COLUMN note text;
             UPDATE orders SET note = 'n' || id, updated_at = timestamp '2024-02-01' + id * interval '1 second' WHERE id <= 5;",
        )
        .await
        .unwrap();
    let fingerprint = info["properties"]["dataloader.schema_fingerprint"].clone();
    let loaded = u.run(&["load", &dest, "--json"]).ok().json();
    assert_eq!(loaded["rows_read"], 5, "{loaded}");
    let (_, evolved) = u.table(&dest).await;
    assert_ne!(
        evolved["table_id"], info["table_id"],
        "re-created: {evolved}"
    );
    assert_ne!(
        evolved["properties"]["dataloader.schema_fingerprint"],
        fingerprint
    );
    assert!(
        evolved["columns"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "note"),
        "{evolved}"
    );
    let (sql, pg_sql) = compare(", CAST(note AS VARCHAR)");
    let source = dataloader_testkit::pg_rows(
        &u.pg.source.client,
        &pg_sql,
        &[dataloader_testkit::Canon::Text; 4],
    )
    .await;
    let mut source = source;
    source.sort();
    let mut by_name = query(&u.base, &sql).await;
    by_name.sort();
    assert_eq!(by_name, source);

    // `catalog sync` finds nothing to do; with the registration dropped, it says so and repairs it.
    let synced = u.run(&["catalog", "sync", "--json"]).ok().json();
    assert_eq!(
        synced,
        json!([{"table": dest, "state": "current", "action": "unchanged"}])
    );
    let (status, _) = api(
        reqwest::Method::DELETE,
        &format!("{}/api/2.1/unity-catalog/tables/{dest}", u.base),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let dry = u
        .run(&["catalog", "sync", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(
        dry,
        json!([{"table": dest, "state": "missing", "action": "would register"}])
    );
    assert_eq!(u.table(&dest).await.0, 404, "a dry run changes nothing");
    let text = u.run(&["catalog", "sync"]).ok().stdout;
    assert!(
        text.contains("missing") && text.contains("registered"),
        "{text}"
    );
    assert_eq!(u.table(&dest).await.0, 200);
}

#[tokio::test]
async fn a_failing_catalog_leaves_the_load_succeeded_and_the_next_load_repairs_it() {
    let Some(u) = Unity::new("uc_fail").await else {
        return;
    };
    let dest = format!("{}.sales.orders", u.catalog);
    u.run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.orders",
        "--dest",
        &dest,
    ])
    .ok();

    // Nothing listens on port 9: the data commits, the run says registration failed.
    let down = u
        .run_with("unity:http://127.0.0.1:9", &["load", &dest, "--json"])
        .ok()
        .json();
    assert_eq!(down["status"], "Succeeded", "{down}");
    let note = down["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains("registering it in the catalog failed")
            && note.contains("the next load or `dataloader catalog sync` repairs it"),
        "{down}"
    );
    assert_eq!(u.table(&dest).await.0, 404);
    let repaired = u.run(&["load", &dest, "--json"]).ok().json();
    assert_eq!(repaired["notes"], json!([]), "{repaired}");
    assert_eq!(u.table(&dest).await.0, 200);

    // A catalog that does not exist is named, with what to do.
    let missing = "nocatalog_here.sales.orders";
    u.run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.orders",
        "--dest",
        missing,
    ])
    .ok();
    let loaded = u.run(&["load", missing, "--json"]).ok().json();
    let note = loaded["notes"][0].as_str().unwrap_or_default();
    assert!(
        note.contains("catalog \"nocatalog_here\" does not exist: create it"),
        "{loaded}"
    );
}

/// The table's rows read by name, and the source's, as sorted text.
async fn by_name_and_source(
    u: &Unity,
    dest: &str,
) -> (Vec<Vec<Option<String>>>, Vec<Vec<Option<String>>>) {
    let mut by_name = query(
        &u.base,
        &format!("SELECT CAST(id AS VARCHAR), customer, CAST(amount AS VARCHAR) FROM {dest}"),
    )
    .await;
    by_name.sort();
    let mut source = dataloader_testkit::pg_rows(
        &u.pg.source.client,
        "SELECT id::text, customer, amount::text FROM orders",
        &[dataloader_testkit::Canon::Text; 3],
    )
    .await;
    source.sort();
    (by_name, source)
}

/// The whole flow on an Azure lake: loads write to Azurite over abfss://, the table is
/// registered at that location, and minilake reads it by name from there (DuckDB's azure
/// extension, handed the emulator's key as a secret the way a warehouse holds its own).
#[tokio::test]
async fn an_azure_lake_is_registered_and_read_by_name_against_minilake_and_azurite() {
    let (Ok(container), Ok(blob_url)) = (
        std::env::var("DATALOADER_TEST_AZURE_CONTAINER"),
        std::env::var("AZURITE_BLOB_STORAGE_URL"),
    ) else {
        eprintln!("SKIPPED: Azurite is not running (scripts/test.sh starts it): skipping the Unity Catalog test on an Azure lake");
        return;
    };
    let Some(u) = Unity::new("uc_azure").await else {
        return;
    };
    let root = format!(
        "abfss://{container}@devstoreaccount1.dfs.core.windows.net/uc-{}",
        u.catalog
    );
    let dest = format!("{}.sales.orders", u.catalog);
    u.run_in(
        &root,
        &[
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.orders",
            "--dest",
            &dest,
            "--strategy",
            "incremental",
            "--primary-key",
            "id",
            "--incremental-column",
            "updated_at",
        ],
    )
    .ok();
    let loaded = u.run_in(&root, &["load", &dest, "--json"]).ok().json();
    assert_eq!(
        (&loaded["rows_read"], &loaded["notes"]),
        (&json!(40), &json!([])),
        "{loaded}"
    );
    let (status, info) = u.table(&dest).await;
    assert_eq!(status, 200, "{info}");
    let location = info["storage_location"].as_str().unwrap_or_default();
    assert!(
        location.starts_with(&format!("{root}/")),
        "{location} is under {root}"
    );

    let key =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    let endpoint = format!("{blob_url}/devstoreaccount1");
    statement(&u.base, &format!("CREATE OR REPLACE SECRET azurite (TYPE azure, CONNECTION_STRING 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint={endpoint};DfsEndpoint={endpoint};')")).await;
    let (by_name, source) = by_name_and_source(&u, &dest).await;
    assert_eq!(by_name.len(), 40);
    assert_eq!(by_name, source);

    // An incremental merge on Azure: updated and new rows read by name as in the source.
    u.pg.source
        .client
        .batch_execute(
            "UPDATE orders SET amount = amount + 100, updated_at = updated_at + interval '1 day' WHERE id <= 5;
             INSERT INTO orders SELECT g, 'customer ' || g, g * 1.25, timestamp '2024-02-01' + g * interval '1 minute'
                 FROM generate_series(41, 45) g;",
        )
        .await
        .unwrap();
    let merged = u.run_in(&root, &["load", &dest, "--json"]).ok().json();
    assert_eq!(
        (&merged["rows_inserted"], &merged["rows_updated"]),
        (&json!(5), &json!(5)),
        "{merged}"
    );
    let (by_name, source) = by_name_and_source(&u, &dest).await;
    assert_eq!(by_name.len(), 45);
    assert_eq!(by_name, source);
}

/// The same flow against a real Databricks workspace, when one is given: `..._HOST`, `..._TOKEN`,
/// a `..._CATALOG` the token may create schemas and external tables in, a `..._LAKE_ROOT` inside
/// an external location, and a SQL `..._WAREHOUSE` id. Skipped, saying so, otherwise.
#[tokio::test]
async fn a_real_databricks_workspace_registers_and_reads_a_load_by_name() {
    let var = |n: &str| std::env::var(format!("DATALOADER_TEST_DATABRICKS_{n}")).ok();
    let (Some(host), Some(token), Some(catalog), Some(lake_root), Some(warehouse)) = (
        var("HOST"),
        var("TOKEN"),
        var("CATALOG"),
        var("LAKE_ROOT"),
        var("WAREHOUSE"),
    ) else {
        eprintln!("SKIPPED: DATALOADER_TEST_DATABRICKS_{{HOST,TOKEN,CATALOG,LAKE_ROOT,WAREHOUSE}} are not set: no real Databricks workspace");
        return;
    };
    let pg = PgControl::new("uc_dbx", SOURCE).await;
    let schema = format!("dataloader_test_{}", std::process::id());
    let dest = format!("{catalog}.{schema}.orders");
    let env = [
        ("DATALOADER_CONTROL_DB", pg.url.as_str()),
        ("DATALOADER_LAKE_ROOT", lake_root.as_str()),
        ("DATABRICKS_TOKEN", token.as_str()),
    ];
    let catalog_setting = format!("unity:{host}");
    let mut env = env.to_vec();
    env.push(("DATALOADER_CATALOG", catalog_setting.as_str()));
    let run = |args: &[&str]| dataloader_env(pg.dir.path(), args, &env);
    run(&[
        "table",
        "add",
        "--connection",
        "pg",
        "--source",
        "public.orders",
        "--dest",
        &dest,
    ])
    .ok();
    let loaded = run(&["load", &dest, "--json"]).ok().json();
    assert_eq!(loaded["notes"], json!([]), "{loaded}");
    assert!(
        !format!("{loaded}").contains(&token),
        "no secret in the output"
    );
    // Databricks keeps the properties DataLoader wrote: a second load finds it current.
    run(&["load", &dest]).ok();
    let shown = run(&["table", "show", &dest]).ok().json();
    assert_eq!(
        shown["catalog"]["registration"]["state"], "current",
        "{shown}"
    );
    let (status, answer) = api_as(
        Some(&token),
        reqwest::Method::POST,
        &format!("{host}/api/2.0/sql/statements"),
        Some(json!({"statement": format!("SELECT COUNT(*) FROM {dest}"), "warehouse_id": warehouse, "wait_timeout": "50s"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["data_array"][0][0], "40", "{answer}");
    api_as(
        Some(&token),
        reqwest::Method::DELETE,
        &format!("{host}/api/2.1/unity-catalog/schemas/{catalog}.{schema}?force=true"),
        None,
    )
    .await;
}
