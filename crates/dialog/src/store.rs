//! Tracker stores: where conversations live between messages. SQLite (the default: one row per
//! event, WAL journal, so a conversation survives a crash and restart), PostgreSQL (shared by
//! several Dialog Manager processes) or memory.

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

/// Conversations in PostgreSQL, so that several Dialog Manager processes share them. Appends to
/// one conversation are serialised across processes by a transaction-scoped advisory lock.
pub struct PostgresStore {
    client: Mutex<postgres::Client>,
}

fn pg(e: postgres::Error) -> Error {
    Error::Model(format!("PostgreSQL tracker store: {e}"))
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and creates the table.
    pub fn connect(url: &str) -> Result<Self> {
        let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(pg)?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS duet_events (
                     sender TEXT NOT NULL, seq BIGINT NOT NULL, event TEXT NOT NULL,
                     PRIMARY KEY (sender, seq))",
            )
            .map_err(pg)?;
        Ok(Self {
            client: Mutex::new(client),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, postgres::Client>> {
        self.client
            .lock()
            .map_err(|_| Error::Model("the tracker store's lock is poisoned".into()))
    }
}

impl TrackerStore for PostgresStore {
    fn events(&self, sender: &str) -> Result<Vec<Event>> {
        let rows = self
            .lock()?
            .query(
                "SELECT event FROM duet_events WHERE sender = $1 ORDER BY seq",
                &[&sender],
            )
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(r.get::<_, &str>(0))?))
            .collect()
    }

    fn append(&self, sender: &str, events: &[Event]) -> Result<()> {
        let mut client = self.lock()?;
        let mut tx = client.transaction().map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&sender])
            .map_err(pg)?;
        let next: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM duet_events WHERE sender = $1",
                &[&sender],
            )
            .map_err(pg)?
            .get(0);
        for (i, e) in events.iter().enumerate() {
            let seq = next + i as i64;
            let json = serde_json::to_string(e)?;
            tx.execute(
                "INSERT INTO duet_events (sender, seq, event) VALUES ($1, $2, $3)",
                &[&sender, &seq, &json],
            )
            .map_err(pg)?;
        }
        tx.commit().map_err(pg)
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
