//! A database of the test's own on the real Postgres, dropped afterwards.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use std::str::FromStr;

pub fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDatabase {
    /// Creates a fresh database and runs the migrations on it.
    pub async fn create() -> Self {
        let name = super::unique("tradeflow_test_");
        let admin = PgConnectOptions::from_str(&server_url()).expect("DATABASE_URL");
        let mut conn = admin.connect().await.expect("connect to Postgres (DATABASE_URL)");
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut conn).await.expect("create database");
        let options = admin.clone().database(&name);
        let url = options.to_url_lossy().to_string();
        let pool = PgPoolOptions::new().max_connections(8).connect_with(options).await.expect("connect to test db");
        Self { name, url, pool }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context guarantees: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            // The pool belongs to the test's runtime (blocked here): leave it, and let
            // DROP … WITH (FORCE) end its sessions. Bounded, so a drop can never hang a test.
            let drop_db = async move {
                if let Ok(admin) = PgConnectOptions::from_str(&server_url()) {
                    if let Ok(mut conn) = admin.connect().await {
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&mut conn)
                            .await;
                    }
                }
            };
            let _ = rt.block_on(async move { tokio::time::timeout(std::time::Duration::from_secs(20), drop_db).await });
        })
        .join();
    }
}
