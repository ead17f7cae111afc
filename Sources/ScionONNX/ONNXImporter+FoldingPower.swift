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
              let (shape, picks) = Self.broadcastPicks([base.shape, exponent.shape]) else { return false }
        // In the base's precision, as onnxruntime computes it (powf for float32).
        let values = picks.map { pick -> Double in
            base.dtype == .float64 ? Foundation.pow(x[pick[0]], y[pick[1]]) : Double(Foundation.powf(Float(x[pick[0]]), Float(y[pick[1]])))
        }
        constants[output] = make(.reals(values), dtype: base.dtype, shape: shape)
        return true
    }
}
