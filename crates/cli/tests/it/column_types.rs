//! `column_types` through the CLI: `--column-type` on `table add` / `table update`, the
//! `column_types:` key of `apply` files, `export` round trips and plans, and a load of a
//! 42-digit `numeric` that only loads as text.

use crate::PgControl;

const SOURCE: &str = "
    CREATE TABLE readings (id int PRIMARY KEY, free_num numeric, small int);
    INSERT INTO readings VALUES (1, 123456789012345678901234567890123456789012, 1), (2, 0.5, 2);";

#[tokio::test]
async fn column_type_flags_and_yaml_keys_load_a_42_digit_numeric_as_text() {
    let pg = PgControl::new("cli_coltypes", SOURCE).await;
    let run = |args: &[&str]| pg.run(args);
    let d = pg.dir.path();
    let add = |extra: &[&str]| {
        let mut args = vec![
            "table",
            "add",
            "--connection",
            "pg",
            "--source",
            "public.readings",
            "--dest",
            "bronze.pg.readings",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };

    add(&["--column-type", "free_num"]).fails_with(
        "column_types: \"free_num\" is not COLUMN=TYPE (for example --column-type free_num=string)",
    );
    add(&["--column-type", "free_num=varchar"]).fails_with(
        "column_types: column \"free_num\": \"varchar\" is not a type a column can load as",
    );
    add(&[
        "--column-type",
        "free_num=string",
        "--column-type",
        "small=bigint",
    ])
    .ok();
    let shown = run(&["table", "show", "bronze.pg.readings"]).ok().json();
    assert_eq!(
        shown["column_types"],
        serde_json::json!({"free_num": "string", "small": "bigint"}),
        "{shown}"
    );
    let loaded = run(&["load", "bronze.pg.readings", "--json"]).ok().json();
    assert_eq!(
        (&loaded["status"], &loaded["rows_read"]),
        (&serde_json::json!("Succeeded"), &serde_json::json!(2)),
        "{loaded}"
    );

    // `COLUMN=none` drops one override: the 42-digit value then cannot load, and says which.
    run(&[
        "table",
        "update",
        "bronze.pg.readings",
        "--column-type",
        "free_num=none",
    ])
    .ok();
    let shown = run(&["table", "show", "bronze.pg.readings"]).ok().json();
    assert_eq!(
        shown["column_types"],
        serde_json::json!({"small": "bigint"})
    );
    let failed = run(&["load", "bronze.pg.readings", "--full-refresh"]);
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    assert!(
        failed
            .stderr
            .contains("column \"free_num\": numeric does not fit decimal(38,9)")
            && failed.stderr.contains("column_types: {free_num: string}"),
        "{}",
        failed.stderr
    );
    run(&[
        "table",
        "update",
        "bronze.pg.readings",
        "--column-type",
        "none",
        "--column-type",
        "free_num=string",
    ])
    .ok();
    let shown = run(&["table", "show", "bronze.pg.readings"]).ok().json();
    assert_eq!(
        shown["column_types"],
        serde_json::json!({"free_num": "string"})
    );

    // export → apply changes nothing; an edited override shows in the plan field by field.
    let exported = run(&["export"]).ok().stdout;
    assert!(
        exported.contains("column_types:\n") && exported.contains("free_num: string"),
        "{exported}"
    );
    std::fs::write(d.join("exported.yaml"), &exported).unwrap();
    let again = run(&["apply", "-f", "exported.yaml", "--dry-run"]).ok();
    assert!(
        again
            .stdout
            .contains("Plan: 0 to create, 0 to change, 0 to deactivate."),
        "{exported}\n{}",
        again.stdout
    );
    let line = exported
        .lines()
        .find(|l| l.trim() == "free_num: string")
        .unwrap();
    let indent = &line[..line.len() - line.trim_start().len()];
    let edited = exported.replace(line, &format!("{line}\n{indent}small: double"));
    std::fs::write(d.join("edited.yaml"), &edited).unwrap();
    let plan = run(&["apply", "-f", "edited.yaml"]).ok();
    assert!(
        plan.stdout.contains("column_types")
            && plan.stdout.contains("small: double")
            && plan
                .stdout
                .contains("Plan: 0 to create, 1 to change, 0 to deactivate."),
        "{edited}\n{}",
        plan.stdout
    );
    let shown = run(&["table", "show", "bronze.pg.readings"]).ok().json();
    assert_eq!(
        shown["column_types"],
        serde_json::json!({"free_num": "string", "small": "double"})
    );

    // A typo in a type is refused with the entry named.
    std::fs::write(
        d.join("bad.yaml"),
        exported.replace("free_num: string", "free_num: strng"),
    )
    .unwrap();
    run(&["apply", "-f", "bad.yaml"]).fails_with("\"strng\" is not a type");
}
