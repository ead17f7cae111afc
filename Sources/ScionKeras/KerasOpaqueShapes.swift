import Foundation
import ScionIR

/// Output shapes of the Keras layers Scion keeps opaque (recurrent layers, Bidirectional,
/// MultiHeadAttention), worked out from their configs as Keras's `compute_output_shape` does. Without
/// them every value after an LSTM had an unknown shape: `inspect` showed `?`, `cut --drop-top` could
/// not tell a sequence from a vector, and the `.keras` writer had no shape for the tensors it names.
///
/// ```
///  LSTM(6, return_sequences=True)  (N, 7, 8) -> (N, 7, 6)      GRU(5)  (N, 7, 12) -> (N, 5)
///  Bidirectional(LSTM(6)), merge_mode "concat"  -> last axis 12; "sum"/"mul"/"ave" -> 6
///  MultiHeadAttention(query (N, 6, 8), value ...)  -> (N, 6, output_shape or 8)
/// ```
enum KerasOpaqueShapes {
    /// Fills in the output shapes of opaque Keras layers whose rule is known, following the graph
    /// as far as shapes reach (an LSTM after an LSTM needs the first one's shape).
    static func fill(_ graph: inout Graph) throws {
        // Most models have no opaque layer: no extra shape inference for them.
        guard graph.nodes.contains(where: { node in
            if case .opaque(let a) = node.op { return a.domain == "keras" && a.outputShapes == nil }
            return false
        }) else { return }
        var changed = true
        // Each round settles at least one more opaque node, so this ends; the bound is a guard.
        var rounds = 0
        while changed, rounds <= graph.nodes.count {
            changed = false
            rounds += 1
            try graph.inferShapes()
            for index in graph.nodes.indices {
                guard case .opaque(var a) = graph.nodes[index].op, a.domain == "keras", a.outputShapes == nil,
                      graph.nodes[index].outputs.count == 1,
                      let config = try? JSON.parse(Data(a.configuration.utf8)) else { continue }
                let inputs = graph.nodes[index].inputs.map { graph.values[$0]?.shape }
                guard let shape = outputShape(className: a.type, config: config, inputs: inputs) else { continue }
                a.outputShapes = [shape]
                graph.nodes[index].op = .opaque(a)
                changed = true
            }
        }
    }

    /// The output shape of one call, or nil when the class, its config or its input shapes do not
    /// say (several outputs, unknown classes).
    static func outputShape(className: String, config: JSON, inputs: [Shape?]) -> Shape? {
        guard let first = inputs.first, let input = first else { return nil }
        switch className {
        case "LSTM", "GRU", "SimpleRNN":
            guard input.rank == 3, let units = config["units"]?.int, config["return_state"]?.bool != true else { return nil }
            let sequences = config["return_sequences"]?.bool ?? false
            return Shape(sequences ? [input[0], input[1], units] : [input[0], units])
        case "Bidirectional":
            guard let inner = config["layer"], let innerClass = inner["class_name"]?.string, let innerConfig = inner["config"],
                  let shape = outputShape(className: innerClass, config: innerConfig, inputs: inputs),
                  let last = shape.dimensions.last, let units = last else { return nil }
            switch config["merge_mode"]?.string {
            case "concat": return Shape(shape.dimensions.dropLast() + [units * 2])
            case "sum", "mul", "ave": return shape
            default: return nil  // merge_mode None: two outputs
            }
        case "MultiHeadAttention":
            guard input.rank >= 3 else { return nil }
            if let custom = config["output_shape"], !custom.isNull {
                guard let lengths = custom.intArray else { return nil }
                return Shape(input.dimensions.dropLast() + lengths.map { Optional($0) })
            }
            return input
        default:
            return nil
        }
    }
}
