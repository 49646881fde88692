//! Any ONNX graph outside the style-model contract (generators, CLIP encoders) on ONNX Runtime, with
//! named-tensor contract checks and a batch-shaped run.
//!
//! Batches: a graph whose inputs declare a fixed leading dimension N (an export traced at
//! batch N without dynamic axes) is run in chunks of N, the last chunk padded by repeating its
//! last row and the padding dropped from the outputs. A graph that declares a dynamic batch
//! but fails at batch > 1 is retried one item per call, and remembered as batch-1: tracing
//! bakes `groups = batch` of a grouped convolution (StyleGAN's modulated convolution) into the
//! graph while the exporter still writes the dynamic axis the user asked for.

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
    I32(Vec<usize>, Vec<i32>),
}

impl Input {
    fn shape(&self) -> &[usize] {
        match self {
            Input::F32(s, _) | Input::I64(s, _) | Input::I32(s, _) => s,
        }
    }

    /// Rows `start..start + n` along axis 0; rows past the end repeat the last row.
    fn rows(&self, start: usize, n: usize) -> Input {
        fn take<T: Copy>(shape: &[usize], data: &[T], start: usize, n: usize) -> Vec<T> {
            let row = shape[1..].iter().product::<usize>();
            let last = shape[0] - 1;
            (start..start + n)
                .flat_map(|r| {
                    let r = r.min(last);
                    data[r * row..(r + 1) * row].iter().copied()
                })
                .collect()
        }
        let mut shape = self.shape().to_vec();
        let data_shape = shape.clone();
        shape[0] = n;
        match self {
            Input::F32(_, d) => Input::F32(shape, take(&data_shape, d, start, n)),
            Input::I64(_, d) => Input::I64(shape, take(&data_shape, d, start, n)),
            Input::I32(_, d) => Input::I32(shape, take(&data_shape, d, start, n)),
        }
    }
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
    /// Most items per call: the fixed leading dimension the inputs declare, or 1 once a
    /// dynamic-batch graph has failed at a larger batch (see the module comment).
    max_batch: Option<usize>,
    /// Retry at batch 1 if a batched call fails (`retry_at_batch_one`), until one succeeds.
    batch_unverified: bool,
}

/// `float32 [?,50,768]`: a tensor's type and shape as errors show it.
pub fn describe(spec: &TensorSpec) -> String {
    format!("{} {}", spec.element_type, dims_str(&spec.dims))
}

/// Whether a tensor has type `ty` and the shape `dims` (a dynamic dimension matches any size).
pub fn matches(spec: &TensorSpec, ty: &str, dims: &[Dim]) -> bool {
    spec.element_type == ty
        && spec.dims.len() == dims.len()
        && spec.dims.iter().zip(dims).all(|(&d, want)| match want {
            Dim::Any => true,
            Dim::Is(n) => d < 0 || d as usize == *n,
        })
}

fn names(specs: &[TensorSpec]) -> String {
    let v: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    format!("tensors [{}]", v.join(", "))
}

impl Graph {
    pub fn load(path: &Path, threads: usize) -> Result<Self> {
        let session = cpu::session(path, threads)?;
        let (inputs, outputs, metadata) = cpu::describe(path, &session)?;
        // Rank 2 and up: a rank-1 input (a scalar option, a constant vector) has no batch.
        let max_batch = inputs
            .iter()
            .filter(|s| s.dims.len() >= 2)
            .filter_map(|s| s.dims.first().copied())
            .filter(|&d| d > 0)
            .min()
            .map(|d| d as usize);
        Ok(Self {
            session,
            path: path.to_path_buf(),
            inputs,
            outputs,
            metadata,
            max_batch,
            batch_unverified: false,
        })
    }

    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|s| s.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|s| s.name == name)
    }

    /// The most items one call takes, when the graph limits it (None: any).
    pub fn max_batch(&self) -> Option<usize> {
        self.max_batch
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
        if !matches(spec, ty, dims) {
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

    /// Let a graph that declares a dynamic batch fall back to one item per call when it fails
    /// at a larger batch (module comment). Only for graphs where that is a known export
    /// pitfall: until a batched call succeeds, each call keeps a copy of its inputs to retry.
    pub fn retry_at_batch_one(&mut self) {
        if self.max_batch.is_none() {
            self.batch_unverified = true;
        }
    }

    /// Run with named inputs (each [B,...] with the same B) and return the named float32
    /// outputs, in order, in chunks when the graph limits its batch (module comment).
    pub fn run(&mut self, inputs: Vec<(String, Input)>, wanted: &[&str]) -> Result<Vec<Output>> {
        let batch = inputs
            .first()
            .and_then(|(_, i)| i.shape().first().copied())
            .unwrap_or(0);
        let same_batch = inputs
            .iter()
            .all(|(_, i)| i.shape().first() == Some(&batch));
        if !same_batch || batch == 0 {
            return self.run_once(inputs, wanted);
        }
        if let Some(n) = self.max_batch.filter(|&n| n != batch) {
            return self.run_chunked(&inputs, wanted, batch, n);
        }
        if batch == 1 || !self.batch_unverified {
            return self.run_once(inputs, wanted);
        }
        let copy: Vec<(String, Input)> = inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.rows(0, batch)))
            .collect();
        match self.run_once(inputs, wanted) {
            Ok(out) => {
                self.batch_unverified = false;
                Ok(out)
            }
            Err(first) => {
                let one: Vec<(String, Input)> = copy
                    .iter()
                    .map(|(k, v)| (k.clone(), v.rows(0, 1)))
                    .collect();
                if self.run_once(one, wanted).is_err() {
                    return Err(first);
                }
                tracing::warn!(
                    "{}: fails at batch {batch} but runs at batch 1 (exported with the batch \
                     traced in): running it one item per call",
                    self.path.display()
                );
                self.max_batch = Some(1);
                self.batch_unverified = false;
                self.run_chunked(&copy, wanted, batch, 1)
            }
        }
    }

    /// `batch` items in calls of exactly `n`, outputs concatenated along axis 0 without the
    /// padding rows. Outputs without that leading dimension (constants) come from the first
    /// call.
    fn run_chunked(
        &mut self,
        inputs: &[(String, Input)],
        wanted: &[&str],
        batch: usize,
        n: usize,
    ) -> Result<Vec<Output>> {
        let mut merged: Vec<Output> = Vec::new();
        for start in (0..batch).step_by(n) {
            let keep = n.min(batch - start);
            let chunk = inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.rows(start, n)))
                .collect();
            let outs = self.run_once(chunk, wanted)?;
            if merged.is_empty() {
                merged = outs
                    .iter()
                    .map(|o| Output {
                        shape: o.shape.clone(),
                        data: Vec::new(),
                    })
                    .collect();
            }
            for (m, o) in merged.iter_mut().zip(outs) {
                if o.shape.first() == Some(&n) {
                    let row = o.shape[1..].iter().product::<usize>();
                    m.data.extend_from_slice(&o.data[..keep * row]);
                    m.shape[0] = if start == 0 { keep } else { m.shape[0] + keep };
                } else if start == 0 {
                    m.data = o.data;
                }
            }
        }
        Ok(merged)
    }

    fn run_once(&mut self, inputs: Vec<(String, Input)>, wanted: &[&str]) -> Result<Vec<Output>> {
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
                Input::I32(shape, data) => {
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
