//! What a source learns about a table (or a source query) once and uses again in the same load
//! (a load describes, probes and reads the same object).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use dataloader_core::SourceObject;

/// Values are shared, not copied, on every lookup.
pub struct PerTable<V>(Mutex<HashMap<SourceObject, Arc<V>>>);

impl<V> Default for PerTable<V> {
    fn default() -> Self {
        PerTable(Mutex::new(HashMap::new()))
    }
}

impl<V> PerTable<V> {
    pub fn get(&self, table: &SourceObject) -> Option<Arc<V>> {
        self.0.lock().ok().and_then(|m| m.get(table).cloned())
    }

    pub fn put(&self, table: &SourceObject, value: V) -> Arc<V> {
        let value = Arc::new(value);
        if let Ok(mut m) = self.0.lock() {
            m.insert(table.clone(), value.clone());
        }
        value
    }
}
