import Foundation
import ScionIR

/// Pow of constants: torch's TorchScript exporter writes attention's `head_dim ** -0.5` as a Pow of the
/// head width (a length read with Shape, folded to a number) and -0.5. Folded, the scale is one number
/// a Rescaling (or a keras.ops call) carries; left as an op, it would be a layer with constant operands,
/// which Keras cannot hold. A float weight of the file stays an op: folding would freeze what a user may train.
extension ONNXImportSession {
    mutating func foldPower(_ node: ONNXNode, output: String) throws -> Bool {
        guard node.inputs.count == 2, let base = constants[node.inputs[0]], let exponent = constants[node.inputs[1]],
              base.dtype.isFloatingPoint, !base.fromInitializer, !(exponent.fromInitializer && exponent.dtype.isFloatingPoint),
              let x = try numbers(node.inputs[0])?.reals, let y = try numbers(node.inputs[1])?.reals,
              let (shape, sources) = Broadcasting.sources([base.shape, exponent.shape], limit: Self.foldingLimit) else { return false }
        // In the base's precision, as onnxruntime computes it (powf for float32).
        let values = zip(sources[0], sources[1]).map { i, j -> Double in
            base.dtype == .float64 ? Foundation.pow(x[i], y[j]) : Double(Foundation.powf(Float(x[i]), Float(y[j])))
        }
        constants[output] = make(.reals(values), dtype: base.dtype, shape: shape)
        return true
    }
}
