//! Style selection: names, indices and blends resolved against a model's styles.
//!
//! A CIN net is conditioned by a weight vector over its N styles; a style name selects a one-hot
//! vector and a blend such as `"starry-swirls:0.7,mosaic:0.3"` a normalised mix. Every style is
//! also reachable as `style-NN` (upstream models ship no names) or by its plain index.

use crate::error::{Error, Result};
use crate::library::{Library, StyleKind};
use crate::model::{Family, ModelInfo};

/// The canonical alias of style `index`.
pub fn alias(index: usize) -> String {
    format!("style-{index:02}")
}

fn available(info: &ModelInfo) -> String {
    match info.family {
        Family::Cin => {
            let names: Vec<String> = (0..info.conditioning_len)
                .map(|i| match info.styles.get(i) {
                    Some(n) => format!("{n} ({})", alias(i)),
                    None => alias(i),
                })
                .collect();
            format!("this model has {}", names.join(", "))
        }
        Family::PerStyle => match info.styles.first() {
            Some(n) => format!("{n} (a per-style model has only its own style)"),
            None => "only its own style (a per-style model)".into(),
        },
        Family::Arbitrary => {
            "no built-in styles (an arbitrary-style model takes a style image or a library style)"
                .into()
        }
    }
}

/// Index of a CIN style given by name, `style-NN` alias or index.
pub fn style_index(info: &ModelInfo, name: &str) -> Result<usize> {
    let wanted = name.trim();
    let unknown = || Error::UnknownStyle {
        name: wanted.to_string(),
        available: available(info),
    };
    if info.family != Family::Cin {
        return Err(unknown());
    }
    if let Some(i) = info
        .styles
        .iter()
        .position(|s| s.eq_ignore_ascii_case(wanted))
    {
        return Ok(i);
    }
    let digits = wanted.strip_prefix("style-").unwrap_or(wanted);
    match digits.parse::<usize>() {
        Ok(i) if i < info.conditioning_len => Ok(i),
        _ => Err(unknown()),
    }
}

/// Parse `name[:weight],name[:weight]...` (a missing weight counts as 1) without resolving names.
pub fn parse_blend(spec: &str) -> Result<Vec<(String, f32)>> {
    let bad = |reason: String| Error::BadBlend {
        spec: spec.to_string(),
        reason,
    };
    let mut parts = Vec::new();
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad("empty entry".into()));
        }
        let (name, weight) = match item.rsplit_once(':') {
            Some((n, w)) => {
                let w: f32 = w
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("`{}` is not a number", w.trim())))?;
                (n.trim(), w)
            }
            None => (item, 1.0),
        };
        if name.is_empty() {
            return Err(bad(format!("`{item}` has no style name")));
        }
        if !weight.is_finite() || weight < 0.0 {
            return Err(bad(format!(
                "weight of `{name}` must be a non-negative number"
            )));
        }
        parts.push((name.to_string(), weight));
    }
    let total: f32 = parts.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Err(bad("weights sum to zero".into()));
    }
    // Each weight finite but the sum not (3e38 + 3e38): normalising would give all zeros.
    if !total.is_finite() {
        return Err(bad("weights are too large to normalise".into()));
    }
    Ok(parts)
}

/// The conditioning weights for a request: `blend` wins over `style`; neither selects style 0.
/// Per-style models take no weights (an empty vector) and accept only their own name.
pub fn resolve(info: &ModelInfo, style: Option<&str>, blend: Option<&str>) -> Result<Vec<f32>> {
    resolve_in(info, style, blend, None)
}

/// CIN index of a name, looking in the model first and then in the library's `cin` entries.
fn cin_index(info: &ModelInfo, name: &str, library: Option<&Library>) -> Result<usize> {
    match style_index(info, name) {
        Ok(i) => Ok(i),
        Err(model_err) => match library.and_then(|l| l.get(name)) {
            Some(entry) => match &entry.kind {
                StyleKind::Cin { style } => style_index(info, style),
                _ => Err(Error::UnknownStyle {
                    name: name.trim().to_string(),
                    available: "it is a library embedding, which needs an arbitrary-style model"
                        .into(),
                }),
            },
            None => Err(model_err),
        },
    }
}

/// An arbitrary-style embedding from library names: one name, or a normalised blend
/// Σ wᵢ·Eᵢ (the (γ,β) of the transfer net are affine in E, so this equals mixing a CIN bank
/// whose rows are the named embeddings).
fn embedding_from_library(
    info: &ModelInfo,
    style: Option<&str>,
    blend: Option<&str>,
    library: Option<&Library>,
) -> Result<Vec<f32>> {
    let parts = match (blend, style) {
        (Some(spec), _) => parse_blend(spec)?,
        (None, Some(name)) => vec![(name.to_string(), 1.0)],
        (None, None) => {
            return Err(Error::UnknownStyle {
                name: String::new(),
                available: "an arbitrary-style model needs a style image or a library style".into(),
            })
        }
    };
    let Some(library) = library else {
        return Err(Error::UnknownStyle {
            name: parts[0].0.clone(),
            available: available(info),
        });
    };
    let total: f32 = parts.iter().map(|(_, w)| w).sum();
    let mut mix = vec![0.0f32; info.conditioning_len];
    for (name, w) in parts {
        let entry = library.get(&name).ok_or_else(|| library.unknown(&name))?;
        let e = library.embedding(entry)?;
        if e.len() != mix.len() {
            return Err(Error::CorruptEmbedding {
                path: library.dir().join(&entry.name),
                reason: format!("{} values, the model takes {}", e.len(), mix.len()),
            });
        }
        for (m, v) in mix.iter_mut().zip(e) {
            *m += v * w / total;
        }
    }
    Ok(mix)
}

/// Like [`resolve`], with names also looked up in a style library.
pub fn resolve_in(
    info: &ModelInfo,
    style: Option<&str>,
    blend: Option<&str>,
    library: Option<&Library>,
) -> Result<Vec<f32>> {
    let style = style.map(str::trim).filter(|s| !s.is_empty());
    let blend = blend.map(str::trim).filter(|s| !s.is_empty());
    match info.family {
        Family::PerStyle => {
            for name in blend
                .map(parse_blend)
                .transpose()?
                .unwrap_or_default()
                .into_iter()
                .map(|(n, _)| n)
                .chain(style.map(String::from))
            {
                let own = info
                    .styles
                    .first()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&name));
                if !own {
                    return Err(Error::UnknownStyle {
                        name,
                        available: available(info),
                    });
                }
            }
            Ok(Vec::new())
        }
        Family::Cin => {
            let mut weights = vec![0.0f32; info.conditioning_len];
            match (blend, style) {
                (Some(spec), _) => {
                    let parts = parse_blend(spec)?;
                    let total: f32 = parts.iter().map(|(_, w)| w).sum();
                    for (name, w) in parts {
                        weights[cin_index(info, &name, library)?] += w / total;
                    }
                }
                (None, Some(name)) => weights[cin_index(info, name, library)?] = 1.0,
                (None, None) => weights[0] = 1.0,
            }
            Ok(weights)
        }
        Family::Arbitrary => embedding_from_library(info, style, blend, library),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::InputRange;
    use std::path::PathBuf;

    fn cin() -> ModelInfo {
        ModelInfo {
            path: PathBuf::from("m.onnx"),
            family: Family::Cin,
            input_range: InputRange::Unit,
            size_multiple: 4,
            fixed_size: None,
            styles: vec!["swirls".into(), "mosaic".into(), "ink".into()],
            conditioning_len: 3,
        }
    }

    #[test]
    fn names_aliases_and_indices_resolve() {
        let info = cin();
        assert_eq!(style_index(&info, "mosaic").unwrap(), 1);
        assert_eq!(style_index(&info, "MOSAIC").unwrap(), 1);
        assert_eq!(style_index(&info, "style-02").unwrap(), 2);
        assert_eq!(style_index(&info, "0").unwrap(), 0);
    }

    #[test]
    fn unknown_style_lists_the_available_ones() {
        let err = style_index(&cin(), "starry").unwrap_err().to_string();
        assert!(err.contains("unknown style `starry`"), "{err}");
        assert!(err.contains("mosaic (style-01)"), "{err}");
        assert!(style_index(&cin(), "style-03").is_err());
    }

    #[test]
    fn blend_is_normalised() {
        let w = resolve(&cin(), None, Some("swirls:0.7, mosaic:0.7")).unwrap();
        assert_eq!(w, vec![0.5, 0.5, 0.0]);
        let w = resolve(&cin(), Some("ink"), Some("swirls:3,style-01:1")).unwrap();
        assert_eq!(w, vec![0.75, 0.25, 0.0]);
    }

    #[test]
    fn style_one_hot_and_default() {
        assert_eq!(
            resolve(&cin(), Some("ink"), None).unwrap(),
            vec![0.0, 0.0, 1.0]
        );
        assert_eq!(resolve(&cin(), None, None).unwrap(), vec![1.0, 0.0, 0.0]);
    }

    #[test]
    fn malformed_blends_are_rejected_with_reasons() {
        for (spec, reason) in [
            ("swirls:abc", "not a number"),
            ("swirls:-1", "non-negative"),
            ("swirls:0,mosaic:0", "sum to zero"),
            ("swirls,,mosaic", "empty entry"),
            (":0.5", "no style name"),
        ] {
            let err = parse_blend(spec).unwrap_err().to_string();
            assert!(err.contains(reason), "{spec}: {err}");
        }
        assert!(resolve(&cin(), None, Some("swirls:1,nope:1")).is_err());
    }

    #[test]
    fn per_style_model_accepts_only_its_own_name() {
        let info = ModelInfo {
            family: Family::PerStyle,
            styles: vec!["mosaic".into()],
            conditioning_len: 0,
            ..cin()
        };
        assert!(resolve(&info, Some("mosaic"), None).unwrap().is_empty());
        assert!(resolve(&info, None, None).unwrap().is_empty());
        let err = resolve(&info, Some("swirls"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only its own style"), "{err}");
    }
}
