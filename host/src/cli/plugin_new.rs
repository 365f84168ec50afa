//! `orderpipe plugin new <name>`: a ready plugin project from the template in `template/`:
//! a cargo project of its own that depends on the SDK by path, a small working plugin with
//! unit tests, fixtures for `plugin test`, and a README. It never overwrites anything.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The longest plugin name; the host allows 64 bytes and the crate adds `-plugin`.
const MAX_NAME_LEN: usize = 48;

/// The template's files, rendered by [`render`], each with its place in the new project.
const TEMPLATE: [(&str, &str); 5] = [
    ("Cargo.toml", include_str!("template/Cargo.toml.tmpl")),
    ("src/lib.rs", include_str!("template/lib.rs.tmpl")),
    ("fixtures/orders.json", include_str!("template/orders.json")),
    ("README.md", include_str!("template/README.md.tmpl")),
    (".gitignore", include_str!("template/gitignore")),
];

/// What the template's placeholders become for one plugin.
struct Names {
    /// `{{name}}`: the plugin's name, as `describe()` reports it.
    name: String,
    /// `{{crate}}`: the cargo package, `<name>-plugin`.
    krate: String,
    /// `{{type}}`: the Rust type implementing the plugin, `<Name>Workflow`.
    ty: String,
    /// `{{sdk_path}}`: the SDK's folder, as a TOML string.
    sdk_path: String,
    /// `{{component}}`: the component's file name.
    component: String,
}

/// The SDK of the checkout this binary was built from.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk")
}

/// Creates `<dir>/<name>` from the template and prints what to do next.
pub(crate) fn run(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    check_name(name).map_err(anyhow::Error::msg)?;
    let sdk = find_sdk(sdk)?;
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
    if let Err(error) = write_project(&project, name, &sdk) {
        // Only what this command created is removed.
        let _ = fs::remove_dir_all(&project);
        return Err(error);
    }

    let shown = project.display();
    println!("created plugin `{name}` in {shown}");
    println!("  src/lib.rs            the plugin, its state machine and unit tests");
    println!("  fixtures/orders.json  orders and events for `orderpipe plugin test`");
    println!("  README.md             the loop from here to a deployed version");
    println!("next:");
    println!("  cd {shown}");
    println!("  cargo test                # unit tests, natively, with the SDK's fake host");
    println!("  orderpipe plugin build    # the component, its size and sha256");
    println!("  orderpipe plugin test     # fixtures/*.json against the component");
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

/// The SDK's folder, absolute, checked to hold the SDK.
fn find_sdk(sdk: Option<&Path>) -> anyhow::Result<PathBuf> {
    let given = sdk.is_some();
    let path = sdk.map_or_else(default_sdk, Path::to_path_buf);
    let manifest = path.join("Cargo.toml");
    let is_sdk = fs::read_to_string(&manifest)
        .is_ok_and(|text| text.contains("name = \"orderpipe-plugin-sdk\""));
    if !is_sdk {
        if given {
            bail!(
                "--sdk {}: no orderpipe plugin SDK there (expected the plugins/sdk folder of an orderpipe checkout)",
                path.display()
            );
        }
        bail!(
            "the plugin SDK is not at {}, where this binary was built; pass --sdk PATH (the plugins/sdk folder of an orderpipe checkout)",
            path.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("resolving {}", path.display()))
}

fn write_project(project: &Path, name: &str, sdk: &Path) -> anyhow::Result<()> {
    let krate = format!("{name}-plugin");
    let names = Names {
        name: name.to_owned(),
        component: format!("{}.wasm", krate.replace('-', "_")),
        ty: format!("{}Workflow", camel_case(name)),
        krate,
        sdk_path: toml_string(&sdk.to_string_lossy()),
    };
    for (file, template) in TEMPLATE {
        let path = project.join(file);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        fs::write(&path, render(template, &names))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    // The SDK's own lock file pins the versions the SDK is tested with (cargo drops what
    // this project does not use), so the new project builds with known-good dependencies.
    if let Some(lock) = sdk.parent().map(|workspace| workspace.join("Cargo.lock"))
        && lock.is_file()
    {
        fs::copy(&lock, project.join("Cargo.lock"))
            .with_context(|| format!("copying {}", lock.display()))?;
    }
    Ok(())
}

fn render(template: &str, names: &Names) -> String {
    template
        .replace("{{name}}", &names.name)
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

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
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

    #[test]
    fn template_renders_every_placeholder() {
        let names = Names {
            name: "gift_cards".into(),
            krate: "gift_cards-plugin".into(),
            ty: camel_case("gift_cards") + "Workflow",
            sdk_path: toml_string("/repo/plugins/sdk"),
            component: "gift_cards_plugin.wasm".into(),
        };
        for (file, template) in TEMPLATE {
            let rendered = render(template, &names);
            assert!(!rendered.contains("{{"), "{file} keeps a placeholder");
        }
        let manifest = render(TEMPLATE[0].1, &names);
        assert!(manifest.contains(r#"orderpipe-plugin-sdk = { path = "/repo/plugins/sdk" }"#));
        assert!(render(TEMPLATE[1].1, &names).contains("pub struct GiftCardsWorkflow;"));
    }

    #[test]
    fn template_fixtures_are_valid() {
        let fixtures = super::super::fixtures::parse(TEMPLATE[2].1).expect("template fixtures");
        assert!(fixtures.len() >= 3);
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"C:\a "b""#), r#""C:\\a \"b\"""#);
        assert_eq!(camel_case("order-v2"), "OrderV2");
    }
}
