//! Reference server for the order benchmark.
//!
//! `bench-reference PORT DB_PATH` serves `POST /orders` on 127.0.0.1:PORT: it parses the
//! JSON body, inserts one row into SQLite (WAL, synchronous=NORMAL) and answers 201 with the
//! stored order. `GET /health` answers 200 once it is listening. Nothing else: it is the
//! floor the real system is compared with.

use std::sync::{Arc, Mutex};

use axum::{extract::State, http::StatusCode, routing::{get, post}, Json, Router};
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    phone_number: String,
    product_name: String,
    qty: i64,
    amt: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    id: i64,
    phone_number: String,
    product_name: String,
    qty: i64,
    amt: i64,
    status: &'static str,
}

type Db = Arc<Mutex<Connection>>;

async fn place(State(db): State<Db>, Json(o): Json<NewOrder>) -> Result<(StatusCode, Json<Order>), StatusCode> {
    let stored = tokio::task::spawn_blocking(move || {
        let conn = db.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare_cached("INSERT INTO orders (phone_number, product_name, qty, amt, status) VALUES (?1, ?2, ?3, ?4, 'Ordered')")
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        stmt.execute(params![o.phone_number, o.product_name, o.qty, o.amt])
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let id = conn.last_insert_rowid();
        Ok::<_, StatusCode>(Order {
            id,
            phone_number: o.phone_number,
            product_name: o.product_name,
            qty: o.qty,
            amt: o.amt,
            status: "Ordered",
        })
    })
    .await
    .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)??;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("usage: bench-reference PORT DB_PATH");
    let path = args.next().expect("usage: bench-reference PORT DB_PATH");

    let conn = Connection::open(&path).expect("open database");
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=NORMAL;
         CREATE TABLE IF NOT EXISTS orders (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             phone_number TEXT NOT NULL,
             product_name TEXT NOT NULL,
             qty INTEGER NOT NULL,
             amt INTEGER NOT NULL,
             status TEXT NOT NULL
         );",
    )
    .expect("prepare database");
    let db: Db = Arc::new(Mutex::new(conn));

    let app = Router::new()
        .route("/orders", post(place))
        .route("/health", get(|| async { "UP" }))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app)
        .with_graceful_shutdown(async { let _ = tokio::signal::ctrl_c().await; })
        .await
        .expect("serve");
}
