//! `orderpipe plugin new <name> [--lang rust|ts|python]`: a ready plugin project from the
//! templates in `template/`: a small working plugin with unit tests (cargo test, node --test or
//! pytest, each against its SDK's fake host), fixtures for `plugin test` (one file, shared by
//! the three languages, whose plugins decide alike), a README, and for TypeScript and Python
//! the contract (`wit/plugin.wit`) their toolchains build against. It never overwrites anything.
//!
//! The project finds its SDK by path, in the orderpipe checkout this binary was built from
//! (or `--sdk`): cargo's `path`, npm's `file:` and `[tool.orderpipe] sdk` of `pyproject.toml`.
//! A path keeps the SDK and the binary at one version, needs no registry, and lets the SDK be
//! edited beside the plugin; the price is that the checkout must stay where it is.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::language::Language;

/// The longest plugin name; the host allows 64 bytes and the package adds `-plugin`.
const MAX_NAME_LEN: usize = 48;

/// The fixtures of every template: the three template plugins decide alike.
const FIXTURES: (&str, &str) = ("fixtures/orders.json", include_str!("template/orders.json"));

/// What every template's README says after its own loop: `plugin test`, fixtures, deploying.
const README_COMMON: &str = include_str!("template/README-common.md");

/// The contract, for the toolchains that build against a WIT file.
const WIT: (&str, &str) = ("wit/plugin.wit", include_str!("../../../wit/plugin.wit"));

/// A Rust project's files, rendered by [`render`], each with its place in the new project.
const RUST_TEMPLATE: [(&str, &str); 5] = [
    ("Cargo.toml", include_str!("template/rust/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("template/rust/lib.rs.tmpl")),
    FIXTURES,
    ("README.md", include_str!("template/rust/README.md.tmpl")),
    (".gitignore", include_str!("template/rust/gitignore")),
];

/// A TypeScript project's files.
const TS_TEMPLATE: [(&str, &str); 10] = [
    (
        "package.json",
        include_str!("template/ts/package.json.tmpl"),
    ),
    ("tsconfig.json", include_str!("template/ts/tsconfig.json")),
    (
        "tsconfig.test.json",
        include_str!("template/ts/tsconfig.test.json"),
    ),
    ("src/plugin.ts", include_str!("template/ts/plugin.ts.tmpl")),
    (
        "src/component.ts",
        include_str!("template/ts/component.ts.tmpl"),
    ),
    (
        "test/plugin.test.ts",
        include_str!("template/ts/plugin.test.ts.tmpl"),
    ),
    FIXTURES,
    WIT,
    ("README.md", include_str!("template/ts/README.md.tmpl")),
    (".gitignore", include_str!("template/ts/gitignore")),
];

/// A Python project's files (`{{module}}` in a path is the package's name).
const PYTHON_TEMPLATE: [(&str, &str); 10] = [
    (
        "pyproject.toml",
        include_str!("template/python/pyproject.toml.tmpl"),
    ),
    ("src/{{module}}/__init__.py", ""),
    (
        "src/{{module}}/plugin.py",
        include_str!("template/python/plugin.py.tmpl"),
    ),
    ("src/app.py", include_str!("template/python/app.py.tmpl")),
    (
        "tests/conftest.py",
        include_str!("template/python/conftest.py.tmpl"),
    ),
    (
        "tests/test_plugin.py",
        include_str!("template/python/test_plugin.py.tmpl"),
    ),
    FIXTURES,
    WIT,
    ("README.md", include_str!("template/python/README.md.tmpl")),
    (".gitignore", include_str!("template/python/gitignore")),
];

/// What the template's placeholders become for one plugin.
struct Names {
    /// `{{name}}`: the plugin's name, as `describe()` reports it.
    name: String,
    /// `{{crate}}`: the cargo package, `<name>-plugin`.
    krate: String,
    /// `{{type}}`: the Rust or Python type implementing the plugin, `<Name>Workflow`.
    ty: String,
    /// `{{module}}`: the Python package, the name with `_` for `-`.
    module: String,
    /// `{{sdk_path}}`: the SDK's folder, as a TOML string.
    sdk_path: String,
    /// `{{sdk_dependency}}`: the SDK as an npm dependency, a JSON string (`"file:..."`).
    sdk_dependency: String,
    /// `{{component}}`: the component's file name (Rust).
    component: String,
}

/// The folder of `language`'s SDK in an orderpipe checkout.
fn sdk_folder(language: Language) -> &'static str {
    match language {
        Language::Rust => "plugins/sdk",
        Language::TypeScript => "plugins/sdk-ts",
        Language::Python => "plugins/sdk-python",
    }
}

/// The SDK of the checkout this binary was built from.
fn default_sdk(language: Language) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(sdk_folder(language))
}

/// Creates `<dir>/<name>` from `language`'s template and prints what to do next.
pub(crate) fn run(
    name: &str,
    language: Language,
    dir: &Path,
    sdk: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let sdk = find_sdk(language, sdk)?;
    let project = dir.join(name);
    if project.exists() {
        bail!(
            "{} already exists; nothing was changed (choose another name, or another --dir)",
            project.display()
        );
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // `create_dir`, not `create_dir_all`: if the folder appeared meanwhile, stop.
    fs::create_dir(&project).with_context(|| format!("creating {}", project.display()))?;
    if let Err(error) = write_project(&project, name, language, &sdk) {
        // Only what this command created is removed.
        let _ = fs::remove_dir_all(&project);
        return Err(error);
    }

    let shown = project.display();
    println!("created plugin `{name}` ({}) in {shown}", language.label());
    let (files, unit_tests) = match language {
        Language::Rust => (
            "  src/lib.rs            the plugin, its state machine and unit tests",
            "cargo test              # unit tests, natively, with the SDK's fake host",
        ),
        Language::TypeScript => (
            "  src/plugin.ts         the plugin and its state machine; test/ its unit tests",
            "npm test                # unit tests (node --test), with the SDK's fake host",
        ),
        Language::Python => (
            "  src/*/plugin.py       the plugin and its state machine; tests/ its unit tests",
            ".venv/bin/pytest        # unit tests, with the SDK's fake host",
        ),
    };
    println!("{files}");
    println!("  fixtures/orders.json  orders and events for `orderpipe plugin test`");
    println!("  README.md             the loop from here to a deployed version");
    println!("next:");
    println!("  cd {shown}");
    let build = "orderpipe plugin build  # the component, its size and sha256";
    if language == Language::Rust {
        println!("  {unit_tests}");
        println!("  {build}");
    } else {
        // The first build installs the toolchain the unit tests run with.
        println!("  {build} (installs the toolchain on first use)");
        println!("  {unit_tests}");
    }
    println!("  orderpipe plugin test   # fixtures/*.json against the component");
    println!("  orderpipe plugin deploy --url URL --token TOKEN");
    Ok(project)
}

/// Why `name` cannot name a plugin, if it cannot: it becomes the plugin's name, the folder's
/// and (with `-plugin`) the crate's, so it keeps to what all three accept.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        "it is empty"
    } else if name.len() > MAX_NAME_LEN {
        "it is too long"
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        "it must start with a lowercase letter"
    } else if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        "only lowercase letters, digits, '_' and '-' are allowed"
    } else if name.ends_with(['-', '_']) {
        "it must end with a letter or digit"
    } else {
        return Ok(());
    };
    Err(format!(
        "invalid plugin name {name:?}: {problem} (a name is 1 to {MAX_NAME_LEN} lowercase letters, digits, '_' or '-', starting with a letter, e.g. `gift_cards`)"
    ))
}

/// The SDK's folder, absolute, checked to hold `language`'s SDK.
fn find_sdk(language: Language, sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    let given = sdk.is_some();
    let path = sdk.map_or_else(|| default_sdk(language), Path::to_path_buf);
    let (manifest, package) = match language {
        Language::Rust => ("Cargo.toml", "name = \"orderpipe-plugin-sdk\""),
        Language::TypeScript => ("package.json", "\"name\": \"@orderpipe/plugin-sdk\""),
        Language::Python => ("pyproject.toml", "name = \"orderpipe-plugin-sdk\""),
    };
    let is_sdk = fs::read_to_string(path.join(manifest)).is_ok_and(|text| text.contains(package));
    let expected = format!(
        "the {} folder of an orderpipe checkout",
        sdk_folder(language)
    );
    if !is_sdk {
        if given {
            bail!(
                "--sdk {}: no orderpipe plugin SDK for {} there (expected {expected})",
                path.display(),
                language.label()
            );
        }
        bail!(
            "the {} plugin SDK is not at {}, where this binary was built; pass --sdk PATH ({expected})",
            language.label(),
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

fn write_project(project: &Path, name: &str, language: Language, sdk: &Path) -> anyhow::Result<()> {
    let krate = format!("{name}-plugin");
    let sdk_text = sdk.to_string_lossy();
    let names = Names {
        name: name.to_owned(),
        component: format!("{}.wasm", krate.replace('-', "_")),
        ty: format!("{}Workflow", camel_case(name)),
        module: name.replace('-', "_"),
        krate,
        sdk_path: quoted(&sdk_text),
        sdk_dependency: quoted(&format!("file:{sdk_text}")),
    };
    let template: &[(&str, &str)] = match language {
        Language::Rust => &RUST_TEMPLATE,
        Language::TypeScript => &TS_TEMPLATE,
        Language::Python => &PYTHON_TEMPLATE,
    };
    for (file, text) in template {
        let path = project.join(render(file, &names));
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, render(text, &names))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // The SDK's own lock file pins the versions the SDK is tested with (cargo drops what
    // this project does not use), so the new project builds with known-good dependencies.
    if language == Language::Rust
        && let Some(lock) = sdk.parent().map(|workspace| workspace.join("Cargo.lock"))
        && lock.is_file()
    {
        fs::copy(&lock, project.join("Cargo.lock"))
            .with_context(|| format!("copying {}", lock.display()))?;
    }
    Ok(())
}

fn render(template: &str, names: &Names) -> String {
    template
        .replace("{{common}}", README_COMMON)
        .replace("{{name}}", &names.name)
        .replace("{{module}}", &names.module)
        .replace("{{sdk_dependency}}", &names.sdk_dependency)
        .replace("{{crate}}", &names.krate)
        .replace("{{type}}", &names.ty)
        .replace("{{sdk_path}}", &names.sdk_path)
        .replace("{{component}}", &names.component)
}

/// `gift_cards` → `GiftCards`, `order-v2` → `OrderV2`.
fn camel_case(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// `text` as a TOML basic string, which is also a JSON string.
fn quoted(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_fit_a_plugin_a_folder_and_a_crate_are_accepted() {
        for name in ["demo", "gift_cards", "order-v2", "a1"] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn other_names_are_refused_with_the_reason() {
        for (name, reason) in [
            ("", "empty"),
            ("Demo", "lowercase letter"),
            ("1st", "lowercase letter"),
            ("my plugin", "only lowercase"),
            ("../escape", "lowercase letter"),
            ("a/b", "only lowercase"),
            ("demo-", "end with"),
            (&"x".repeat(49), "too long"),
        ] {
            let error = check_name(name).unwrap_err();
            assert!(error.contains(reason), "{name}: {error}");
        }
    }

    fn names() -> Names {
        Names {
            name: "gift-cards".into(),
            krate: "gift-cards-plugin".into(),
            ty: camel_case("gift-cards") + "Workflow",
            module: "gift_cards".into(),
            sdk_path: quoted("/repo/plugins/sdk"),
            sdk_dependency: quoted("file:/repo/plugins/sdk-ts"),
            component: "gift_cards_plugin.wasm".into(),
        }
    }

    #[test]
    fn every_template_renders_every_placeholder() {
        let names = names();
        for template in [&RUST_TEMPLATE[..], &TS_TEMPLATE, &PYTHON_TEMPLATE] {
            for (file, text) in template {
                assert!(!render(file, &names).contains("{{"), "{file}");
                assert!(
                    !render(text, &names).contains("{{"),
                    "{file} keeps a placeholder"
                );
            }
        }
        let manifest = render(RUST_TEMPLATE[0].1, &names);
        assert!(manifest.contains(r#"orderpipe-plugin-sdk = { path = "/repo/plugins/sdk" }"#));
        assert!(render(RUST_TEMPLATE[1].1, &names).contains("pub struct GiftCardsWorkflow;"));
        let package: serde_json::Value =
            serde_json::from_str(&render(TS_TEMPLATE[0].1, &names)).expect("package.json");
        assert_eq!(
            package["dependencies"]["@orderpipe/plugin-sdk"],
            "file:/repo/plugins/sdk-ts"
        );
        assert_eq!(
            render(PYTHON_TEMPLATE[2].0, &names),
            "src/gift_cards/plugin.py"
        );
        assert!(render(PYTHON_TEMPLATE[2].1, &names).contains("class GiftCardsWorkflow:"));
    }

    #[test]
    fn template_fixtures_are_valid() {
        let fixtures = super::super::fixtures::parse(FIXTURES.1).expect("template fixtures");
        assert!(fixtures.len() >= 3);
    }

    #[test]
    fn strings_are_quoted_for_toml_and_json() {
        assert_eq!(quoted(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
        let json: String = serde_json::from_str(&quoted("a\tb\\c\"")).unwrap();
        assert_eq!(json, "a\tb\\c\"");
        assert_eq!(camel_case("order-v2"), "OrderV2");
    }
}
