//! Tiny ONNX models written byte by byte, for tests of what the model contract and the element
//! do with odd graphs (fixed sizes, outputs smaller than inputs, hostile metadata) without
//! fetching or converting anything. Only the protobuf fields ONNX Runtime needs are written.
#![allow(dead_code)]

use std::path::Path;

/// A dimension: fixed, or symbolic (dynamic).
#[derive(Clone, Copy)]
pub enum Dim {
    Fixed(i64),
    Named(&'static str),
}

/// One node: `op_type` from `input` to `output`, with integer-list attributes.
pub struct Node {
    pub op_type: &'static str,
    pub inputs: Vec<&'static str>,
    pub outputs: Vec<&'static str>,
    pub int_lists: Vec<(&'static str, Vec<i64>)>,
}

/// A float32 model with one graph, opset 13.
pub struct Model {
    pub inputs: Vec<(&'static str, Vec<Dim>)>,
    pub outputs: Vec<(&'static str, Vec<Dim>)>,
    pub nodes: Vec<Node>,
    pub metadata: Vec<(&'static str, String)>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn int_field(out: &mut Vec<u8>, field: u64, v: i64) {
    varint(out, field << 3);
    varint(out, v as u64);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn value_info(name: &str, dims: &[Dim]) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(v) => int_field(&mut dim, 1, *v),
            Dim::Named(n) => bytes_field(&mut dim, 2, n.as_bytes()),
        }
        bytes_field(&mut shape, 1, &dim);
    }
    let mut tensor = Vec::new();
    int_field(&mut tensor, 1, 1); // elem_type FLOAT
    bytes_field(&mut tensor, 2, &shape);
    let mut ty = Vec::new();
    bytes_field(&mut ty, 1, &tensor);
    let mut info = Vec::new();
    bytes_field(&mut info, 1, name.as_bytes());
    bytes_field(&mut info, 2, &ty);
    info
}

impl Model {
    /// The serialized ModelProto.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut graph = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let mut n = Vec::new();
            for input in &node.inputs {
                bytes_field(&mut n, 1, input.as_bytes());
            }
            for output in &node.outputs {
                bytes_field(&mut n, 2, output.as_bytes());
            }
            bytes_field(&mut n, 3, format!("node{i}").as_bytes());
            bytes_field(&mut n, 4, node.op_type.as_bytes());
            for (name, values) in &node.int_lists {
                let mut a = Vec::new();
                bytes_field(&mut a, 1, name.as_bytes());
                for v in values {
                    int_field(&mut a, 8, *v);
                }
                int_field(&mut a, 20, 7); // AttributeType INTS
                bytes_field(&mut n, 5, &a);
            }
            bytes_field(&mut graph, 1, &n);
        }
        bytes_field(&mut graph, 2, b"tiny");
        for (name, dims) in &self.inputs {
            bytes_field(&mut graph, 11, &value_info(name, dims));
        }
        for (name, dims) in &self.outputs {
            bytes_field(&mut graph, 12, &value_info(name, dims));
        }
        let mut model = Vec::new();
        int_field(&mut model, 1, 8); // ir_version
        bytes_field(&mut model, 2, b"stylize-tests");
        let mut opset = Vec::new();
        bytes_field(&mut opset, 1, b"");
        int_field(&mut opset, 2, 13);
        bytes_field(&mut model, 8, &opset);
        bytes_field(&mut model, 7, &graph);
        for (key, value) in &self.metadata {
            let mut entry = Vec::new();
            bytes_field(&mut entry, 1, key.as_bytes());
            bytes_field(&mut entry, 2, value.as_bytes());
            bytes_field(&mut model, 14, &entry);
        }
        model
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_bytes()).unwrap();
    }
}

/// content [1,3,H,W] → Identity → stylized, with the given input/output dims.
pub fn identity(dims: Vec<Dim>) -> Model {
    Model {
        inputs: vec![("content", dims.clone())],
        outputs: vec![("stylized", dims)],
        nodes: vec![Node {
            op_type: "Identity",
            inputs: vec!["content"],
            outputs: vec!["stylized"],
            int_lists: vec![],
        }],
        metadata: vec![],
    }
}

/// A per-style net that only accepts `size`×`size` input.
pub fn fixed_size(size: i64) -> Model {
    use Dim::Fixed;
    identity(vec![Fixed(1), Fixed(3), Fixed(size), Fixed(size)])
}

/// Any size in; half the size out (2×2 average pooling).
pub fn half_size_output() -> Model {
    use Dim::{Fixed, Named};
    Model {
        inputs: vec![("content", vec![Fixed(1), Fixed(3), Named("h"), Named("w")])],
        outputs: vec![(
            "stylized",
            vec![Fixed(1), Fixed(3), Named("oh"), Named("ow")],
        )],
        nodes: vec![Node {
            op_type: "AveragePool",
            inputs: vec!["content"],
            outputs: vec!["stylized"],
            int_lists: vec![("kernel_shape", vec![2, 2]), ("strides", vec![2, 2])],
        }],
        metadata: vec![],
    }
}

/// Any size in and out, with `metadata` (e.g. a hostile `stylize.size_multiple`).
pub fn dynamic_identity(metadata: Vec<(&'static str, String)>) -> Model {
    use Dim::{Fixed, Named};
    let mut model = identity(vec![Fixed(1), Fixed(3), Named("h"), Named("w")]);
    model.metadata = metadata;
    model
}
