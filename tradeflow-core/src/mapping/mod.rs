//! Mappings: how a family of trade log files becomes trade records (SPEC §1, generalised).
//!
//! A mapping file (TOML, `docs/mapping.md`) lists **sources**; each names its directory, a
//! file-name regex whose captures `client` and `date` give the identity's client and file date
//! (SPEC §2: identity stays client, file date, generation, offset), a line format (`key_value`,
//! `delimited`, `json_lines`) and, per record field, the source key, type, format, requiredness
//! and default. The built-in mapping (`examples/mappings/seed.toml`, embedded) is SPEC §1's.
//!
//! - [`Mapping::load`] checks a file completely before anything runs; a mistake is a
//!   [`MappingError`] naming the file's line.
//! - [`Source::parse_line`] turns a line into a trade or a [`LineError`]. A source whose line
//!   format and fields equal the built-in ones is read by the hand-tuned SPEC §1 parser
//!   ([`crate::log_format::parse_line_ref`]), so the default path's records and speed are today's;
//!   any other by the interpreter, which applies SPEC §1's casts (same reasons, same codes).

mod cast;
mod compile;
mod error;
mod iso_time;
mod line_format;
mod record_field;
mod source;
mod spec;

use std::path::{Path, PathBuf};

pub use error::{LineError, MappingError};
pub use record_field::{FieldKind, RecordField};
pub use source::{Parsed, Source};

use crate::log_format::LogFileName;

/// The built-in mapping's text: SPEC §1's file names and `Key:Value|…` lines.
pub const SEED_MAPPING: &str = include_str!("../../../examples/mappings/seed.toml");

/// A checked mapping: its sources, in file order (the first whose pattern matches a file name owns it).
#[derive(Debug, Clone)]
pub struct Mapping {
    pub sources: Vec<Source>,
    /// Where it came from (a path, or `built-in`).
    pub origin: String,
}

/// `--mapping FILE` / `TRADEFLOW_MAPPING`, for every command that reads trade logs.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct MappingArgs {
    /// The mapping file (TOML; docs/mapping.md): file names, line format and fields of each log
    /// source. Default: the built-in SPEC §1 mapping (examples/mappings/seed.toml).
    #[arg(long = "mapping", env = "TRADEFLOW_MAPPING")]
    pub mapping: Option<PathBuf>,
}

impl MappingArgs {
    /// The mapping named, checked; or the built-in one.
    pub fn load(&self) -> Result<Mapping, MappingError> {
        Mapping::load_or_builtin(self.mapping.as_deref())
    }
}

/// A trade log file found in a directory, with the source that owns it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FoundFile {
    pub name: LogFileName,
    pub path: PathBuf,
    /// Index into [`Mapping::sources`].
    pub source: usize,
}

impl Mapping {
    /// The built-in (SPEC §1) mapping.
    pub fn builtin() -> Self {
        match compile::compile(SEED_MAPPING, "built-in", None) {
            Ok(sources) => {
                let sources = sources.into_iter().map(Source::into_spec).collect();
                Mapping { sources, origin: "built-in".into() }
            }
            // The embedded file is tested to compile (`builtin_is_the_spec_parser`).
            Err(e) => panic!("the built-in mapping does not compile: {e}"),
        }
    }

    /// Reads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| MappingError::Read { file: path.to_owned(), source })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The mapping at `path`, or the built-in one.
    pub fn load_or_builtin(path: Option<&Path>) -> Result<Self, MappingError> {
        path.map_or_else(|| Ok(Self::builtin()), Self::load)
    }

    /// Checks mapping text (`file` names it in errors). A source equal to the built-in one is
    /// read by the built-in parser.
    pub fn parse(text: &str, file: &str) -> Result<Self, MappingError> {
        let builtin = compile::parse_spec(SEED_MAPPING);
        let sources = compile::compile(text, file, builtin.as_ref())?;
        Ok(Mapping { sources, origin: file.to_owned() })
    }

    /// Whether every source is read by the built-in parser and names files as SPEC §1 does.
    pub fn is_builtin(&self) -> bool {
        self.sources.iter().all(|s| s.is_spec_format() && s.has_spec_names())
    }

    /// The source owning `file_name` and the (client, date) it gives.
    pub fn identify(&self, file_name: &str) -> Option<(usize, LogFileName)> {
        self.sources.iter().enumerate().find_map(|(i, s)| s.log_file_name(file_name).map(|n| (i, n)))
    }

    /// The directories to watch: each source's `dir`, or `default`; each once.
    pub fn dirs(&self, default: &Path) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for s in &self.sources {
            let d = s.dir.clone().unwrap_or_else(|| default.to_owned());
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        dirs
    }

    /// The trade log files in `dir` owned by the sources `wanted` accepts, sorted by name.
    /// Two files giving the same (client, date) would share identities (SPEC §2): the first (by
    /// source order, then path) is kept and the other is reported and left alone.
    pub fn log_files(&self, dir: &Path, wanted: impl Fn(&Source) -> bool) -> std::io::Result<Vec<FoundFile>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            let owner = self
                .sources
                .iter()
                .enumerate()
                .filter(|(_, s)| wanted(s))
                .find_map(|(i, s)| s.log_file_name(&file_name).map(|n| (i, n)));
            if let Some((source, name)) = owner {
                found.push(FoundFile { name, path: entry.path(), source });
            }
        }
        found.sort_by(|a, b| (&a.name, a.source, &a.path).cmp(&(&b.name, b.source, &b.path)));
        let mut kept: Vec<FoundFile> = Vec::with_capacity(found.len());
        for f in found {
            match kept.last() {
                Some(k) if k.name == f.name => tracing::warn!(
                    file = %f.path.display(), kept = %k.path.display(), client = %f.name.client, date = %f.name.date,
                    "two files give the same (client, date): identities would collide (SPEC §2); this one is not read"
                ),
                _ => kept.push(f),
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests;
