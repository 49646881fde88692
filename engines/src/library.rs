//! The style library: a folder with a TOML index of named styles.
//!
//! ```toml
//! [[style]]
//! name = "van-gogh"
//! kind = "embedding"          # a predictor embedding stored next to the index
//! file = "van-gogh.emb"
//! source = "/usr/share/.../starry_night.jpg"
//!
//! [[style]]
//! name = "tiles"
//! kind = "cin"                # a style of a multi-style (CIN) model, by name or index
//! style = "mosaic"
//!
//! [[style]]
//! name = "golf"
//! kind = "prompt"             # a text prompt; `file` is set once `stylize tune` has run
//! prompt = "golf ball"
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::embedding;
use crate::error::{Error, Result};

pub const INDEX: &str = "styles.toml";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum StyleKind {
    Cin {
        style: String,
    },
    Embedding {
        file: String,
    },
    Prompt {
        prompt: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        file: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleEntry {
    pub name: String,
    #[serde(flatten)]
    pub kind: StyleKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    #[serde(rename = "style", default)]
    styles: Vec<StyleEntry>,
}

pub struct Library {
    dir: PathBuf,
    index: Index,
}

/// `$STYLIZE_LIBRARY`, else `$XDG_DATA_HOME/stylize/styles`, else `~/.local/share/stylize/styles`.
pub fn default_dir() -> PathBuf {
    crate::runtime::user_dir("STYLIZE_LIBRARY", "XDG_DATA_HOME", ".local/share", "styles")
}

/// Names must survive blend specs (`a:0.5,b:0.5`) and file names.
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::BadBlend {
            spec: name.to_string(),
            reason: "style names use letters, digits, '-', '_' and '.' (at most 64)".into(),
        })
    }
}

impl Library {
    /// Open a library; a folder without an index is an empty library.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(INDEX);
        let index = match std::fs::read_to_string(&index_path) {
            Ok(text) => toml::from_str(&text).map_err(|e| Error::Library {
                path: index_path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => {
                return Err(Error::Library {
                    path: index_path,
                    reason: e.to_string(),
                })
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn entries(&self) -> &[StyleEntry] {
        &self.index.styles
    }

    pub fn get(&self, name: &str) -> Option<&StyleEntry> {
        self.index
            .styles
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name.trim()))
    }

    pub fn names(&self) -> Vec<&str> {
        self.index.styles.iter().map(|e| e.name.as_str()).collect()
    }

    /// Write the index atomically.
    pub fn save(&self) -> Result<()> {
        let fail = |reason: String| Error::Library {
            path: self.dir.join(INDEX),
            reason,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| fail(e.to_string()))?;
        let text = toml::to_string_pretty(&self.index).map_err(|e| fail(e.to_string()))?;
        let tmp = self.dir.join(format!(".{INDEX}.tmp{}", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&tmp, self.dir.join(INDEX)).map_err(|e| fail(e.to_string()))
    }

    /// Add (or with `replace`, overwrite) an entry; an embedding is written next to the index.
    pub fn add(
        &mut self,
        name: &str,
        kind: StyleKind,
        source: Option<String>,
        embedding: Option<&[f32]>,
        replace: bool,
    ) -> Result<&StyleEntry> {
        check_name(name)?;
        if self.get(name).is_some() && !replace {
            return Err(Error::Library {
                path: self.dir.join(INDEX),
                reason: format!("a style named `{name}` already exists (remove it first)"),
            });
        }
        let kind = match (kind, embedding) {
            (StyleKind::Embedding { .. }, Some(e)) => {
                let file = format!("{name}.emb");
                embedding::write(&self.dir.join(&file), e)?;
                StyleKind::Embedding { file }
            }
            (StyleKind::Prompt { prompt, .. }, Some(e)) => {
                let file = format!("{name}.emb");
                embedding::write(&self.dir.join(&file), e)?;
                StyleKind::Prompt {
                    prompt,
                    file: Some(file),
                }
            }
            (StyleKind::Embedding { .. }, None) => {
                return Err(Error::Library {
                    path: self.dir.join(INDEX),
                    reason: format!("style `{name}` needs an embedding"),
                })
            }
            (kind, _) => kind,
        };
        self.index
            .styles
            .retain(|e| !e.name.eq_ignore_ascii_case(name));
        self.index.styles.push(StyleEntry {
            name: name.to_string(),
            kind,
            source,
        });
        self.save()?;
        Ok(self.index.styles.last().expect("just pushed"))
    }

    /// Remove an entry and its embedding file.
    pub fn remove(&mut self, name: &str) -> Result<StyleEntry> {
        let pos = self
            .index
            .styles
            .iter()
            .position(|e| e.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| self.unknown(name))?;
        let entry = self.index.styles.remove(pos);
        self.save()?;
        if let StyleKind::Embedding { file }
        | StyleKind::Prompt {
            file: Some(file), ..
        } = &entry.kind
        {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
        Ok(entry)
    }

    pub fn unknown(&self, name: &str) -> Error {
        let names = self.names();
        Error::UnknownStyle {
            name: name.trim().to_string(),
            available: if names.is_empty() {
                format!("the style library {} is empty", self.dir.display())
            } else {
                format!("library styles: {}", names.join(", "))
            },
        }
    }

    /// The tuned style for a text prompt: a prompt entry with the same text (case and spacing
    /// ignored), else a prompt entry of that name. An untuned or unknown prompt is an error
    /// that says how to tune it.
    pub fn prompt_embedding(&self, text: &str) -> Result<(&StyleEntry, Vec<f32>)> {
        let norm = |t: &str| {
            t.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        let want = norm(text);
        let prompts = || {
            self.index
                .styles
                .iter()
                .filter(|e| matches!(e.kind, StyleKind::Prompt { .. }))
        };
        let by_text = |tuned: bool| {
            prompts().find(|e| match &e.kind {
                StyleKind::Prompt { prompt, file } => {
                    norm(prompt) == want && file.is_some() == tuned
                }
                _ => false,
            })
        };
        let entry = by_text(true)
            .or_else(|| by_text(false))
            .or_else(|| prompts().find(|e| e.name.eq_ignore_ascii_case(text.trim())));
        match entry {
            Some(entry) => Ok((entry, self.embedding(entry)?)),
            None => Err(Error::UnknownStyle {
                name: text.trim().to_string(),
                available: format!(
                    "this prompt is not tuned yet (run `stylize tune \"{}\" --content IMAGE \
                     --save NAME`)",
                    text.trim()
                ),
            }),
        }
    }

    /// The embedding of an entry (embedding or tuned prompt).
    pub fn embedding(&self, entry: &StyleEntry) -> Result<Vec<f32>> {
        match &entry.kind {
            StyleKind::Embedding { file }
            | StyleKind::Prompt {
                file: Some(file), ..
            } => embedding::read(&self.dir.join(file)),
            StyleKind::Prompt { prompt, file: None } => Err(Error::UnknownStyle {
                name: entry.name.clone(),
                available: format!(
                    "prompt \"{prompt}\" is not tuned yet (run `stylize tune \"{prompt}\" --save {}`)",
                    entry.name
                ),
            }),
            StyleKind::Cin { style } => Err(Error::UnknownStyle {
                name: entry.name.clone(),
                available: format!(
                    "it is style `{style}` of a multi-style model, not an embedding"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_resolve_by_text_or_name_and_untuned_ones_say_so() {
        let dir = temp_lib("prompt");
        let mut lib = Library::open(&dir).unwrap();
        let tuned = StyleKind::Prompt {
            prompt: "Golden  Tiles".into(),
            file: None,
        };
        lib.add("tiles", tuned, None, Some(&[0.5, -1.0]), false)
            .unwrap();
        let untuned = StyleKind::Prompt {
            prompt: "blue watercolour".into(),
            file: None,
        };
        lib.add("blue", untuned, None, None, false).unwrap();
        let (entry, e) = lib.prompt_embedding(" golden tiles ").unwrap();
        assert_eq!((entry.name.as_str(), e), ("tiles", vec![0.5, -1.0]));
        assert_eq!(lib.prompt_embedding("tiles").unwrap().1, vec![0.5, -1.0]);
        let err = lib
            .prompt_embedding("blue watercolour")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not tuned yet"), "{err}");
        let err = lib.prompt_embedding("red sky").unwrap_err().to_string();
        assert!(
            err.contains("not tuned yet") && err.contains("stylize tune"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn temp_lib(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stylize-lib-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn add_list_show_remove_persist() {
        let dir = temp_lib("crud");
        let mut lib = Library::open(&dir).unwrap();
        assert!(lib.entries().is_empty());
        lib.add(
            "van-gogh",
            StyleKind::Embedding {
                file: String::new(),
            },
            Some("starry.jpg".into()),
            Some(&[0.5, 1.5]),
            false,
        )
        .unwrap();
        lib.add(
            "tiles",
            StyleKind::Cin {
                style: "mosaic".into(),
            },
            None,
            None,
            false,
        )
        .unwrap();
        lib.add(
            "golf",
            StyleKind::Prompt {
                prompt: "golf ball".into(),
                file: None,
            },
            None,
            None,
            false,
        )
        .unwrap();

        let lib = Library::open(&dir).unwrap();
        assert_eq!(lib.names(), vec!["van-gogh", "tiles", "golf"]);
        let vg = lib.get("VAN-GOGH").unwrap();
        assert_eq!(lib.embedding(vg).unwrap(), vec![0.5, 1.5]);
        let err = lib
            .embedding(lib.get("golf").unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not tuned yet"), "{err}");

        let mut lib = lib;
        let err = lib
            .add(
                "tiles",
                StyleKind::Cin { style: "x".into() },
                None,
                None,
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("already exists"), "{err}");
        lib.remove("van-gogh").unwrap();
        assert!(!dir.join("van-gogh.emb").exists());
        let err = lib.remove("van-gogh").unwrap_err().to_string();
        assert!(err.contains("unknown style `van-gogh`"), "{err}");
        assert_eq!(Library::open(&dir).unwrap().names(), vec!["tiles", "golf"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_names_and_corrupt_index_are_errors() {
        assert!(check_name("a:b").is_err());
        assert!(check_name("a,b").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("ok-name_1.2").is_ok());
        let dir = temp_lib("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(INDEX), "[[style]]\nname = 3\n").unwrap();
        let err = Library::open(&dir).err().unwrap().to_string();
        assert!(err.contains("styles.toml"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
