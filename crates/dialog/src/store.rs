//! Tracker stores: where conversations live between messages. SQLite (the default: one row per
//! event, WAL journal, so a conversation survives a crash and restart) or memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, params};

use crate::error::{Error, Result};
use crate::tracker::Event;

/// Keeps each conversation's events.
pub trait TrackerStore: Send + Sync {
    /// The events of a conversation (empty if it is new).
    fn events(&self, sender: &str) -> Result<Vec<Event>>;
    /// Appends events to a conversation, all or none.
    fn append(&self, sender: &str, events: &[Event]) -> Result<()>;
}

/// Conversations in memory (lost on exit).
#[derive(Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<String, Vec<Event>>>,
}

impl TrackerStore for MemoryStore {
    fn events(&self, sender: &str) -> Result<Vec<Event>> {
        Ok(self
            .map
            .lock()
            .map_err(|_| Error::Model("the tracker store's lock is poisoned".into()))?
            .get(sender)
            .cloned()
            .unwrap_or_default())
    }

    fn append(&self, sender: &str, events: &[Event]) -> Result<()> {
        self.map
            .lock()
            .map_err(|_| Error::Model("the tracker store's lock is poisoned".into()))?
            .entry(sender.to_owned())
            .or_default()
            .extend_from_slice(events);
        Ok(())
    }
}

/// Conversations in a SQLite file.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn db(e: rusqlite::Error) -> Error {
    Error::Model(format!("tracker store: {e}"))
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(crate::error::io(parent))?;
        }
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS events (
                 sender TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL,
                 PRIMARY KEY (sender, seq));",
        )
        .map_err(db)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| Error::Model("the tracker store's lock is poisoned".into()))
    }
}

impl TrackerStore for SqliteStore {
    fn events(&self, sender: &str) -> Result<Vec<Event>> {
        let conn = self.lock()?;
        let mut st = conn
            .prepare_cached("SELECT event FROM events WHERE sender = ?1 ORDER BY seq")
            .map_err(db)?;
        let rows = st
            .query_map(params![sender], |r| r.get::<_, String>(0))
            .map_err(db)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(serde_json::from_str(&r.map_err(db)?)?);
        }
        Ok(out)
    }

    fn append(&self, sender: &str, events: &[Event]) -> Result<()> {
        let mut conn = self.lock()?;
        let tx = conn.transaction().map_err(db)?;
        let next: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM events WHERE sender = ?1",
                params![sender],
                |r| r.get(0),
            )
            .map_err(db)?;
        for (i, e) in events.iter().enumerate() {
            tx.execute(
                "INSERT INTO events (sender, seq, event) VALUES (?1, ?2, ?3)",
                params![sender, next + i as i64, serde_json::to_string(e)?],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_keeps_events_in_order_across_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("t.db");
        let e = |n: &str| Event::Followup {
            name: n.into(),
            timestamp: 0.0,
        };
        {
            let s = SqliteStore::open(&path).unwrap();
            s.append("a", &[e("1"), e("2")]).unwrap();
            s.append("b", &[e("x")]).unwrap();
            s.append("a", &[e("3")]).unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.events("a").unwrap(), vec![e("1"), e("2"), e("3")]);
        assert_eq!(s.events("b").unwrap().len(), 1);
        assert!(s.events("c").unwrap().is_empty());
    }
}
