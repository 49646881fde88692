//! Model families and the contract every model must meet (docs/models.md).
//!
//! The check works on plain [`TensorSpec`]s so it is testable without ONNX Runtime; backends
//! describe their loaded graph with them and call [`check_contract`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::limits::{self, MAX_CONDITIONING_LEN, MAX_SIZE_MULTIPLE};
use crate::size::Size;

pub const CONTENT: &str = "content";
pub const STYLE_WEIGHTS: &str = "style_weights";
pub const STYLE_EMBEDDING: &str = "style_embedding";
pub const STYLIZED: &str = "stylized";

pub const META_FAMILY: &str = "stylize.family";
pub const META_INPUT_RANGE: &str = "stylize.input_range";
pub const META_SIZE_MULTIPLE: &str = "stylize.size_multiple";
pub const META_STYLES: &str = "stylize.styles";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Johnson et al. 2016: one network per style, `content` → `stylized`.
    PerStyle,
    /// Dumoulin et al. 2017: conditional instance norm, `style_weights` [N] picks and blends.
    Cin,
    /// Ghiasi et al. 2017: `style_embedding` [1,100] from a style predictor.
    Arbitrary,
}

impl Family {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "per-style" => Some(Self::PerStyle),
            "cin" => Some(Self::Cin),
            "arbitrary" => Some(Self::Arbitrary),
            _ => None,
        }
    }

    /// The conditioning input this family takes besides `content`, if any.
    pub fn conditioning_input(self) -> Option<&'static str> {
        match self {
            Self::PerStyle => None,
            Self::Cin => Some(STYLE_WEIGHTS),
            Self::Arbitrary => Some(STYLE_EMBEDDING),
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PerStyle => "per-style",
            Self::Cin => "cin",
            Self::Arbitrary => "arbitrary",
        })
    }
}

/// Pixel value scale the network expects and produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputRange {
    Unit,
    Byte,
}

impl InputRange {
    pub fn scale(self) -> f32 {
        match self {
            Self::Unit => 1.0,
            Self::Byte => 255.0,
        }
    }
}

/// One graph input or output as the backend sees it; `-1` marks a dynamic dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub element_type: String,
    pub dims: Vec<i64>,
}

impl TensorSpec {
    pub fn new(name: &str, element_type: &str, dims: &[i64]) -> Self {
        Self {
            name: name.into(),
            element_type: element_type.into(),
            dims: dims.to_vec(),
        }
    }
}

/// Dims as `[1,3,?,?]` (`?` where dynamic), for contract errors.
pub(crate) fn dims_str(dims: &[i64]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|&d| if d < 0 { "?".into() } else { d.to_string() })
        .collect();
    format!("[{}]", parts.join(","))
}

/// What the engine needs to know about a model that passed the contract check.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub family: Family,
    pub input_range: InputRange,
    /// Input height and width must be multiples of this; the engine pads and crops.
    pub size_multiple: usize,
    /// The one size the graph takes, when it does not accept others.
    pub fixed_size: Option<Size>,
    /// Style names: N for a CIN net, one (or none) for a per-style net.
    pub styles: Vec<String>,
    /// Length of the conditioning vector (`style_weights` N or embedding size).
    pub conditioning_len: usize,
}

/// Check a loaded graph against the family contract and read the stylize metadata.
pub fn check_contract(
    path: &Path,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
    metadata: &HashMap<String, String>,
) -> Result<ModelInfo> {
    let check = ContractCheck {
        path,
        inputs,
        outputs,
        metadata,
    };
    let content = check.find(check.inputs, CONTENT, "input")?;
    check.image_tensor(&content, "input")?;
    let stylized = check.find(check.outputs, STYLIZED, "output")?;
    check.image_tensor(&stylized, "output")?;
    let family = check.family()?;
    check.input_count(family)?;
    let conditioning_len = check.conditioning_len(family)?;
    Ok(ModelInfo {
        path: path.to_path_buf(),
        family,
        input_range: check.input_range()?,
        size_multiple: check.size_multiple()?,
        fixed_size: check.fixed_size(&content)?,
        styles: check.style_names(family, conditioning_len)?,
        conditioning_len,
    })
}

/// One graph under the style-model contract; each step checks one thing and names the
/// tensor or metadata key at fault.
struct ContractCheck<'a> {
    path: &'a Path,
    inputs: &'a [TensorSpec],
    outputs: &'a [TensorSpec],
    metadata: &'a HashMap<String, String>,
}

fn names(specs: &[TensorSpec]) -> String {
    let v: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    format!("tensors [{}]", v.join(", "))
}

impl ContractCheck<'_> {
    fn violation(&self, tensor: &str, expected: impl Into<String>, actual: String) -> Error {
        Error::Contract {
            path: self.path.to_path_buf(),
            tensor: tensor.to_string(),
            expected: expected.into(),
            actual,
        }
    }

    fn find(&self, specs: &[TensorSpec], name: &str, kind: &str) -> Result<TensorSpec> {
        specs
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| {
                self.violation(
                    &format!("{kind} `{name}`"),
                    "a tensor of that name",
                    names(specs),
                )
            })
    }

    /// float32 [1,3,H,W] (batch may be dynamic).
    fn image_tensor(&self, spec: &TensorSpec, kind: &str) -> Result<()> {
        let tensor = format!("{kind} `{}`", spec.name);
        if spec.element_type != "float32" {
            return Err(self.violation(&tensor, "float32", spec.element_type.clone()));
        }
        let ok =
            spec.dims.len() == 4 && (spec.dims[0] == 1 || spec.dims[0] < 0) && spec.dims[1] == 3;
        if !ok {
            return Err(self.violation(&tensor, "shape [1,3,H,W]", dims_str(&spec.dims)));
        }
        Ok(())
    }

    /// From the metadata, or else from the conditioning input the graph has.
    fn family(&self) -> Result<Family> {
        let has = |name: &str| self.inputs.iter().any(|s| s.name == name);
        match self.metadata.get(META_FAMILY) {
            Some(f) => Family::parse(f).ok_or_else(|| {
                self.violation(
                    &format!("metadata `{META_FAMILY}`"),
                    "per-style, cin or arbitrary",
                    f.clone(),
                )
            }),
            None if has(STYLE_WEIGHTS) => Ok(Family::Cin),
            None if has(STYLE_EMBEDDING) => Ok(Family::Arbitrary),
            None => Ok(Family::PerStyle),
        }
    }

    fn input_count(&self, family: Family) -> Result<()> {
        let expected = 1 + usize::from(family.conditioning_input().is_some());
        if self.inputs.len() == expected {
            return Ok(());
        }
        let want = match family.conditioning_input() {
            Some(c) => format!("inputs [{CONTENT}, {c}] for a {family} model"),
            None => format!("inputs [{CONTENT}] for a {family} model"),
        };
        Err(self.violation("inputs", want, names(self.inputs)))
    }

    /// N of `style_weights` [N] or D of `style` [1,D], fixed and within the limit.
    fn conditioning_len(&self, family: Family) -> Result<usize> {
        let Some(name) = family.conditioning_input() else {
            return Ok(0);
        };
        let spec = self.find(self.inputs, name, "input")?;
        let tensor = format!("input `{name}`");
        let fits = |n: i64| n > 0 && n as usize <= MAX_CONDITIONING_LEN;
        let len = match (family, spec.dims.as_slice()) {
            (Family::Cin, [n]) if fits(*n) => *n as usize,
            (Family::Arbitrary, [1, n]) if fits(*n) => *n as usize,
            _ => {
                let want = if family == Family::Cin {
                    format!("shape [N] with N fixed, at most {MAX_CONDITIONING_LEN}")
                } else {
                    format!("shape [1,D] with D fixed, at most {MAX_CONDITIONING_LEN}")
                };
                return Err(self.violation(&tensor, want, dims_str(&spec.dims)));
            }
        };
        if spec.element_type != "float32" {
            return Err(self.violation(&tensor, "float32", spec.element_type.clone()));
        }
        Ok(len)
    }

    /// The comma-separated names; a CIN net has one per `style_weights` entry, or none
    /// (then its styles are addressable as style-NN).
    fn style_names(&self, family: Family, conditioning_len: usize) -> Result<Vec<String>> {
        let styles: Vec<String> = self
            .metadata
            .get(META_STYLES)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if family == Family::Cin && !styles.is_empty() && styles.len() != conditioning_len {
            return Err(self.violation(
                &format!("metadata `{META_STYLES}`"),
                format!("{conditioning_len} names (one per `{STYLE_WEIGHTS}` entry)"),
                format!("{} names", styles.len()),
            ));
        }
        Ok(styles)
    }

    fn input_range(&self) -> Result<InputRange> {
        match self.metadata.get(META_INPUT_RANGE).map(String::as_str) {
            None | Some("0-1") => Ok(InputRange::Unit),
            Some("0-255") => Ok(InputRange::Byte),
            Some(other) => Err(self.violation(
                &format!("metadata `{META_INPUT_RANGE}`"),
                "0-1 or 0-255",
                other.into(),
            )),
        }
    }

    /// Padding rounds every frame up to this multiple: a huge one would allocate a huge
    /// tensor for any frame, so it is refused here, at load.
    fn size_multiple(&self) -> Result<usize> {
        let Some(m) = self.metadata.get(META_SIZE_MULTIPLE) else {
            return Ok(1);
        };
        m.trim()
            .parse::<usize>()
            .ok()
            .filter(|&m| (1..=MAX_SIZE_MULTIPLE).contains(&m))
            .ok_or_else(|| {
                self.violation(
                    &format!("metadata `{META_SIZE_MULTIPLE}`"),
                    format!("an integer from 1 to {MAX_SIZE_MULTIPLE}"),
                    m.clone(),
                )
            })
    }

    /// The size when the graph takes only one, which must be within the limits.
    fn fixed_size(&self, content: &TensorSpec) -> Result<Option<Size>> {
        let (h, w) = (content.dims[2], content.dims[3]);
        if h <= 0 || w <= 0 {
            return Ok(None);
        }
        let (h, w) = (h as usize, w as usize);
        limits::check_inference_size(w, h).map_err(|e| {
            self.violation(
                &format!("input `{CONTENT}`"),
                "a fixed size within the inference limits",
                format!("{}: {e}", dims_str(&content.dims)),
            )
        })?;
        Ok(Some(Size::new(w, h)))
    }
}

pub const STYLE: &str = "style";

/// A style predictor (Ghiasi 2017): `style` [1,3,S,S] image → `style_embedding` [1,D].
#[derive(Debug, Clone, PartialEq)]
pub struct PredictorInfo {
    pub path: PathBuf,
    /// Side of the square input image.
    pub input_size: usize,
    pub embedding_len: usize,
}

pub fn check_predictor_contract(
    path: &Path,
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
) -> Result<PredictorInfo> {
    let violation = |tensor: String, expected: &str, actual: String| Error::Contract {
        path: path.to_path_buf(),
        tensor,
        expected: expected.to_string(),
        actual,
    };
    let names = |specs: &[TensorSpec]| {
        let v: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        format!("tensors [{}]", v.join(", "))
    };
    let input = inputs.iter().find(|s| s.name == STYLE).ok_or_else(|| {
        violation(
            format!("input `{STYLE}`"),
            "a tensor of that name",
            names(inputs),
        )
    })?;
    let fits = |s: i64| s > 0 && limits::check_inference_size(s as usize, s as usize).is_ok();
    let input_size = match input.dims.as_slice() {
        [1, 3, h, w] if fits(*h) && h == w && input.element_type == "float32" => *h as usize,
        _ => {
            return Err(violation(
                format!("input `{STYLE}`"),
                "float32 [1,3,S,S] with S fixed",
                format!("{} {}", input.element_type, dims_str(&input.dims)),
            ))
        }
    };
    let output = outputs
        .iter()
        .find(|s| s.name == STYLE_EMBEDDING)
        .ok_or_else(|| {
            violation(
                format!("output `{STYLE_EMBEDDING}`"),
                "a tensor of that name",
                names(outputs),
            )
        })?;
    let embedding_len = match output.dims.as_slice() {
        [1, d]
            if *d > 0
                && *d as usize <= MAX_CONDITIONING_LEN
                && output.element_type == "float32" =>
        {
            *d as usize
        }
        _ => {
            return Err(violation(
                format!("output `{STYLE_EMBEDDING}`"),
                "float32 [1,D] with D fixed",
                format!("{} {}", output.element_type, dims_str(&output.dims)),
            ))
        }
    };
    Ok(PredictorInfo {
        path: path.to_path_buf(),
        input_size,
        embedding_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cin_inputs() -> Vec<TensorSpec> {
        vec![
            TensorSpec::new(CONTENT, "float32", &[1, 3, -1, -1]),
            TensorSpec::new(STYLE_WEIGHTS, "float32", &[3]),
        ]
    }

    fn out() -> Vec<TensorSpec> {
        vec![TensorSpec::new(STYLIZED, "float32", &[1, 3, -1, -1])]
    }

    #[test]
    fn cin_model_with_names_passes() {
        let info = check_contract(
            Path::new("m.onnx"),
            &cin_inputs(),
            &out(),
            &meta(&[(META_STYLES, "a,b,c"), (META_SIZE_MULTIPLE, "4")]),
        )
        .unwrap();
        assert_eq!(info.family, Family::Cin);
        assert_eq!(info.styles, vec!["a", "b", "c"]);
        assert_eq!(info.size_multiple, 4);
        assert_eq!(info.conditioning_len, 3);
        assert_eq!(info.fixed_size, None);
    }

    #[test]
    fn wrong_input_name_names_the_tensor() {
        let inputs = vec![TensorSpec::new("image", "float32", &[1, 3, -1, -1])];
        let err = check_contract(Path::new("m.onnx"), &inputs, &out(), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("input `content`"), "{err}");
        assert!(err.contains("tensors [image]"), "{err}");
    }

    #[test]
    fn wrong_channel_count_shows_expected_and_actual_shape() {
        let inputs = vec![TensorSpec::new(CONTENT, "float32", &[1, 4, 64, 64])];
        let err = check_contract(Path::new("m.onnx"), &inputs, &out(), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("shape [1,3,H,W]"), "{err}");
        assert!(err.contains("[1,4,64,64]"), "{err}");
    }

    #[test]
    fn wrong_element_type_is_reported() {
        let inputs = vec![TensorSpec::new(CONTENT, "uint8", &[1, 3, -1, -1])];
        let err = check_contract(Path::new("m.onnx"), &inputs, &out(), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected float32, found uint8"), "{err}");
    }

    #[test]
    fn style_name_count_must_match_weights() {
        let err = check_contract(
            Path::new("m.onnx"),
            &cin_inputs(),
            &out(),
            &meta(&[(META_STYLES, "a,b")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("3 names"), "{err}");
    }

    #[test]
    fn predictor_contract() {
        let ok = check_predictor_contract(
            Path::new("p.onnx"),
            &[TensorSpec::new(STYLE, "float32", &[1, 3, 256, 256])],
            &[TensorSpec::new(STYLE_EMBEDDING, "float32", &[1, 100])],
        )
        .unwrap();
        assert_eq!((ok.input_size, ok.embedding_len), (256, 100));
        let err = check_predictor_contract(
            Path::new("p.onnx"),
            &[TensorSpec::new(STYLE, "float32", &[1, 256, 256, 3])],
            &[TensorSpec::new(STYLE_EMBEDDING, "float32", &[1, 100])],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[1,256,256,3]"), "{err}");
    }

    #[test]
    fn sizes_that_would_drive_huge_allocations_are_refused_at_load() {
        // "memory allocation of 120000000000 bytes failed" came from padding every frame to
        // a multiple of 100000.
        let err = check_contract(
            Path::new("m.onnx"),
            &cin_inputs(),
            &out(),
            &meta(&[(META_SIZE_MULTIPLE, "100000")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("metadata `stylize.size_multiple`"), "{err}");
        assert!(err.contains("an integer from 1 to 256"), "{err}");
        assert!(err.contains("found 100000"), "{err}");
        for ok in ["1", "256", " 8 "] {
            let info = check_contract(
                Path::new("m.onnx"),
                &cin_inputs(),
                &out(),
                &meta(&[(META_SIZE_MULTIPLE, ok)]),
            )
            .unwrap();
            assert_eq!(info.size_multiple, ok.trim().parse::<usize>().unwrap());
        }
        for bad in ["257", "0", "-4", "1e9", "18446744073709551616"] {
            assert!(check_contract(
                Path::new("m.onnx"),
                &cin_inputs(),
                &out(),
                &meta(&[(META_SIZE_MULTIPLE, bad)]),
            )
            .is_err());
        }
        // A fixed input past the inference limits, a conditioning vector of 10^9 entries.
        let huge = vec![TensorSpec::new(
            CONTENT,
            "float32",
            &[1, 3, 100_000, 100_000],
        )];
        let err = check_contract(Path::new("m.onnx"), &huge, &out(), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the limit"), "{err}");
        let inputs = vec![
            TensorSpec::new(CONTENT, "float32", &[1, 3, -1, -1]),
            TensorSpec::new(STYLE_WEIGHTS, "float32", &[1_000_000_000]),
        ];
        let err = check_contract(Path::new("m.onnx"), &inputs, &out(), &HashMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 65536"), "{err}");
        let err = check_predictor_contract(
            Path::new("p.onnx"),
            &[TensorSpec::new(STYLE, "float32", &[1, 3, 50_000, 50_000])],
            &[TensorSpec::new(STYLE_EMBEDDING, "float32", &[1, 100])],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("[1,3,50000,50000]"), "{err}");
    }

    #[test]
    fn per_style_without_metadata_and_fixed_size() {
        let inputs = vec![TensorSpec::new(CONTENT, "float32", &[1, 3, 224, 224])];
        let info = check_contract(Path::new("m.onnx"), &inputs, &out(), &HashMap::new()).unwrap();
        assert_eq!(info.family, Family::PerStyle);
        assert_eq!(info.fixed_size, Some(Size::new(224, 224)));
        assert_eq!(info.input_range, InputRange::Unit);
    }
}
