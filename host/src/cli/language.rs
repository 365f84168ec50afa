//! The languages a plugin project can be written in, and how to tell a project's language from
//! its manifest: `Cargo.toml` (Rust), `package.json` (TypeScript), `pyproject.toml` (Python).

use std::path::Path;

use anyhow::bail;

/// A plugin project's language; `plugin new --lang` takes its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Language {
    Rust,
    #[value(name = "ts", alias = "typescript")]
    TypeScript,
    #[value(alias = "py")]
    Python,
}

impl Language {
    /// Every language, in the order a manifest is looked for.
    pub const ALL: [Language; 3] = [Language::Rust, Language::TypeScript, Language::Python];

    /// The file that makes a folder a project in this language.
    pub fn manifest(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            Language::TypeScript => "package.json",
            Language::Python => "pyproject.toml",
        }
    }

    /// What people call it.
    pub fn label(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::TypeScript => "TypeScript",
            Language::Python => "Python",
        }
    }

    /// The language of the project in `dir`, from the one manifest it holds.
    pub fn detect(dir: &Path) -> anyhow::Result<Language> {
        let found: Vec<Language> = Language::ALL
            .into_iter()
            .filter(|language| dir.join(language.manifest()).is_file())
            .collect();
        match found.as_slice() {
            [language] => Ok(*language),
            [] => bail!(
                "{} is not a plugin project (no Cargo.toml, package.json or pyproject.toml); create one with `orderpipe plugin new <name> --lang rust|ts|python` or pass --dir",
                dir.display()
            ),
            several => bail!(
                "{} holds the manifests of several languages ({}): keep one",
                dir.display(),
                several
                    .iter()
                    .map(|language| language.manifest())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_is_known_by_its_one_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let error = Language::detect(dir.path()).unwrap_err().to_string();
        assert!(error.contains("is not a plugin project"), "{error}");
        std::fs::write(dir.path().join("pyproject.toml"), "").unwrap();
        assert_eq!(Language::detect(dir.path()).unwrap(), Language::Python);
        std::fs::write(dir.path().join("package.json"), "{}").unwrap();
        let error = Language::detect(dir.path()).unwrap_err().to_string();
        assert!(error.contains("several languages"), "{error}");
    }
}
