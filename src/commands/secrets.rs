//! `tradeflow secrets --dir DIR`: the secrets a deployment needs, generated once and kept — the
//! compose file's first step, before Postgres starts (it reads its password from here).

use anyhow::Context as _;
use clap::Args;

#[derive(Args, Debug)]
pub struct SecretsArgs {
    /// Directory of the secret files (the compose file's `secrets` volume).
    #[arg(long, env = "TRADEFLOW_SECRETS_DIR")]
    dir: std::path::PathBuf,
}

/// The files, and their modes: the Postgres passwords are read by the Postgres container's own
/// user too (the directory is shared by this deployment's containers only).
const FILES: [(&str, u32); 3] = [("auth-secret", 0o600), ("postgres-password", 0o644), ("reader-password", 0o644)];

pub fn run(args: SecretsArgs) -> anyhow::Result<()> {
    for (name, mode) in FILES {
        let path = args.dir.join(name);
        let made = ensure_secret_file(&path, mode)?;
        println!("{}\t{}", if made { "generated" } else { "kept" }, path.display());
    }
    Ok(())
}

/// Writes a random secret (32 bytes from the OS, hex) to `path` with `mode` unless it already holds
/// one (temp file, fsync, rename); true when it wrote one.
pub fn ensure_secret_file(path: &std::path::Path, mode: u32) -> anyhow::Result<bool> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::OpenOptionsExt as _;
    if std::fs::read_to_string(path).is_ok_and(|s| !s.trim().is_empty()) {
        return Ok(false);
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).context("reading /dev/urandom")?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    file.write_all(format!("{secret}\n").as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}
