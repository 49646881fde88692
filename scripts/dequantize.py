"""Fold a QDQ (int8) ONNX graph to float32: constant weights are dequantized into float
initializers, activation Quantize→Dequantize pairs are bypassed. Same I/O as the input.
(Recipe measured by this project; used for the float32 arbitrary-style copies.)

python dequantize.py IN.onnx OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def dequantize(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t)
        for n in g.node
        if n.op_type == "Constant"
    }

    def val(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        return consts.get(name)

    rename, drop, qdrop, new_inits = {}, set(), set(), []
    producer = {o: n for n in g.node for o in n.output}
    for n in g.node:
        if n.op_type != "DequantizeLinear":
            continue
        x = val(n.input[0])
        if x is not None:  # constant weight: fold into a float initializer
            s = val(n.input[1])
            zp = val(n.input[2]) if len(n.input) > 2 and n.input[2] else np.zeros_like(s)
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if s.ndim == 1 and s.size > 1:
                shp = [1] * x.ndim
                shp[axis] = -1
                s, zp = s.reshape(shp), zp.reshape(shp)
            w = (x.astype(np.float32) - zp.astype(np.float32)) * s
            new_inits.append(numpy_helper.from_array(w.astype(np.float32), name=n.output[0]))
            drop.add(id(n))
        else:  # activation Q->DQ pair: bypass
            q = producer.get(n.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                rename[n.output[0]] = q.input[0]
                drop.add(id(n))
                qdrop.add(id(q))
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:  # drop a Q only if every consumer was a dropped DQ
        if id(n) in qdrop and all(id(c) in drop for c in consumers.get(n.output[0], [])):
            drop.add(id(n))
    keep = [n for n in g.node if id(n) not in drop]
    for n in keep:
        for i, name in enumerate(n.input):
            while name in rename:
                name = rename[name]
            n.input[i] = name
    for o in g.output:
        if o.name in rename:
            keep.append(helper.make_node("Identity", [rename[o.name]], [o.name]))
    avail = {i.name for i in g.input} | {i.name for i in g.initializer}
    avail |= {i.name for i in new_inits} | {""}
    order, pending = [], list(keep)
    while pending:  # topological re-sort
        rest = []
        for n in pending:
            if all(i in avail for i in n.input):
                order.append(n)
                avail.update(n.output)
            else:
                rest.append(n)
        assert len(rest) < len(pending), "graph has a cycle or a dangling input"
        pending = rest
    del g.node[:]
    g.node.extend(order)
    g.initializer.extend(new_inits)
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    live = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(live)
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    onnx.save(dequantize(onnx.load(sys.argv[1])), sys.argv[2])
