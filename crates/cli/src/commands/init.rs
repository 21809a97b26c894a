//! `dataloader init`: opening the control database already creates or upgrades its tables;
//! this command only says where they are.

use anyhow::Result;

use crate::app::App;
use crate::print;

pub(crate) fn init(app: &App) -> Result<()> {
    if app.json {
        print::json(&serde_json::json!({"control_db": app.store.describe(), "status": "ready"}))?;
    } else {
        println!("control tables ready in {}", app.store.describe());
    }
    Ok(())
}
