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
    /// Why the index could not be read, for a library opened with [`Library::open_or_empty`]:
    /// named in "unknown style" errors, so a broken index is not mistaken for an empty one.
    broken: Option<String>,
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
        Err(Error::BadStyleName {
            name: name.to_string(),
            reason: "style names use letters, digits, '-', '_' and '.' (at most 64, not \
                     starting with '.')"
                .into(),
        })
    }
}

/// Lock file next to the index: every write holds an exclusive lock on it, so concurrent
/// writers (two `stylize styles add`, a `stylize tune` finishing) never lose each other's
/// entries. It is never removed (removing a lock file while someone waits on it would let
/// two writers in).
const LOCK: &str = ".styles.lock";

/// An exclusive lock on a library folder, held for one read-modify-write; released on drop.
struct WriteLock(#[allow(dead_code)] std::fs::File);

impl WriteLock {
    fn acquire(dir: &Path) -> Result<Self> {
        let fail = |e: std::io::Error| Error::Library {
            path: dir.join(LOCK),
            reason: format!("cannot lock the library: {e}"),
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK))
            .map_err(fail)?;
        file.lock().map_err(fail)?;
        Ok(Self(file))
    }
}

/// Read and parse the index; a folder without one is an empty library.
fn read_index(dir: &Path) -> Result<Index> {
    let path = dir.join(INDEX);
    let fail = |reason: String| Error::Library {
        path: path.clone(),
        reason,
    };
    let bytes = match crate::files::read_regular(&path, crate::limits::MAX_LIBRARY_INDEX_BYTES) {
        Ok(bytes) => bytes,
        Err(crate::files::ReadError::NotFound) => return Ok(Index::default()),
        Err(e) => return Err(fail(e.to_string())),
    };
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))?;
    let index: Index = toml::from_str(&text).map_err(|e| fail(e.to_string()))?;
    for entry in &index.styles {
        check_name(&entry.name).map_err(|e| fail(e.to_string()))?;
        if let Some(file) = embedding_file(&entry.kind) {
            // An edited index must not point reads or removals outside the library.
            if Path::new(file).file_name() != Some(std::ffi::OsStr::new(file)) {
                return Err(fail(format!(
                    "style `{}`: `{file}` is not a file name inside the library",
                    entry.name
                )));
            }
        }
    }
    Ok(index)
}

/// The embedding file an entry names, if any.
fn embedding_file(kind: &StyleKind) -> Option<&str> {
    match kind {
        StyleKind::Embedding { file }
        | StyleKind::Prompt {
            file: Some(file), ..
        } => Some(file),
        _ => None,
    }
}

/// Unique temporary names within a process (threads may write in the same folder).
fn temp_name(base: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(".{base}.tmp{}-{n}", std::process::id())
}

impl Library {
    /// Open a library; a folder without an index is an empty library, an unreadable or
    /// corrupt index an error.
    pub fn open(dir: &Path) -> Result<Self> {
        Ok(Self {
            dir: dir.to_path_buf(),
            index: read_index(dir)?,
            broken: None,
        })
    }

    /// Open a library for lookups only: an unreadable or corrupt index gives an empty library
    /// (and the error, to warn with), so a model's own styles keep working. Names that would
    /// have come from the library are then unknown, with the reason in the message.
    pub fn open_or_empty(dir: &Path) -> (Self, Option<Error>) {
        match Self::open(dir) {
            Ok(library) => (library, None),
            Err(e) => (
                Self {
                    dir: dir.to_path_buf(),
                    index: Index::default(),
                    broken: Some(e.to_string()),
                },
                Some(e),
            ),
        }
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

    /// Write the index atomically: a temporary file, fsync, rename, fsync of the folder.
    /// Only called with the write lock held.
    fn save(&self, _lock: &WriteLock) -> Result<()> {
        let fail = |reason: String| Error::Library {
            path: self.dir.join(INDEX),
            reason,
        };
        let text = toml::to_string_pretty(&self.index).map_err(|e| fail(e.to_string()))?;
        crate::files::write_atomic(&self.dir.join(INDEX), &temp_name(INDEX), text.as_bytes())
            .map_err(|e| fail(e.to_string()))
    }

    /// A file name for a new embedding of `name` that no file uses yet: an existing file
    /// (an entry being replaced, or one this run did not create) is never overwritten.
    fn fresh_embedding_file(&self, name: &str) -> String {
        (0u32..)
            .map(|n| match n {
                0 => format!("{name}.emb"),
                n => format!("{name}-{n}.emb"),
            })
            .find(|f| std::fs::symlink_metadata(self.dir.join(f)).is_err())
            .expect("some file name is free")
    }

    /// Add (or with `replace`, overwrite) an entry; an embedding is written next to the index
    /// first, so the index never names a missing file. Under the library's write lock, the
    /// index is re-read, so entries other writers added since `open` are kept.
    pub fn add(
        &mut self,
        name: &str,
        kind: StyleKind,
        source: Option<String>,
        embedding: Option<&[f32]>,
        replace: bool,
    ) -> Result<&StyleEntry> {
        check_name(name)?;
        if matches!(kind, StyleKind::Embedding { .. }) && embedding.is_none() {
            return Err(Error::Library {
                path: self.dir.join(INDEX),
                reason: format!("style `{name}` needs an embedding"),
            });
        }
        let lock = WriteLock::acquire(&self.dir)?;
        self.index = read_index(&self.dir)?;
        self.broken = None;
        let replaced = self.get(name).cloned();
        if replaced.is_some() && !replace {
            return Err(Error::Library {
                path: self.dir.join(INDEX),
                reason: format!("a style named `{name}` already exists (remove it first)"),
            });
        }
        let mut written = None;
        if let Some(values) = embedding {
            if matches!(kind, StyleKind::Embedding { .. } | StyleKind::Prompt { .. }) {
                let file = self.fresh_embedding_file(name);
                embedding::write(&self.dir.join(&file), values)?;
                written = Some(file);
            }
        }
        let kind = match (kind, written.clone()) {
            (StyleKind::Embedding { .. }, Some(file)) => StyleKind::Embedding { file },
            (StyleKind::Prompt { prompt, .. }, Some(file)) => StyleKind::Prompt {
                prompt,
                file: Some(file),
            },
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
        if let Err(e) = self.save(&lock) {
            // Nothing names the new file: remove it rather than leave an orphan.
            if let Some(file) = &written {
                let _ = std::fs::remove_file(self.dir.join(file));
            }
            self.index = read_index(&self.dir).unwrap_or_default();
            return Err(e);
        }
        if let Some(old) = replaced {
            self.remove_unreferenced_file(&old);
        }
        Ok(self.index.styles.last().expect("just pushed"))
    }

    /// Remove an entry and its embedding file (under the write lock, on the latest index).
    pub fn remove(&mut self, name: &str) -> Result<StyleEntry> {
        let lock = WriteLock::acquire(&self.dir)?;
        self.index = read_index(&self.dir)?;
        self.broken = None;
        let pos = self
            .index
            .styles
            .iter()
            .position(|e| e.name.eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| self.unknown(name))?;
        let entry = self.index.styles.remove(pos);
        self.save(&lock)?;
        self.remove_unreferenced_file(&entry);
        Ok(entry)
    }

    /// Delete the embedding file of an entry that left the index, unless another entry still
    /// names it.
    fn remove_unreferenced_file(&self, gone: &StyleEntry) {
        let Some(file) = embedding_file(&gone.kind) else {
            return;
        };
        let still_named = self
            .index
            .styles
            .iter()
            .any(|e| embedding_file(&e.kind) == Some(file));
        if !still_named {
            let _ = std::fs::remove_file(self.dir.join(file));
        }
    }

    pub fn unknown(&self, name: &str) -> Error {
        let names = self.names();
        Error::UnknownStyle {
            name: name.trim().to_string(),
            available: if let Some(why) = &self.broken {
                format!("the style library could not be read ({why})")
            } else if names.is_empty() {
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

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn concurrent_writers_lose_no_entry_and_leave_no_orphan() {
        let dir = temp_lib("concurrent");
        const N: usize = 20;
        // Every writer opens the library before any of them adds: each holds a stale index,
        // which is what lost entries before writes were locked and re-read.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(N));
        let threads: Vec<_> = (0..N)
            .map(|i| {
                let (dir, barrier) = (dir.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut lib = Library::open(&dir).unwrap();
                    barrier.wait();
                    let (kind, values) = if i % 2 == 0 {
                        let kind = StyleKind::Embedding {
                            file: String::new(),
                        };
                        (kind, Some(vec![i as f32, 1.0]))
                    } else {
                        let style = format!("style-{i:02}");
                        (StyleKind::Cin { style }, None)
                    };
                    lib.add(&format!("s{i}"), kind, None, values.as_deref(), false)
                        .map(|_| ())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let lib = Library::open(&dir).unwrap();
        assert_eq!(lib.entries().len(), N, "{:?}", lib.names());
        for i in (0..N).step_by(2) {
            let entry = lib.get(&format!("s{i}")).unwrap();
            assert_eq!(lib.embedding(entry).unwrap(), vec![i as f32, 1.0]);
        }
        let emb_files = listing(&dir).iter().filter(|f| f.ends_with(".emb")).count();
        assert_eq!(emb_files, N / 2, "no orphan embedding: {:?}", listing(&dir));
        assert!(
            !listing(&dir).iter().any(|f| f.contains(".tmp")),
            "no temporary file left: {:?}",
            listing(&dir)
        );

        // Two writers of one name: one wins, the other is told, one embedding file is left.
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
        let results: Vec<_> = (0..2)
            .map(|i| {
                let (dir, barrier) = (dir.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut lib = Library::open(&dir).unwrap();
                    barrier.wait();
                    let kind = StyleKind::Embedding {
                        file: String::new(),
                    };
                    lib.add("twin", kind, None, Some(&[i as f32]), false)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(results
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| e.contains("already exists"))));
        let twins = listing(&dir)
            .into_iter()
            .filter(|f| f.starts_with("twin"))
            .count();
        assert_eq!(twins, 1, "{:?}", listing(&dir));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn replacing_keeps_files_it_did_not_create_and_removes_the_old_embedding() {
        let dir = temp_lib("replace");
        std::fs::create_dir_all(&dir).unwrap();
        // A stray file with the name a new embedding would get is not overwritten.
        std::fs::write(dir.join("a.emb"), b"not ours").unwrap();
        let mut lib = Library::open(&dir).unwrap();
        let emb = || StyleKind::Embedding {
            file: String::new(),
        };
        lib.add("a", emb(), None, Some(&[1.0]), false).unwrap();
        assert_eq!(std::fs::read(dir.join("a.emb")).unwrap(), b"not ours");
        let first = lib.get("a").unwrap().clone();
        lib.add("a", emb(), None, Some(&[2.0]), true).unwrap();
        let second = lib.get("a").unwrap().clone();
        assert_eq!(lib.embedding(&second).unwrap(), vec![2.0]);
        let old_file = match first.kind {
            StyleKind::Embedding { file } => file,
            _ => unreachable!(),
        };
        assert!(
            !dir.join(old_file).exists(),
            "the replaced embedding is removed"
        );
        assert_eq!(std::fs::read(dir.join("a.emb")).unwrap(), b"not ours");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_corrupt_index_leaves_an_empty_library_that_says_why() {
        let dir = temp_lib("lenient");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(INDEX), "[[style]\nname = ").unwrap();
        let (lib, err) = Library::open_or_empty(&dir);
        assert!(err.unwrap().to_string().contains("styles.toml"));
        assert!(lib.entries().is_empty());
        let unknown = lib.unknown("van-gogh").to_string();
        assert!(unknown.contains("could not be read"), "{unknown}");
        // An index naming a file outside the library is corrupt, not followed.
        std::fs::write(
            dir.join(INDEX),
            "[[style]]\nname = \"x\"\nkind = \"embedding\"\nfile = \"../../etc/passwd\"\n",
        )
        .unwrap();
        let err = Library::open(&dir).err().unwrap().to_string();
        assert!(err.contains("not a file name inside the library"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_names_and_corrupt_index_are_errors() {
        let err = check_name("a:b").unwrap_err().to_string();
        assert!(err.starts_with("invalid style name `a:b`"), "{err}");
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
