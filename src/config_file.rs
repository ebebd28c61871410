//! The optional configuration file: `--config <file>` or `RAPAT_CONFIG`.
//!
//! One `NAME=value` per line, with the names of the environment variables the
//! settings read (`NATS_URL=...`, `RAPAT_HTTP_ADDR=...`); `#` starts a comment
//! and a value may be quoted. A value in the file is a default: the environment
//! and the command line still win. The process environment is never modified.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{ArgMatches, Command};

/// Where the file is, from the arguments or `RAPAT_CONFIG`, before clap runs.
pub fn path(args: &[OsString]) -> Option<PathBuf> {
    let mut args = args.iter().skip(1);
    while let Some(arg) = args.next() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
    }
    std::env::var_os("RAPAT_CONFIG").map(PathBuf::from)
}

/// `NAME=value` pairs of the file.
pub fn read(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading the configuration file {}", path.display()))?;
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) =
            line.split_once('=').with_context(|| format!("{}:{}: expected NAME=value", path.display(), number + 1))?;
        let value = value.trim();
        let unquoted =
            ['"', '\''].iter().find_map(|quote| value.strip_prefix(*quote)?.strip_suffix(*quote)).unwrap_or(value);
        values.insert(name.trim().to_string(), unquoted.to_string());
    }
    Ok(values)
}

/// Parses `args` with the file's values as the defaults of the settings that
/// read those environment variables. A name no setting reads is an error, so a
/// typo does not pass silently.
pub fn parse_with(
    mut command: Command,
    args: Vec<OsString>,
    values: &HashMap<String, String>,
) -> anyhow::Result<ArgMatches> {
    let known: HashMap<String, clap::Id> = command
        .get_arguments()
        .filter_map(|arg| Some((arg.get_env()?.to_string_lossy().into_owned(), arg.get_id().clone())))
        .collect();
    for (name, value) in values {
        let id = known.get(name).with_context(|| {
            let mut names: Vec<&String> = known.keys().collect();
            names.sort();
            format!(
                "the configuration file sets {name}, which no setting reads; known: {}",
                names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
            )
        })?;
        command = command.mut_arg(id.clone(), |arg| arg.default_value(value.clone()));
    }
    Ok(command.try_get_matches_from(args).unwrap_or_else(|error| error.exit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_values_comments_and_quotes() {
        let dir = std::env::temp_dir().join(format!("rapat-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("rapat.env");
        std::fs::write(&file, "# local\nNATS_URL = nats://10.0.0.5:4222\n\nRAPAT_NAMESPACE=\"staging\"\n")
            .expect("write");
        let values = read(&file).expect("reads");
        assert_eq!(values.get("NATS_URL").map(String::as_str), Some("nats://10.0.0.5:4222"));
        assert_eq!(values.get("RAPAT_NAMESPACE").map(String::as_str), Some("staging"));
        std::fs::write(&file, "just words\n").expect("write");
        let error = read(&file).expect_err("no equals sign");
        assert!(error.to_string().contains(":1: expected NAME=value"), "{error}");
    }

    #[test]
    fn finds_the_path_in_either_spelling() {
        let args = |list: &[&str]| list.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(path(&args(&["rapat", "--config", "a.env", "serve"])), Some(PathBuf::from("a.env")));
        assert_eq!(path(&args(&["rapat", "serve", "--config=b.env"])), Some(PathBuf::from("b.env")));
    }
}
