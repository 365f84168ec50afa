//! The plugin author's commands, `orderpipe plugin new|build|test`: from nothing to a tested
//! component without a running pipeline.
//!
//! - [`plugin_new`]: a ready project in Rust, TypeScript or Python from the templates in
//!   `template/` (depending on its SDK by path, with unit tests and fixtures);
//! - [`plugin_build`]: the project's toolchain, by [`language`]: cargo for wasm32-wasip2,
//!   [`npm_project`] (jco, QuickJS) or [`python_project`] (componentize-py, then
//!   [`immortal_objects`]), the latter two installed into the project folder on first use; then
//!   the component's path, size and sha256;
//! - [`plugin_test`]: the component in the host's own runtime with in-memory host functions,
//!   against the fixtures ([`fixtures`] is their format), printing every decision.
//!
//! - [`plugin_admin`]: `deploy`, `list`, `activate`, `rollback`, `limits` through a host's
//!   admin API.
//!
//! The authoring commands never reach Kafka, Cassandra or Redis. Their output is for people (stdout,
//! progress on stderr) and their exit status for scripts: non-zero when anything went wrong.

mod fixtures;
mod immortal_objects;
mod language;
mod npm_project;
mod plugin_admin;
mod plugin_build;
mod plugin_new;
mod plugin_test;
mod project;
mod python_project;

use std::path::PathBuf;

use clap::Subcommand;

pub use self::language::Language;
use crate::plugin::PluginLimits;

/// `orderpipe plugin ...`.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Create a plugin project from the template: <DIR>/<NAME>/ with a working plugin, its
    /// unit tests (cargo test, npm test or pytest), fixtures/orders.json and a README.
    New {
        /// The plugin's name: lowercase letters, digits, '_' or '-', starting with a letter.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: Language,
        /// Where to create the project's folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The plugin SDK to depend on (the plugins/sdk, plugins/sdk-ts or plugins/sdk-python
        /// folder of an orderpipe checkout); default: the one of the checkout this binary was
        /// built from.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build the plugin project's component with its language's toolchain (cargo for
    /// wasm32-wasip2; npm run build with jco's QuickJS backend; componentize-py), installing the
    /// TypeScript or Python toolchain into the project folder on first use, and print its
    /// path, size and sha256.
    Build {
        /// The plugin project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Run the component against fixture orders and events in the host's runtime, with
    /// in-memory host functions; print each decision, its fuel and time, and the host calls
    /// it made. Exits non-zero when an expectation does not hold.
    Test {
        /// The plugin project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The component to test (default: the one `plugin build` makes for --dir).
        #[arg(long, value_name = "FILE")]
        component: Option<PathBuf>,
        /// A fixture file; repeat for several (default: every fixtures/*.json of --dir).
        #[arg(long = "fixtures", value_name = "FILE")]
        fixtures: Vec<PathBuf>,
    },
    /// Upload the component to a running host's registry and activate it on every host.
    Deploy {
        /// The plugin project.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The component to deploy (default: the one `plugin build` makes for --dir).
        #[arg(long, value_name = "FILE")]
        component: Option<PathBuf>,
        /// Upload only; activate later with `plugin activate`.
        #[arg(long)]
        no_activate: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List plugins, their versions and which one is active, and the limits.
    List {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a stored version the active one on every host.
    Activate {
        name: String,
        version: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Activate the version uploaded just before the active one.
    Rollback {
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Set a plugin's limits on every host (overriding the configured defaults), or show
    /// them when no limit is given.
    Limits {
        name: String,
        /// CPU budget per event, in fuel (about one per wasm instruction).
        #[arg(long, value_name = "N")]
        fuel: Option<u64>,
        /// Linear memory cap per instance, in MiB (at most the hosts' plugins.max_memory_mib).
        #[arg(long, value_name = "N")]
        memory_mib: Option<u32>,
        /// Wall-clock deadline per event, in milliseconds.
        #[arg(long, value_name = "N")]
        timeout_ms: Option<u64>,
        /// Store and cache calls per event.
        #[arg(long, value_name = "N")]
        host_calls: Option<u32>,
        /// Set any limit by name, e.g. `--set decision_bytes=131072 --set instance_reuse=1000`;
        /// repeat for several (the names `plugin list` shows).
        #[arg(long = "set", value_name = "LIMIT=N", value_parser = parse_limit_setting)]
        set: Vec<(String, u64)>,
        /// Restore a limit to the hosts' default; repeat for several.
        #[arg(long, value_name = "LIMIT", value_parser = clap::builder::PossibleValuesParser::new(plugin_admin::LIMIT_NAMES))]
        reset: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

/// `name=N` for `plugin limits --set`: a known limit and a whole number.
fn parse_limit_setting(text: &str) -> Result<(String, u64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected LIMIT=N"))?;
    if !plugin_admin::LIMIT_NAMES.contains(&name) {
        return Err(format!(
            "{name:?} is not a plugin limit (one of {})",
            plugin_admin::LIMIT_NAMES.join(", ")
        ));
    }
    let value = value
        .parse()
        .map_err(|_| format!("{name}: {value:?} is not a whole number"))?;
    Ok((name.to_owned(), value))
}

/// Where the admin API is.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// A host's base URL.
    #[arg(long, env = "ORDERPIPE_URL", default_value = "http://127.0.0.1:5000")]
    url: String,
    /// The admin token the hosts were configured with.
    #[arg(long, env = "ORDERPIPE_ADMIN__TOKEN", hide_env_values = true)]
    token: String,
}

impl AdminArgs {
    fn target(self) -> plugin_admin::Target {
        plugin_admin::Target {
            url: self.url,
            token: self.token,
        }
    }
}

/// Runs a `plugin` command. `limits` are the ones the host would apply (from the
/// configuration), so `plugin test` tests under the same budget.
pub async fn run(command: PluginCommand, limits: &PluginLimits) -> anyhow::Result<()> {
    match command {
        PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        } => plugin_new::run(&name, lang, &dir, sdk.as_deref()).map(drop),
        PluginCommand::Build { dir } => plugin_build::run(&dir),
        PluginCommand::Test {
            dir,
            component,
            fixtures,
        } => {
            let options = plugin_test::Options {
                dir,
                component,
                fixtures,
            };
            plugin_test::run(&options, limits).await
        }
        PluginCommand::Deploy {
            dir,
            component,
            no_activate,
            admin,
        } => plugin_admin::deploy(&admin.target(), &dir, component, !no_activate).await,
        PluginCommand::List { admin } => plugin_admin::list(&admin.target()).await,
        PluginCommand::Activate {
            name,
            version,
            admin,
        } => plugin_admin::activate_version(&admin.target(), &name, &version).await,
        PluginCommand::Rollback { name, admin } => {
            plugin_admin::rollback(&admin.target(), &name).await
        }
        PluginCommand::Limits {
            name,
            fuel,
            memory_mib,
            timeout_ms,
            host_calls,
            set,
            reset,
            admin,
        } => {
            let mut change = serde_json::Map::new();
            for limit in reset {
                change.insert(limit, serde_json::Value::Null);
            }
            let given = [
                ("fuel", fuel.map(serde_json::Value::from)),
                ("memory_mib", memory_mib.map(serde_json::Value::from)),
                ("timeout_ms", timeout_ms.map(serde_json::Value::from)),
                ("host_calls", host_calls.map(serde_json::Value::from)),
            ];
            for (limit, value) in given {
                if let Some(value) = value {
                    change.insert(limit.to_owned(), value);
                }
            }
            for (limit, value) in set {
                change.insert(limit, serde_json::Value::from(value));
            }
            plugin_admin::limits(&admin.target(), &name, change).await
        }
    }
}
