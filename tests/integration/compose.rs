//! Static checks of `docker-compose.yml` (fast, no Docker engine; `scripts/compose-check.sh` runs it
//! for real): valid against the Compose specification schema, every command a real `tradeflow`
//! subcommand, every environment variable one that subcommand reads, topics as the native scripts
//! create them, the aggregator scalable, `.env.example` complete.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use tradeflow_core::topics::PartitionArgs;

use crate::harness;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("docker-compose.yml");
    let mut yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml is YAML");
    yaml.apply_merge().expect("merge keys");
    serde_json::to_value(yaml).expect("as JSON")
}

/// `${NAME:-default}` → (NAME, default); anything else → None.
fn interpolation(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else { break };
        let inner = &rest[start + 2..start + end];
        let (name, default) = inner.split_once(":-").unwrap_or((inner, ""));
        out.push((name.to_owned(), default.to_owned()));
        rest = &rest[start + end + 1..];
    }
    out
}

/// The default a compose value takes when its variable is unset.
fn resolved(value: &str) -> String {
    let mut out = value.to_owned();
    for (name, default) in interpolation(value) {
        out = out.replace(&format!("${{{name}:-{default}}}"), &default);
    }
    out
}

/// The environment variables `tradeflow <command>` reads, from its `--help`.
fn env_read_by(command: &str) -> BTreeSet<String> {
    let out =
        std::process::Command::new(harness::tradeflow_bin()).args([command, "--help"]).output().expect("run tradeflow");
    assert!(
        out.status.success(),
        "`tradeflow {command}` is not a subcommand: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    let mut names: BTreeSet<String> =
        help.split("[env: ").skip(1).filter_map(|s| s.split(['=', ']']).next()).map(str::to_owned).collect();
    names.insert("RUST_LOG".into()); // every command logs through tracing's filter
    names
}

fn services(c: &Value) -> &serde_json::Map<String, Value> {
    c["services"].as_object().expect("services")
}

fn environment(service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .map(|m| {
            m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string()))).collect()
        })
        .unwrap_or_default()
}

fn is_tradeflow(service: &Value) -> bool {
    service["image"].as_str().is_some_and(|i| i.starts_with("tradeflow:"))
}

#[test]
fn compose_file_is_valid_against_the_compose_specification() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/compose/compose-spec.json")).expect("schema"))
            .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("compile the Compose schema");
    let c = compose();
    let errors: Vec<String> = validator.iter_errors(&c).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "docker-compose.yml violates the Compose specification:\n{}", errors.join("\n"));
    // The validator does catch mistakes.
    let mut broken = c.clone();
    broken["services"]["aggregator"]["replicas_typo"] = Value::from(3);
    broken["services"]["dashboard"]["ports"] = Value::from(8080);
    assert!(validator.iter_errors(&broken).count() >= 2);
}

#[test]
fn compose_services_run_real_subcommands_with_settings_they_read() {
    let c = compose();
    let mut seen = BTreeSet::new();
    for (name, service) in services(&c).iter().filter(|(_, s)| is_tradeflow(s)) {
        let command = service["command"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: command must be a list starting with the subcommand"));
        seen.insert(command.to_owned());
        let reads = env_read_by(command);
        for var in environment(service).keys() {
            assert!(
                reads.contains(var),
                "service {name} sets {var}, which `tradeflow {command}` does not read (it reads {reads:?})"
            );
        }
        assert!(service["build"].is_string() || service["build"].is_object(), "{name} builds the image");
    }
    let expected: BTreeSet<String> =
        ["secrets", "init", "producer", "prices", "ingestor", "aggregator", "dashboard"].map(String::from).into();
    assert_eq!(seen, expected, "every service of the pipeline runs");
}

#[test]
fn compose_topics_match_the_native_scripts() {
    let c = compose();
    let init = environment(&c["services"]["init"]);
    let defaults = PartitionArgs::default();
    for (var, want) in [
        ("TRADEFLOW_TRADES_PARTITIONS", defaults.trades_partitions),
        ("TRADEFLOW_DLQ_PARTITIONS", defaults.dlq_partitions),
        ("TRADEFLOW_PRICES_PARTITIONS", defaults.prices_partitions),
        ("TRADEFLOW_SUMMARIES_PARTITIONS", defaults.summaries_partitions),
    ] {
        assert_eq!(init.get(var).map(|v| resolved(v)), Some(want.to_string()), "{var}");
    }
    // The native twin creates the topics with the same defaults (no overrides in the script).
    let dev = std::fs::read_to_string(root().join("scripts/dev.sh")).expect("dev.sh");
    assert!(
        dev.contains("\"$TF\" topics") && !dev.contains("PARTITIONS"),
        "scripts/dev.sh creates topics with the default partition counts"
    );
    // Every service talks to the same topics.
    let prefixes: BTreeSet<String> = services(&c)
        .values()
        .filter(|s| is_tradeflow(s))
        .filter_map(|s| environment(s).get("TRADEFLOW_TOPIC_PREFIX").cloned())
        .collect();
    assert_eq!(prefixes.len(), 1, "{prefixes:?}");
}

#[test]
fn compose_aggregator_scales_and_startup_is_ordered() {
    let c = compose();
    let s = services(&c);
    let agg = &s["aggregator"];
    for key in ["container_name", "ports", "hostname"] {
        assert!(agg.get(key).is_none(), "aggregator must not fix {key} (it runs with --scale aggregator=N)");
    }
    // First the secrets (Postgres reads its password from them), then init, then the services.
    assert_eq!(s["postgres"]["depends_on"]["secrets"]["condition"], "service_completed_successfully");
    for (name, service) in s.iter().filter(|(n, sv)| is_tradeflow(sv) && !["init", "secrets"].contains(&n.as_str())) {
        assert_eq!(
            service["depends_on"]["init"]["condition"], "service_completed_successfully",
            "{name} waits for init"
        );
    }
    for dep in ["kafka", "postgres"] {
        assert_eq!(s["init"]["depends_on"][dep]["condition"], "service_healthy", "init waits for {dep}");
        assert!(s[dep]["healthcheck"]["test"].is_array(), "{dep} has a healthcheck");
        let image = s[dep]["image"].as_str().unwrap_or_default();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
        assert!(tag.chars().next().is_some_and(|c| c.is_ascii_digit()), "{dep} image is pinned: {image}");
    }
    assert!(s["kafka"]["image"].as_str().unwrap_or_default().starts_with("apache/kafka:"));
    // The native broker (scripts/kafka/pom.xml) is the same Apache Kafka version.
    let pom = std::fs::read_to_string(root().join("scripts/kafka/pom.xml")).expect("pom.xml");
    let native = pom.split("<kafka.version>").nth(1).and_then(|v| v.split('<').next()).unwrap_or_default();
    assert_eq!(
        s["kafka"]["image"].as_str(),
        Some(format!("apache/kafka:{native}").as_str()),
        "compose and the native broker run one Kafka version"
    );
    assert!(
        environment(&s["kafka"]).get("KAFKA_PROCESS_ROLES").is_some_and(|r| r.contains("controller")),
        "KRaft mode"
    );
    assert!(
        s["postgres"]["volumes"][0].as_str().unwrap_or_default().starts_with("pg-data:"),
        "Postgres keeps a named volume"
    );
    assert!(
        s["dashboard"]["ports"][0].as_str().unwrap_or_default().ends_with(":8080"),
        "the dashboard is on a host port"
    );
    // The producer writes the logs the ingestor reads.
    let volume =
        |n: &str| s[n]["volumes"][0].as_str().unwrap_or_default().split(':').next().unwrap_or_default().to_owned();
    assert_eq!(volume("producer"), volume("ingestor"));
    assert_eq!(environment(&s["producer"]).get("TRADE_LOG_DIR"), environment(&s["ingestor"]).get("TRADE_LOG_DIR"));
}

#[test]
fn env_example_lists_every_variable_with_its_default() {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose");
    let example: BTreeMap<String, String> = std::fs::read_to_string(root().join(".env.example"))
        .expect(".env.example")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let used: BTreeMap<String, String> = interpolation(&text).into_iter().collect();
    assert!(!used.is_empty());
    for (name, default) in &used {
        assert_eq!(example.get(name), Some(default), ".env.example must list {name}={default}");
    }
}

#[test]
fn compose_publishes_only_on_loopback_and_ships_no_working_secret() {
    let c = compose();
    for (name, service) in services(&c) {
        for port in service["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().unwrap_or_default();
            assert!(
                port.starts_with("${TRADEFLOW_BIND:-127.0.0.1}:"),
                "{name} publishes {port} beyond loopback by default"
            );
        }
        let env = environment(service);
        assert!(
            !env.contains_key("TRADEFLOW_AUTH_SECRET"),
            "{name} sets an auth secret: {:?}",
            env.get("TRADEFLOW_AUTH_SECRET")
        );
    }
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).expect("compose file");
    for example in tradeflow_dashboard::token::EXAMPLE_SECRETS {
        assert!(!text.contains(example), "the compose file carries the example secret {example}");
    }
    // Every secret comes from the files the `secrets` service generates: no password in a URL or
    // with a default.
    let secrets = &services(&c)["secrets"];
    assert_eq!(secrets["command"], serde_json::json!(["secrets", "--dir", "/secrets"]));
    for (name, service) in services(&c) {
        for (var, value) in environment(service) {
            assert!(!var.contains("PASSWORD") || var.ends_with("_FILE"), "{name} sets {var}={value}");
            if var == "DATABASE_URL" {
                let userinfo =
                    value.split("://").nth(1).and_then(|r| r.split_once('@')).map(|(u, _)| u).unwrap_or_default();
                assert!(!userinfo.contains(':'), "{name}: a password in {value}");
            }
        }
    }
    let dashboard = environment(&services(&c)["dashboard"]);
    assert_eq!(dashboard.get("TRADEFLOW_AUTH_SECRET_FILE").map(String::as_str), Some("/secrets/auth-secret"));
    assert_eq!(
        environment(&services(&c)["postgres"]).get("POSTGRES_PASSWORD_FILE").map(String::as_str),
        Some("/secrets/postgres-password")
    );
}
