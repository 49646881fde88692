//! Any ONNX graph outside the style-model contract (generators, CLIP encoders) on ONNX Runtime, with
//! named-tensor contract checks and a batch-shaped run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor as OrtTensor;

use crate::backend::cpu;
use crate::error::{Error, Result};
use crate::model::{dims_str, TensorSpec};

/// Expected size of one dimension in a contract.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dim {
    /// Any size, fixed or dynamic (batch, sequence length).
    Any,
    /// Exactly this size (or dynamic, resolved at run time).
    Is(usize),
}

/// A typed input for [`Graph::run`].
pub enum Input {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

/// A float32 output: its shape and data.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

pub struct Graph {
    session: Session,
    pub path: PathBuf,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub metadata: HashMap<String, String>,
}

fn names(specs: &[TensorSpec]) -> String {
    let v: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    format!("tensors [{}]", v.join(", "))
}

impl Graph {
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let session = cpu::session(path, threads)?;
        let (inputs, outputs, metadata) = cpu::describe(path, &session)?;
        Ok(Self {
            session,
            path: path.to_path_buf(),
            inputs,
            outputs,
            metadata,
        })
    }

    /// A contract violation of this graph, worded like the style models' errors.
    pub fn violation(&self, tensor: &str, expected: impl Into<String>, actual: String) -> Error {
        Error::Contract {
            path: self.path.clone(),
            tensor: tensor.to_string(),
            expected: expected.into(),
            actual,
        }
    }

    fn find<'a>(&self, specs: &'a [TensorSpec], name: &str, kind: &str) -> Result<&'a TensorSpec> {
        specs.iter().find(|s| s.name == name).ok_or_else(|| {
            self.violation(
                &format!("{kind} `{name}`"),
                "a tensor of that name",
                names(specs),
            )
        })
    }

    pub fn has_input(&self, name: &str) -> bool {
        self.inputs.iter().any(|s| s.name == name)
    }

    pub fn has_output(&self, name: &str) -> bool {
        self.outputs.iter().any(|s| s.name == name)
    }

    /// Check a tensor's type and shape; returns its dims (-1 where dynamic).
    fn check(&self, spec: &TensorSpec, kind: &str, ty: &str, dims: &[Dim]) -> Result<Vec<i64>> {
        let tensor = format!("{kind} `{}`", spec.name);
        if spec.element_type != ty {
            return Err(self.violation(&tensor, ty, spec.element_type.clone()));
        }
        let ok = spec.dims.len() == dims.len()
            && spec.dims.iter().zip(dims).all(|(&d, want)| match want {
                Dim::Any => true,
                Dim::Is(n) => d < 0 || d as usize == *n,
            });
        if !ok {
            let want: Vec<String> = dims
                .iter()
                .map(|d| match d {
                    Dim::Any => "?".into(),
                    Dim::Is(n) => n.to_string(),
                })
                .collect();
            return Err(self.violation(
                &tensor,
                format!("shape [{}]", want.join(",")),
                dims_str(&spec.dims),
            ));
        }
        Ok(spec.dims.clone())
    }

    pub fn check_input(&self, name: &str, ty: &str, dims: &[Dim]) -> Result<Vec<i64>> {
        let spec = self.find(&self.inputs, name, "input")?;
        self.check(spec, "input", ty, dims)
    }

    pub fn check_output(&self, name: &str, ty: &str, dims: &[Dim]) -> Result<Vec<i64>> {
        let spec = self.find(&self.outputs, name, "output")?;
        self.check(spec, "output", ty, dims)
    }

    /// A positive integer from the metadata, if present.
    pub fn meta_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.metadata.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .map(Some)
                .ok_or_else(|| {
                    self.violation(
                        &format!("metadata `{key}`"),
                        "a positive integer",
                        v.clone(),
                    )
                }),
        }
    }

    /// Run with named inputs and return the named float32 outputs, in order.
    pub fn run(&mut self, inputs: Vec<(String, Input)>, wanted: &[&str]) -> Result<Vec<Output>> {
        let fail = |e: ort::Error| Error::Inference(e.to_string());
        let mut values: Vec<(String, SessionInputValue)> = Vec::with_capacity(inputs.len());
        for (name, input) in inputs {
            let value: SessionInputValue = match input {
                Input::F32(shape, data) => {
                    OrtTensor::from_array((shape, data)).map_err(fail)?.into()
                }
                Input::I64(shape, data) => {
                    OrtTensor::from_array((shape, data)).map_err(fail)?.into()
                }
            };
            values.push((name, value));
        }
        let path = self.path.clone();
        let outputs = self
            .session
            .run(values)
            .map_err(|e| Error::Inference(format!("{}: {e}", path.display())))?;
        wanted
            .iter()
            .map(|name| {
                let value = outputs.get(*name).ok_or_else(|| {
                    Error::Inference(format!("{}: no output `{name}`", path.display()))
                })?;
                let (shape, data) = value.try_extract_tensor::<f32>().map_err(fail)?;
                Ok(Output {
                    shape: shape.iter().map(|&d| d.max(0) as usize).collect(),
                    data: data.to_vec(),
                })
            })
            .collect()
    }
}
