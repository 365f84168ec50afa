//! The plugin author's loop through the real `orderpipe` binary: `plugin new` makes a
//! project, `plugin build` compiles it to a component (a real wasm32-wasip2 build), and
//! `plugin test` runs it against fixtures in the host's runtime, failing the run when an
//! expectation does not hold. No servers are needed.
//!
//! The generated projects build into one shared `target/plugin-cli-test` folder, so only the
//! first run pays for compiling the SDK and its dependencies.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::ADMIN_TOKEN;

/// What one `orderpipe` run printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Runs `orderpipe <args>` in `dir` (so no `orderpipe.toml` of the repository applies).
fn orderpipe(dir: &Path, args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_orderpipe"))
        .args(args)
        .current_dir(dir)
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target/plugin-cli-test"),
        )
        .env_remove("ORDERPIPE_CONFIG")
        .output()
        .expect("orderpipe runs");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// The numbered decision lines of `plugin test`'s output: `    2. reviewed: reject ...`.
fn decisions(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|line| {
            line.strip_prefix("    ")
                .and_then(|rest| rest.split_once(". "))
                .is_some_and(|(number, _)| {
                    !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
                })
        })
        .collect()
}

#[test]
fn a_new_plugin_builds_and_passes_its_fixtures_and_a_wrong_expectation_fails_the_run() {
    let temp = tempfile::tempdir().unwrap();
    let new = orderpipe(
        temp.path(),
        &["plugin", "new", "demo", "--dir", path(temp.path())],
    );
    assert!(new.success, "{new:?}");
    assert!(new.stdout.contains("created plugin `demo`"), "{new:?}");
    let project = temp.path().join("demo");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "fixtures/orders.json",
        "README.md",
    ] {
        assert!(project.join(file).is_file(), "{file} is missing");
    }

    // A relative --dir, as an author in the parent folder would type it.
    let build = orderpipe(temp.path(), &["plugin", "build", "--dir", "demo"]);
    assert!(build.success, "{build:?}");
    assert!(build.stdout.contains("demo_plugin.wasm"), "{build:?}");
    let sha256 = build
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("sha256"))
        .map(str::trim)
        .unwrap_or_default();
    assert!(
        sha256.len() == 64 && sha256.chars().all(|c| c.is_ascii_hexdigit()),
        "{build:?}"
    );
    assert!(build.stdout.contains("size"), "{build:?}");

    let test = orderpipe(temp.path(), &["plugin", "test", "--dir", path(&project)]);
    assert!(test.success, "{test:?}");
    assert!(test.stdout.contains("plugin demo 0.1.0"), "{test:?}");
    let decided = decisions(&test.stdout);
    assert_eq!(decided.len(), 8, "one decision per fixture event: {test:?}");
    assert!(
        decided[0].contains("created: transition created -> approved"),
        "{test:?}"
    );
    assert!(
        decided
            .iter()
            .any(|line| line.contains("reviewed: reject (stays in_review)")),
        "{test:?}"
    );
    assert!(test.stdout.contains("fuel "), "{test:?}");
    let costs: Vec<&str> = test
        .stdout
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("fuel "))
        .collect();
    assert_eq!(costs.len(), 8, "one cost line per decision: {test:?}");
    assert!(
        costs.iter().all(|line| {
            line.contains(" ms (new instance ")
                || line.contains(" ms (instance returned to its start)")
        }),
        "each event says which fresh instance decided it: {test:?}"
    );
    assert!(
        costs
            .iter()
            .any(|line| line.contains("(instance returned to its start)")),
        "the host's default: the last event's instance returned to its start: {test:?}"
    );
    assert!(
        test.stdout.contains("cache.incr orders-seen +1 -> 1"),
        "the host calls are shown: {test:?}"
    );
    assert!(test.stdout.contains("all held"), "{test:?}");

    std::fs::write(
        project.join("fixtures/wrong.json"),
        r#"[{"name": "wrong on purpose",
             "order": {"items": [{"sku": "A-1", "qty": 1, "unit_price": 5}]},
             "events": [{"type": "created", "expect": "shipped"}]}]"#,
    )
    .unwrap();
    let wrong = orderpipe(temp.path(), &["plugin", "test", "--dir", path(&project)]);
    assert!(!wrong.success, "{wrong:?}");
    assert!(
        wrong
            .stdout
            .contains("FAILED: expected status shipped, got approved"),
        "{wrong:?}"
    );
    assert!(wrong.stderr.contains("plugin test failed"), "{wrong:?}");
}

#[test]
fn a_new_plugin_passes_its_own_unit_tests() {
    let temp = tempfile::tempdir().unwrap();
    let new = orderpipe(
        temp.path(),
        &["plugin", "new", "gift_cards", "--dir", path(temp.path())],
    );
    assert!(new.success, "{new:?}");
    let output = Command::new("cargo")
        .args(["test", "--quiet"])
        .current_dir(temp.path().join("gift_cards"))
        .env(
            "CARGO_TARGET_DIR",
            repo_root().join("target/plugin-cli-test"),
        )
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn plugin_new_refuses_invalid_names_and_existing_folders() {
    let temp = tempfile::tempdir().unwrap();
    for name in ["Demo", "my plugin", "../escape", "demo-"] {
        let run = orderpipe(
            temp.path(),
            &["plugin", "new", name, "--dir", path(temp.path())],
        );
        assert!(!run.success, "{name}: {run:?}");
        assert!(
            run.stderr.contains("invalid plugin name"),
            "{name}: {run:?}"
        );
    }
    assert_eq!(
        std::fs::read_dir(temp.path()).unwrap().count(),
        0,
        "nothing was created"
    );

    std::fs::create_dir(temp.path().join("taken")).unwrap();
    std::fs::write(temp.path().join("taken/keep.txt"), "mine").unwrap();
    let run = orderpipe(
        temp.path(),
        &["plugin", "new", "taken", "--dir", path(temp.path())],
    );
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("already exists"), "{run:?}");
    assert_eq!(
        std::fs::read_to_string(temp.path().join("taken/keep.txt")).unwrap(),
        "mine"
    );
    assert!(!temp.path().join("taken/Cargo.toml").exists());

    let run = orderpipe(
        temp.path(),
        &[
            "plugin",
            "new",
            "lost",
            "--dir",
            path(temp.path()),
            "--sdk",
            "/nowhere",
        ],
    );
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("no orderpipe plugin SDK"), "{run:?}");
}

#[test]
fn the_order_plugin_passes_its_fixtures() {
    let component = support::plugins_dir().join("order.wasm");
    assert!(
        component.is_file(),
        "{} is missing: run `cargo xtask plugins`",
        component.display()
    );
    let fixtures = repo_root().join("plugins/order/fixtures/orders.json");
    let temp = tempfile::tempdir().unwrap();
    let run = orderpipe(
        temp.path(),
        &[
            "plugin",
            "test",
            "--component",
            path(&component),
            "--fixtures",
            path(&fixtures),
        ],
    );
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout
            .contains("cache.get payment:p-7 -> \"the event of another order\""),
        "{run:?}"
    );
}

#[test]
fn the_invoice_plugin_passes_its_fixtures() {
    let component = support::plugins_dir().join("invoice.wasm");
    assert!(
        component.is_file(),
        "{} is missing: run `cargo xtask plugins`",
        component.display()
    );
    let fixtures = repo_root().join("plugins/invoice/fixtures/invoices.json");
    let temp = tempfile::tempdir().unwrap();
    let run = orderpipe(
        temp.path(),
        &[
            "plugin",
            "test",
            "--component",
            path(&component),
            "--fixtures",
            path(&fixtures),
        ],
    );
    assert!(run.success, "{run:?}");
    assert!(run.stdout.contains("all held"), "{run:?}");
    assert!(
        run.stdout.contains("store.put payments"),
        "partial payments are kept in the plugin's store: {run:?}"
    );
}

#[test]
fn plugin_test_names_the_place_of_a_mistake_in_a_fixture_file() {
    let temp = tempfile::tempdir().unwrap();
    let fixtures = temp.path().join("typo.json");
    std::fs::write(
        &fixtures,
        r#"{"fixtures": [{"events": [{"type": "created", "expct": "paid"}]}]}"#,
    )
    .unwrap();
    let run = orderpipe(
        temp.path(),
        &[
            "plugin",
            "test",
            "--component",
            "never-read.wasm",
            "--fixtures",
            path(&fixtures),
        ],
    );
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("fixtures[0].events[0]"), "{run:?}");
    assert!(run.stderr.contains("expct"), "{run:?}");
}

/// One command of the authoring loop: what was typed, how long it took, what it printed.
struct Step {
    typed: String,
    took: Duration,
    run: Run,
}

/// Runs `program args` in `dir`, timed: `orderpipe` is the binary under test; any other
/// program is a path relative to `dir` (`.venv/bin/pytest`) or found on PATH (`npm`).
fn typed(dir: &Path, program: &str, args: &[&str]) -> Step {
    let started = Instant::now();
    let run = if program == "orderpipe" {
        orderpipe(dir, args)
    } else {
        let local = dir.join(program);
        let executable = if local.is_file() {
            local
        } else {
            PathBuf::from(program)
        };
        let output = Command::new(&executable)
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| panic!("{program} runs: {e}"));
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    };
    Step {
        typed: format!("{program} {}", args.join(" ")),
        took: started.elapsed(),
        run,
    }
}

/// From nothing to an active version on a running host, with the commands the generated
/// README lists: `plugin new`, `plugin build` (which installs the toolchain from the registry
/// on first use), the unit tests, `plugin test`, `plugin deploy`, `plugin list`. Each must
/// succeed, there must be at most six, and how long each took is printed.
async fn new_to_active(
    lang: &'static str,
    name: &'static str,
    unit_tests: &'static [&'static str],
) {
    let data = tempfile::tempdir().unwrap();
    let mut config = orderpipe::config::Config::default();
    config.backends.data_dir = data.path().to_path_buf();
    config.http.addr = "127.0.0.1:0".parse().unwrap();
    // The upload is answered once the host has compiled the component: a minute or more for
    // a 12-18 MB JavaScript or Python component with a dev build on a busy 2-core machine.
    config.http.upload_timeout_ms = 600_000;
    config.plugins.dir = support::plugins_dir();
    config.admin.token = Some(ADMIN_TOKEN.into());
    config.log.filter = "warn".into();
    let mut host = support::TestHost::start(config).await;
    let url = host.base.clone();

    let temp = tempfile::tempdir().unwrap();
    let parent = temp.path().to_path_buf();
    let steps = tokio::task::spawn_blocking(move || {
        let project = parent.join(name);
        let admin = ["--url", url.as_str(), "--token", ADMIN_TOKEN];
        let commands: [(&Path, &str, Vec<&str>); 6] = [
            (
                &parent,
                "orderpipe",
                vec!["plugin", "new", name, "--lang", lang],
            ),
            (&project, "orderpipe", vec!["plugin", "build"]),
            (&project, unit_tests[0], unit_tests[1..].to_vec()),
            (&project, "orderpipe", vec!["plugin", "test"]),
            (
                &project,
                "orderpipe",
                [&["plugin", "deploy"][..], &admin].concat(),
            ),
            (
                &project,
                "orderpipe",
                [&["plugin", "list"][..], &admin].concat(),
            ),
        ];
        let mut steps = Vec::new();
        for (dir, program, args) in commands {
            let step = typed(dir, program, &args);
            assert!(step.run.success, "`{}` failed: {:?}", step.typed, step.run);
            steps.push(step);
        }
        steps
    })
    .await
    .unwrap();

    println!(
        "--lang {lang}: from nothing to an active version in {} commands",
        steps.len()
    );
    for step in &steps {
        println!("  {:>6.1} s  {}", step.took.as_secs_f64(), step.typed);
    }
    let total: Duration = steps.iter().map(|step| step.took).sum();
    println!("  {:>6.1} s  in all", total.as_secs_f64());
    assert!(steps.len() <= 6, "at most six commands");

    let [new, build, _unit_tests, test, deploy, list] = &steps[..] else {
        unreachable!("six commands");
    };
    assert!(new.run.stdout.contains("created"), "{:?}", new.run);
    assert!(
        build.run.stderr.contains("first use only"),
        "the first build installs the toolchain and says so: {:?}",
        build.run
    );
    assert!(build.run.stdout.contains("sha256"), "{:?}", build.run);
    if lang == "python" {
        assert!(
            build
                .run
                .stderr
                .contains("snapshot objects marked immortal"),
            "a Python build marks its snapshot's objects immortal: {:?}",
            build.run
        );
    }
    assert!(
        test.run.stdout.contains(&format!("plugin {name} 0.1.0")),
        "{:?}",
        test.run
    );
    assert!(test.run.stdout.contains("all held"), "{:?}", test.run);
    assert_eq!(
        decisions(&test.run.stdout).len(),
        8,
        "the template's fixtures, the same for every language: {:?}",
        test.run
    );
    assert!(
        deploy
            .run
            .stdout
            .contains(&format!("activated {name} 0.1.0")),
        "{:?}",
        deploy.run
    );
    assert!(
        list.run.stdout.contains(&format!("{name} (active 0.1.0)")),
        "{:?}",
        list.run
    );

    // The host itself has it active.
    let plugin: serde_json::Value = host
        .http
        .get(host.url(&format!("/api/plugins/{name}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plugin["active"]["version"], "0.1.0", "{plugin}");
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_typescript_plugin_goes_from_nothing_to_an_active_version_in_six_commands() {
    new_to_active("ts", "gift-cards-ts", &["npm", "test", "--silent"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_plugin_goes_from_nothing_to_an_active_version_in_six_commands() {
    new_to_active("python", "gift-cards-py", &[".venv/bin/pytest", "-q"]).await;
}
