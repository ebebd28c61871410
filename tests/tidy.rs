//! Tidy: the architecture's invariants, checked over the tree's manifests and
//! sources (in the spirit of rust-analyzer's tidy tests). No network, no services.
//!
//! - which crate may depend on which (the layering of ARCHITECTURE.md);
//! - `domain` stays pure: no I/O crate in its dependencies, none named in its code;
//! - only `commands` appends to the event stream: outside `commands/src`, a source
//!   file that publishes and builds one aggregate's event subject, or that makes a
//!   conditional append (`Nats-Expected-Last-Subject-Sequence`), is an offender
//!   unless listed as a deliberate raw writer (tests and benchmarks);
//! - every NATS name comes from `rapat_wire::Namespace`, none is formatted by hand;
//! - no file over 600 lines;
//! - the tree is formatted as `rustfmt.toml` says (`cargo fmt --all`).
//!
//! Each exemption is listed here with its reason; a listed exemption that no longer
//! applies fails too, so the lists shrink as the tree gets tidier.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The path relative to the repository root, with `/` separators.
fn relative(path: &Path) -> String {
    let relative = path.strip_prefix(root()).expect("under the root");
    relative.components().map(|part| part.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Every file under `dir`, skipping build output, dependencies and VCS data.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    const SKIPPED: [&str; 5] = [".git", "target", "node_modules", ".data", "test-results"];
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() {
                if !SKIPPED.contains(&name.as_str()) {
                    pending.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn rust_files_under(dir: &str) -> Vec<PathBuf> {
    files_under(&root().join(dir)).into_iter().filter(|path| path.extension().is_some_and(|ext| ext == "rs")).collect()
}

/// The names in a crate's `[dependencies]` (and `[target.….dependencies]`): what
/// its library and binaries link, not its tests or build scripts.
fn normal_dependencies(crate_dir: &str) -> BTreeSet<String> {
    let manifest = read(&root().join(crate_dir).join("Cargo.toml"));
    let mut in_dependencies = false;
    let mut names = BTreeSet::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            let section = line.trim_matches(|c| c == '[' || c == ']');
            // `[dependencies.foo]` is one dependency written as a table.
            if let Some(name) = section.strip_prefix("dependencies.") {
                names.insert(name.trim_matches('"').to_string());
                in_dependencies = false;
                continue;
            }
            in_dependencies =
                section == "dependencies" || (section.starts_with("target.") && section.ends_with(".dependencies"));
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split(['=', '.']).next().unwrap_or_default().trim().trim_matches('"');
        // `foo = { package = "bar" }` renames: the package is what matters.
        let package = line
            .split("package")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .filter(|_| line.contains("package ="))
            .unwrap_or(key);
        names.insert(package.to_string());
    }
    assert!(!names.is_empty(), "{crate_dir}/Cargo.toml has dependencies to check");
    names
}

fn assert_depends_on_none(crate_dir: &str, forbidden: &[&str], why: &str) {
    let dependencies = normal_dependencies(crate_dir);
    let found: Vec<&&str> = forbidden.iter().filter(|name| dependencies.contains(**name)).collect();
    assert!(found.is_empty(), "{crate_dir} must not depend on {found:?}: {why}");
}

const IO_CRATES: [&str; 9] =
    ["tokio", "tokio-util", "async-nats", "sqlx", "reqwest", "axum", "hyper", "hyper-util", "tower-http"];

#[test]
fn crate_dependencies_follow_the_layering() {
    assert_depends_on_none("domain", &IO_CRATES, "the domain is pure: decisions without I/O");
    let rapat_crates = [
        "rapat-domain",
        "rapat-commands",
        "rapat-projections",
        "rapat-delivery",
        "rapat-gateway",
        "rapat-sfu",
        "rapat-schemas",
        "rapat-telemetry",
        "rapat-testkit",
    ];
    assert_depends_on_none("wire", &rapat_crates, "the wire contract sits below every process");
    assert_depends_on_none(
        "commands",
        &["rapat-projections", "rapat-delivery", "rapat-gateway", "rapat-sfu"],
        "the write side knows nothing of readers or edges",
    );
    assert_depends_on_none(
        "projections",
        &["rapat-delivery", "rapat-gateway", "rapat-sfu"],
        "the read side knows nothing of the edges that serve it",
    );
    assert_depends_on_none(
        "delivery",
        &["rapat-gateway", "rapat-sfu"],
        "the channels send what the read side owes; they serve no requests",
    );
    assert_depends_on_none(
        "sfu",
        &["rapat-projections", "rapat-delivery", "rapat-gateway"],
        "the media plane reads no read model and calls no gateway code",
    );
    for crate_dir in ["domain", "commands", "projections", "delivery", "gateway", "sfu", "schemas", "telemetry", "wire"]
    {
        assert_depends_on_none(crate_dir, &["rapat-testkit"], "the test kit is for tests only (a dev-dependency)");
    }
}

#[test]
fn domain_code_names_no_io_library() {
    let forbidden = ["tokio::", "sqlx::", "async_nats::", "reqwest::", "axum::", "hyper::", "std::net::", "std::fs::"];
    let mut offenders = Vec::new();
    for path in rust_files_under("domain/src") {
        for (number, line) in read(&path).lines().enumerate() {
            if let Some(name) = forbidden.iter().find(|name| line.contains(**name)) {
                offenders.push(format!("{}:{}: {name}", relative(&path), number + 1));
            }
        }
    }
    assert!(offenders.is_empty(), "the domain does no I/O:\n{}", offenders.join("\n"));
}

/// Files outside `commands/src` that deliberately write raw events, and why.
const RAW_EVENT_WRITERS: [(&str, &str); 7] = [
    ("projections/tests/projections/support.rs", "projection tests store hand-made histories and poison messages"),
    ("projections/benches/commit.rs", "measures projection commits on a scratch stream, without the aggregate"),
    ("projections/benches/rebuild.rs", "fills a scratch stream fast to measure rebuilds"),
    ("commands/tests/store/loading.rs", "stores a v1 event and a garbage message to test loading them"),
    ("commands/benches/append.rs", "measures raw against conditional appends on a scratch stream"),
    ("gateway/tests/api/observability.rs", "stores a message that is no commit, to see the projector's error metric"),
    ("tests/cli_export_admin.rs", "stores events of its own to test export and admin commands on them"),
];

/// Whether `line` builds the subject of one aggregate's events: what an append
/// needs. Subscribing to (or reading) many, with a `>` wildcard, is not writing.
fn builds_an_event_subject(line: &str) -> bool {
    // A core subscription to one aggregate's subject (the gateway's fan-out) reads.
    if line.contains("subscribe(") {
        return false;
    }
    let formats = line.contains("format!(");
    // `Namespace::event_subject`, or a subject formatted by hand.
    line.contains("event_subject(") || (formats && line.contains(".events.") && !line.contains(".events.>"))
}

/// Signs that a file publishes to NATS or JetStream.
const PUBLISH_CALLS: [&str; 3] = [".publish(", "publish_with_headers(", "send_publish("];

/// Signs that a file makes a conditional append (the optimistic concurrency check
/// that only the event store may do).
const CONDITIONAL_APPEND_MARKERS: [&str; 2] = ["Nats-Expected-Last-Subject-Sequence", "expected_last_subject_sequence"];

#[test]
fn only_commands_appends_to_the_event_stream() {
    let mut offenders = Vec::new();
    let mut used_exemptions = BTreeSet::new();
    for path in rust_files_under(".") {
        let name = relative(&path);
        if name.starts_with("commands/src/") || name.starts_with("wire/src/") || name == "tests/tidy.rs" {
            continue;
        }
        let source = read(&path);
        let publishes = PUBLISH_CALLS.iter().any(|call| source.contains(call));
        let names_events = source.lines().any(builds_an_event_subject);
        let appends_conditionally = CONDITIONAL_APPEND_MARKERS.iter().any(|marker| source.contains(marker));
        if (publishes && names_events) || appends_conditionally {
            if RAW_EVENT_WRITERS.iter().any(|(exempt, _)| *exempt == name) {
                used_exemptions.insert(name);
            } else {
                offenders.push(name);
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only commands/src appends events (through the event store); these files publish on an event \
         subject or make a conditional append: {offenders:?}"
    );
    assert_every_exemption_used(&RAW_EVENT_WRITERS, &used_exemptions);
}

/// An exemption that no longer applies is itself an error, so the lists stay true.
fn assert_every_exemption_used(exemptions: &[(&str, &str)], used: &BTreeSet<String>) {
    let stale: Vec<&str> = exemptions.iter().map(|(name, _)| *name).filter(|name| !used.contains(*name)).collect();
    assert!(stale.is_empty(), "these exemptions no longer apply, remove them: {stale:?}");
}

/// Pieces of NATS names as a `format!` or a suffix strip puts them together: only
/// `wire/src/namespace.rs` builds a stream, subject, bucket or consumer name.
const NATS_NAME_PIECES: [&str; 11] = [
    "}_EVENTS",
    "}_SNAPSHOTS",
    "}_CHAT",
    "}_PRESENCE",
    "}_SFU_ROOMS",
    "}_projection",
    "}.events",
    "}.chat.",
    "}.sfu.",
    "}.rooms.",
    "\".events\"",
];

#[test]
fn nats_names_come_from_the_namespace() {
    let mut offenders = Vec::new();
    for path in rust_files_under(".") {
        let name = relative(&path);
        if name.starts_with("wire/src/") || name == "tests/tidy.rs" {
            continue;
        }
        for (number, line) in read(&path).lines().enumerate() {
            if let Some(piece) = NATS_NAME_PIECES.iter().find(|piece| line.contains(**piece)) {
                offenders.push(format!("{name}:{}: {piece}", number + 1));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "build NATS names with rapat_wire::Namespace, not by hand:\n{}",
        offenders.join("\n")
    );
}

/// Files allowed over 600 lines, and why.
const LONG_FILES: [(&str, &str); 5] = [
    ("ARCHITECTURE.md", "the codemap, prose read by section"),
    ("Cargo.lock", "generated by cargo"),
    ("README.md", "prose, read by section"),
    ("infra/services.sh", "one script per service set, to be split by service"),
    ("sfu/src/loopback_client.rs", "the test client of the media plane, being reworked with the SFU core"),
];

const MAX_LINES: usize = 600;

#[test]
fn no_file_is_over_600_lines() {
    let mut offenders = Vec::new();
    let mut used_exemptions = BTreeSet::new();
    for path in files_under(&root()) {
        // Binary files (images) have no lines to count.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let name = relative(&path);
        let lines = text.lines().count();
        if lines <= MAX_LINES {
            continue;
        }
        if LONG_FILES.iter().any(|(exempt, _)| *exempt == name) {
            used_exemptions.insert(name);
        } else {
            offenders.push(format!("{name} ({lines} lines)"));
        }
    }
    assert!(offenders.is_empty(), "split these files (at most {MAX_LINES} lines): {offenders:?}");
    assert_every_exemption_used(&LONG_FILES, &used_exemptions);
}

#[test]
fn the_tree_is_formatted() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["fmt", "--all", "--", "--check", "--files-with-diff"])
        .current_dir(root())
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("no such command") && !stderr.contains("not installed"),
        "rustfmt is missing: `rustup component add rustfmt`\n{stderr}"
    );
    let unformatted = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "run `cargo fmt --all`; these files differ:\n{unformatted}{stderr}");
}
