//! Secured connections for real: the golden pipeline over a SASL_SSL listener of Apache Kafka
//! (TLS with a CA made in the test, SCRAM-SHA-512) and a Postgres that takes TLS connections only
//! (`sslmode=verify-full` against the test CA), and the clear, fast failures of a wrong password
//! and of an untrusted certificate.

use std::time::{Duration, Instant};

use crate::aggregator::Pipeline;
use crate::harness;
use crate::harness::postgres::ThrowawayPostgres;
use crate::harness::secure::{SecureKafka, make_ca};

#[tokio::test(flavor = "multi_thread")]
async fn the_golden_pipeline_runs_over_sasl_ssl_kafka_and_tls_postgres() {
    let secure = SecureKafka::start();
    let pg = ThrowawayPostgres::start_tls();
    let p = Pipeline::on(secure.kafka(), &pg.url()).await;
    assert!(p.env().iter().any(|(k, v)| *k == "KAFKA_CONFIG_FILE" && !v.is_empty()));
    assert!(p.db.url.contains("sslmode=verify-full"), "{}", p.db.url);
    // The server refuses plain connections: every session of the run is TLS.
    let plain = format!("postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable", pg.port);
    let refused = sqlx::PgPool::connect(&plain).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("no pg_hba.conf entry") || refused.contains("SSL off"), "a plain connection: {refused}");
    p.produce(&[
        "--clients",
        "1,2,3",
        "--count",
        "1500",
        "--seed",
        "51",
        "--start",
        "2026-11-20T23:59:00",
        "--rate",
        "30",
    ]);
    let _ingestor = p.start("ingestor", harness::broker::free_port());
    let _aggregator = p.start("aggregator", harness::broker::free_port());
    p.converges().await;
    let tls_sessions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database() AND s.ssl",
    )
    .fetch_one(&p.db.pool)
    .await
    .expect("pg_stat_ssl");
    assert!(tls_sessions >= 1, "the sessions are TLS");
    // A CA the server's certificate is not signed by: refused, saying why.
    let other_ca = make_ca(&secure.dir.join("pg-other-ca"));
    let untrusted =
        format!("{}&sslrootcert={}", pg.url().split("&sslrootcert").next().unwrap_or_default(), other_ca.display());
    let out = std::process::Command::new(harness::tradeflow_bin())
        .args(["verify", "--logs"])
        .arg(&p.logs)
        .env("DATABASE_URL", &untrusted)
        .output()
        .expect("tradeflow verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "verify with an untrusted CA succeeded");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    p.cleanup();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_or_an_untrusted_certificate_fails_fast_and_says_why() {
    let secure = SecureKafka::start();
    let other_ca = make_ca(&secure.dir.join("other-ca"));
    for (name, kafka, expect) in [
        ("wrong password", secure.kafka_with("not-the-password", &secure.ca, "wrong-password"), "Authentication"),
        (
            "untrusted certificate",
            secure.kafka_with(&secure.password, &other_ca, "untrusted"),
            "certificate verify failed",
        ),
    ] {
        let config = kafka.kafka_config.as_ref().expect("config").path.clone();
        let started = Instant::now();
        let out = std::process::Command::new(harness::tradeflow_bin())
            .args(["topics", "--brokers", &kafka.brokers])
            .env("KAFKA_CONFIG_FILE", &config)
            .env("TRADEFLOW_TOPIC_PREFIX", harness::unique("sec"))
            .output()
            .expect("tradeflow topics");
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: tradeflow topics succeeded");
        assert!(stderr.contains("cannot reach Kafka") && stderr.contains(expect), "{name}: {stderr}");
        assert!(took < Duration::from_secs(15), "{name}: took {took:?} to fail");
        assert!(!stderr.contains(&secure.password), "{name}: a secret was logged: {stderr}");
    }
}
