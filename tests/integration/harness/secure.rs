//! A secured Apache Kafka for the tests: one node with a SASL_SSL listener (TLS with a broker
//! certificate signed by a CA generated here, SCRAM-SHA-512 logins; the user is created when the
//! storage is formatted), through the same `scripts/kafka/node.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tradeflow_core::kafka::{KafkaArgs, KafkaConfigFile};

use super::broker::{KafkaCluster, free_port};

pub const USER: &str = "tradeflow";

/// A CA (`ca.pem`, `ca.key`) in `dir`, made with the openssl command line.
pub fn make_ca(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("ca dir");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tradeflow test CA",
        ],
    );
    dir.join("ca.pem")
}

/// A key and a certificate for `ip` signed by the CA in `dir`: `NAME.key`, `NAME.pem`.
pub fn sign(dir: &Path, name: &str, ip: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), format!("subjectAltName=IP:{ip}\n")).expect("ext");
    let (key, csr, pem, ext) =
        (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
    openssl(
        dir,
        &["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &format!("/CN={ip}")],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

pub struct SecureKafka {
    pub cluster: KafkaCluster,
    pub dir: PathBuf,
    /// The SASL_SSL listener's port (the node's PLAINTEXT port is for the broker's own use).
    pub port: u16,
    pub ca: PathBuf,
    pub password: String,
}

impl SecureKafka {
    pub fn start() -> Self {
        let dir = super::temp_dir().join("tls");
        let ca = make_ca(&dir);
        sign(&dir, "broker", "127.0.0.1");
        let keystore_password = super::unique("ks");
        let pass = format!("pass:{keystore_password}");
        // Legacy PBE: readable by every Java 17 update.
        openssl(
            &dir,
            &[
                "pkcs12",
                "-export",
                "-in",
                "broker.pem",
                "-inkey",
                "broker.key",
                "-out",
                "broker.p12",
                "-name",
                "broker",
                "-passout",
                &pass,
                "-keypbe",
                "PBE-SHA1-3DES",
                "-certpbe",
                "PBE-SHA1-3DES",
                "-macalg",
                "sha1",
            ],
        );
        let port = free_port();
        let password = super::unique("scram");
        let extra = vec![
            "--sasl-ssl-port".to_string(),
            port.to_string(),
            "--keystore".into(),
            dir.join("broker.p12").display().to_string(),
            "--keystore-password".into(),
            keystore_password,
            "--scram".into(),
            format!("{USER}={password}"),
        ];
        let cluster = KafkaCluster::start_with(1, extra);
        Self { cluster, dir, port, ca, password }
    }

    /// Client settings over SASL_SSL with `password`, trusting `ca`, written to a properties file.
    pub fn kafka_with(&self, password: &str, ca: &Path, name: &str) -> KafkaArgs {
        let path = self.dir.join(format!("{name}.properties"));
        let text = format!(
            "# tradeflow test client\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username={USER}\nsasl.password={password}\nssl.ca.location={}\n",
            ca.display()
        );
        std::fs::write(&path, text).expect("client properties");
        let mut kafka = KafkaArgs::new(format!("127.0.0.1:{}", self.port));
        kafka.kafka_config = Some(KafkaConfigFile::read(&path.display().to_string()).expect("properties"));
        kafka
    }

    /// The right settings.
    pub fn kafka(&self) -> KafkaArgs {
        self.kafka_with(&self.password, &self.ca, "client")
    }
}
