import ScionIR
@testable import ScionRuntime
import XCTest

/// VJPs of the ops exporters write for masks and index arithmetic (Where, Mod, Trilu, a Slice or
/// Pad with computed bounds, ScatterND, GatherND, GatherElements, Einsum), against finite differences. Indices and
/// bounds are frozen constants (they get no gradient); the values each op reads are the shifted
/// input and trainable constants, so both of its value operands are checked.
extension GradientCheckTests {
    /// A constant node of fixed values, frozen unless `trainable`.
    func fixed(_ name: String, _ shape: [Int], _ data: [Float], trainable: Bool = false) -> (Node, Parameter) {
        (node(name, .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [name]),
         Parameter(name: name, role: ParameterRole(rawValue: "value"), shape: shape, dtype: .float32, trainable: trainable,
                   storage: TensorStorage(bytes: data.withUnsafeBytes { Array($0) })))
    }

    /// A trainable constant node of random values.
    func operand(_ name: String, _ shape: [Int], offset: Float = 0) -> (Node, Parameter) {
        (node(name, .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: [name]),
         parameter(name, "value", shape, offset: offset))
    }

    func testWhereAndComparisons() throws {
        try check("Where(x > 0, x, other) with the other branch broadcast", input: [2, 3, 4]) { x in
            let (zeroNode, zero) = fixed("zero", [], [0])
            let (otherNode, other) = operand("other", [1, 4])
            return ([zeroNode, otherNode, node("positive", .onnx(.comparison(.greater)), [x, "zero"]),
                     node("w", .onnx(.select), ["positive", x, "other"])], [zero, other], "w")
        }
        try check("Where(Not(x <= y) and x > -0.5, y, x)", input: [2, 5]) { x in
            let (limitNode, limit) = fixed("limit", [], [-0.5])
            let (yNode, y) = operand("y", [2, 5])
            return ([limitNode, yNode, node("le", .onnx(.comparison(.lessOrEqual)), [x, "y"]), node("not", .onnx(.unary(.not)), ["le"]),
                     node("above", .onnx(.comparison(.greater)), [x, "limit"]), node("both", .onnx(.comparison(.and)), ["not", "above"]),
                     node("w", .onnx(.select), ["both", "y", x])], [limit, y], "w")
        }
    }

    func testMod() throws {
        for fmod in [false, true] {
            try check("Mod fmod=\(fmod) by a divisor of each sign", input: [2, 4], inputValues: [0.3, -2.7, 1.9, -0.4, 3.3, -1.2, 2.6, -3.1]) { x in
                let divisor = Parameter(name: "divisor", role: ParameterRole(rawValue: "value"), shape: [4], dtype: .float32, trainable: true,
                                        storage: TensorStorage(bytes: [Float(0.7), -0.9, 1.3, -1.1].withUnsafeBytes { Array($0) }))
                return ([node("divisor", .onnx(.constant(ConstantAttributes(dtype: .float32))), [], parameters: ["divisor"]),
                         node("m", .onnx(.mod(ModAttributes(fmod: fmod))), [x, "divisor"])], [divisor], "m")
            }
        }
    }

    func testTrilu() throws {
        try check("Trilu upper, k = 1", input: [2, 4, 5]) { x in
            ([node("t", .onnx(.trilu(TriluAttributes(upper: true, k: 1))), [x])], [], "t")
        }
        try check("Trilu lower, k computed (-1)", input: [2, 4, 5]) { x in
            let (kNode, k) = fixed("k", [], [-1])
            return ([kNode, node("t", .onnx(.trilu(TriluAttributes(upper: false, k: nil))), [x, "k"])], [k], "t")
        }
    }

    func testComputedSlice() throws {
        try check("Slice with computed bounds: a negative step from a clamped start, then a range", input: [2, 4, 6]) { x in
            let (startsNode, starts) = fixed("starts", [2], [100, 1])
            let (endsNode, ends) = fixed("ends", [2], [-100, 3])
            let (axesNode, axes) = fixed("axes", [2], [-1, 1])
            let (stepsNode, steps) = fixed("steps", [2], [-2, 1])
            return ([startsNode, endsNode, axesNode, stepsNode,
                     node("s", .onnx(.computedSlice(ComputedSliceAttributes(hasAxes: true, hasSteps: true))), [x, "starts", "ends", "axes", "steps"])],
                    [starts, ends, axes, steps], "s")
        }
    }

    func testComputedPad() throws {
        for mode in [PadMode.constant, .reflect, .edge] {
            // The constant form also crops the last axis (a negative pad); reflection needs pads inside the axis.
            try check("Pad \(mode.rawValue) with computed pads", input: [2, 3, 5]) { x in
                let (padsNode, pads) = fixed("pads", [6], [0, 2, mode == .constant ? -1 : 1, 0, 1, 1])
                return ([padsNode, node("p", .onnx(.computedPad(ComputedPadAttributes(mode: mode, value: 0.5))), [x, "pads"])], [pads], "p")
            }
        }
        try check("Pad with computed pads and fill value on named axes", input: [2, 3, 4]) { x in
            let (padsNode, pads) = fixed("pads", [4], [1, 0, 2, -1])
            let (fillNode, fill) = fixed("fill", [], [-2])
            return ([padsNode, fillNode,
                     node("p", .onnx(.computedPad(ComputedPadAttributes(mode: .constant, value: nil, axes: [-1, 1]))), [x, "pads", "fill"])],
                    [pads, fill], "p")
        }
    }

    func testScatterND() throws {
        // Rows of a [2, 3, 4] value: (0, 2), (1, 0) and (0, 2) again, so add and mul combine two updates.
        for reduction in ScatterReduction.allCases {
            let rows: [Float] = reduction == .none ? [0, 2, 1, 0, 1, 2] : [0, 2, 1, 0, 0, 2]
            try check("ScatterND reduction \(reduction.rawValue)", input: [2, 3, 4]) { x in
                let (indicesNode, indices) = fixed("indices", [3, 2], rows)
                let (updatesNode, updates) = operand("updates", [3, 4], offset: 0.5)
                return ([indicesNode, updatesNode, node("s", .onnx(.scatterND(ScatterNDAttributes(reduction: reduction))), [x, "indices", "updates"])],
                        [indices, updates], "s")
            }
        }
    }

    func testGatherElements() throws {
        try check("GatherElements along axis 1, negative indices", input: [2, 3, 4]) { x in
            let (indicesNode, indices) = fixed("indices", [2, 2, 4], [2, 0, -1, 1, 0, 0, 1, -3, 1, 2, 2, 0, -2, 1, 0, 2])
            return ([indicesNode, node("g", .onnx(.gatherElements(GatherAttributes(axis: 1))), [x, "indices"])], [indices], "g")
        }
    }

    func testGatherND() throws {
        // Index pairs into a [2, 3, 4] value, one read twice (its gradient sums), one negative.
        try check("GatherND of rows, one read twice", input: [2, 3, 4]) { x in
            let (indicesNode, indices) = fixed("indices", [2, 2, 2], [0, 2, 1, -1, 0, 2, 1, 0])
            return ([indicesNode, node("g", .onnx(.gatherND(GatherNDAttributes(batchDimensions: 0))), [x, "indices"])], [indices], "g")
        }
        try check("GatherND with one batch axis", input: [2, 3, 4]) { x in
            let (indicesNode, indices) = fixed("indices", [2, 3, 1], [2, 0, 0, 1, 1, -3])
            return ([indicesNode, node("g", .onnx(.gatherND(GatherNDAttributes(batchDimensions: 1))), [x, "indices"])], [indices], "g")
        }
    }

    func testEinsum() throws {
        let cases: [(String, [Int], [Int])] = [
            ("bhid,bhjd->bhij", [2, 2, 3, 4], [2, 2, 5, 4]),
            ("bij,jk->bik", [2, 3, 4], [4, 5]),
            ("bij,bkj->bki", [2, 3, 4], [2, 2, 4]),
            ("bi,j->bij", [2, 3], [4]),
            ("bij,k->bj", [2, 3, 4], [2]),
        ]
        for (equation, input, other) in cases {
            try check("Einsum \(equation)", input: input) { x in
                let (otherNode, weight) = operand("w", other)
                return ([otherNode, node("e", .onnx(.einsum(EinsumAttributes(equation: equation))), [x, "w"])], [weight], "e")
            }
        }
        try check("Einsum bij->jbi", input: [2, 3, 4]) { x in
            ([node("e", .onnx(.einsum(EinsumAttributes(equation: "bij->jbi"))), [x])], [], "e")
        }
        try check("Einsum bij->bi (a sum)", input: [2, 3, 4]) { x in
            ([node("e", .onnx(.einsum(EinsumAttributes(equation: "bij->bi"))), [x])], [], "e")
        }
    }
}
